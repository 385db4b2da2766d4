"""Policy administration: the tenant's policy and its statistics, switching it, the decision log, and the
offline evaluation of another policy on that log."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from agent_lightning.core.config import Settings
from agent_lightning.core.db import Database
from agent_lightning.core.errors import AppError
from agent_lightning.core.events import Event, EventBus
from agent_lightning.core.tenancy import current_tenant, tenant_is, tenant_select
from agent_lightning.orchestrator import evaluation
from agent_lightning.orchestrator.policy import POLICY_NAMES
from agent_lightning.orchestrator.reads import aware
from agent_lightning.orchestrator.schemas import (
    AgentPolicyStats,
    Decision,
    DecisionLogEntry,
    DecisionPage,
    EstimateOut,
    EvaluationReport,
    EvaluationRequest,
    PolicyInfo,
    PolicyRef,
    PolicySwitchRequest,
    QTable,
    Reward,
)
from agent_lightning.orchestrator.tables import DecisionRow, PolicyConfigRow, RewardRow, TaskRow
from agent_lightning.orchestrator.tenant_policies import TenantPolicies, build_policy


class PolicySwitchDisabled(AppError):
    """Switching the routing policy over the API is turned off (ALP_POLICY_SWITCH_ENABLED=false)."""

    status = 403
    code = "policy_switch_disabled"


class PolicyAdmin:
    def __init__(self, *, settings: Settings, db: Database, bus: EventBus, policies: TenantPolicies) -> None:
        self.settings = settings
        self.db = db
        self.bus = bus
        self.policies = policies

    async def q_table(self) -> QTable:
        """The seed policy's Q-values by state (empty under the other policies)."""
        policy = await self.policies.active(synced=True)
        table = policy.state().get("q", {}) if policy.name == "seed-q" else {}
        return QTable(
            states=sorted(table),
            total_entries=sum(len(v) for v in table.values()),
            q_table=table,
            policy=PolicyRef(name=policy.name, version=policy.version),
        )

    async def policy_info(self) -> PolicyInfo:
        """The tenant's policy, its parameters, and per-agent statistics from the decision log."""
        policy = await self.policies.active(synced=True)
        config = self.policies.followed(current_tenant())
        tenant = current_tenant()
        async with self.db.session() as session:
            decisions = await session.execute(
                select(DecisionRow.chosen_agent, func.count(), func.max(DecisionRow.created_at))
                .where(tenant_is(DecisionRow, tenant))
                .group_by(DecisionRow.chosen_agent)
            )
            rewards = await session.execute(
                select(RewardRow.agent_id, func.count(), func.avg(RewardRow.reward))
                .where(tenant_is(RewardRow, tenant))
                .group_by(RewardRow.agent_id)
            )
            by_agent = {a: (n, last) for a, n, last in decisions}
            rewarded = {a: (n, mean) for a, n, mean in rewards}
        agents = [
            AgentPolicyStats(
                agent_id=a,
                decisions=by_agent.get(a, (0, None))[0],
                rewards=rewarded.get(a, (0, None))[0],
                mean_reward=None
                if rewarded.get(a, (0, None))[1] is None
                else round(float(rewarded[a][1]), 4),
                last_decision_at=by_agent.get(a, (0, None))[1],
            )
            for a in sorted(set(by_agent) | set(rewarded))
        ]
        return PolicyInfo(
            tenant_id=tenant,
            name=policy.name,
            version=policy.version,
            params=config[1],
            default=config == self.policies.default,
            available=list(POLICY_NAMES),
            switch_enabled=self.settings.policy_switch_enabled,
            uses_embeddings=self.policies.embeds(policy),
            agents=agents,
        )

    async def switch_policy(self, request: PolicySwitchRequest) -> PolicyInfo:
        """Make the tenant route with another policy (or parameters); its saved state, if any, is resumed."""
        if not self.settings.policy_switch_enabled:
            raise PolicySwitchDisabled("Switching the routing policy over the API is turned off.")
        build_policy(request.name, request.params)  # fail before storing anything
        async with self.db.session() as session:
            row = await session.scalar(select(PolicyConfigRow).where(tenant_is(PolicyConfigRow)))
            if row is None:
                row = PolicyConfigRow(tenant_id=current_tenant(), name=request.name)
                session.add(row)
            row.name, row.params = request.name, dict(request.params)
        self.policies.forget_choice(current_tenant())
        policy = await self.policies.active()
        await self.bus.publish(
            Event(
                type="policy.switched",
                source="orchestrator",
                tenant_id=current_tenant(),
                data={"policy": policy.name, "version": policy.version, "params": request.params},
            )
        )
        return await self.policy_info()

    async def list_decisions(
        self,
        *,
        limit: int = 50,
        cursor: str | None = None,
        policy: str | None = None,
        since: datetime | None = None,
    ) -> DecisionPage:
        """Logged decisions newest first with their rewards, one page at a time."""
        query = select(DecisionRow).where(tenant_is(DecisionRow))
        if policy:
            query = query.where(DecisionRow.policy == policy)
        if since:
            query = query.where(DecisionRow.created_at >= aware(since))
        if cursor:
            if not cursor.isdigit():
                raise AppError("The cursor is not valid.", code="invalid_cursor")
            query = query.where(DecisionRow.id < int(cursor))
        async with self.db.session() as session:
            rows = list(await session.scalars(query.order_by(DecisionRow.id.desc()).limit(limit + 1)))
            page = rows[:limit]
            rewards = await session.scalars(
                tenant_select(RewardRow)
                .where(RewardRow.decision_id.in_([r.id for r in page]))
                .order_by(RewardRow.id)
            )
            joined: dict[int, list[Reward]] = {}
            for reward in rewards:
                joined.setdefault(reward.decision_id, []).append(Reward.model_validate(reward))
        items = [
            DecisionLogEntry(
                **Decision.model_validate(r).model_dump(), task_id=r.task_id, rewards=joined.get(r.id, [])
            )
            for r in page
        ]
        return DecisionPage(items=items, next_cursor=str(page[-1].id) if len(rows) > limit else None)

    async def evaluate(self, request: EvaluationRequest) -> EvaluationReport:
        """Estimate offline, from the decision log, the mean reward `request.policy` would have earned."""
        target = await self.policies.restored(build_policy(request.policy, request.params))
        log_rows = await self._rewarded_decisions(request)
        state = "learned" if target.version else "fresh"
        if not log_rows:
            return EvaluationReport(
                policy=target.name,
                params=request.params,
                state=state,
                decisions=0,
                logged_reward=None,
                ips=None,
                doubly_robust=None,
                effective_sample_size=0.0,
                agreement=0.0,
            )
        embeddings = await self.policies.embeddings(target, [row["description"] for row in log_rows])
        logged = [
            evaluation.logged_decision(**row, embedding=e)
            for row, e in zip(log_rows, embeddings, strict=True)
        ]
        result = await asyncio.to_thread(evaluation.evaluate, target, logged)
        return EvaluationReport(
            policy=target.name,
            params=request.params,
            state=state,
            decisions=result.decisions,
            logged_reward=EstimateOut(**vars(result.logged_reward)),
            ips=EstimateOut(**vars(result.ips)),
            doubly_robust=EstimateOut(**vars(result.doubly_robust)),
            effective_sample_size=result.effective_sample_size,
            agreement=result.agreement,
        )

    async def _rewarded_decisions(self, request: EvaluationRequest) -> list[dict[str, Any]]:
        """Policy-made decisions with the mean of their rewards, newest `limit` of them, oldest first."""
        mean_reward = (
            select(RewardRow.decision_id, func.avg(RewardRow.reward).label("reward"))
            .where(tenant_is(RewardRow), RewardRow.decision_id.is_not(None))
            .group_by(RewardRow.decision_id)
            .subquery()
        )
        query = (
            select(DecisionRow, TaskRow.description, TaskRow.priority, TaskRow.meta, mean_reward.c.reward)
            .join(mean_reward, mean_reward.c.decision_id == DecisionRow.id)
            .join(TaskRow, TaskRow.id == DecisionRow.task_id)
            .where(
                tenant_is(DecisionRow), tenant_is(TaskRow), DecisionRow.policy.not_in(("explicit", "review"))
            )
        )
        if request.since:
            query = query.where(DecisionRow.created_at >= aware(request.since))
        if request.logged_by:
            query = query.where(DecisionRow.policy == request.logged_by)
        query = query.order_by(DecisionRow.id.desc()).limit(request.limit)
        async with self.db.session() as session:
            rows = (await session.execute(query)).all()
        return [
            {
                "description": description,
                "priority": priority,
                "metadata": meta,
                "candidates": d.candidates,
                "state": d.state,
                "chosen": d.chosen_agent,
                "probability": d.probability,
                "reward": float(reward),
            }
            for d, description, priority, meta, reward in reversed(rows)
        ]
