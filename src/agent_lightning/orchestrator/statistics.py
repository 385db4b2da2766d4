"""Aggregates over the orchestrator's tables for monitoring (`TaskStatistics` in schemas.py): the counts,
recent outcomes and rewards the dashboard's summary and the alert rules read. Read-only; the orchestrator's
tables stay its own, whichever process asks (monitoring reads the shared database through this class)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, func, select

from agent_lightning.core.db import Database, utcnow
from agent_lightning.core.tenancy import all_tenants, tenant_is, tenant_select
from agent_lightning.orchestrator.schemas import AgentRewardTotals, FinishedTask, PolicyInUse, TaskStatus
from agent_lightning.orchestrator.tables import PolicyConfigRow, PolicyHeadRow, RewardRow, TaskRow

EVERY_TENANT = "platform gauges and the alert sweep count over every tenant"


def _tasks(*columns, tenant: str | None):
    """`select(*columns)` over one tenant's tasks, or every tenant's (tenant None)."""
    if tenant is None:
        return all_tenants(select(*columns), EVERY_TENANT)
    return select(*columns).where(tenant_is(TaskRow, tenant))


class TaskStatisticsReader:
    """`TaskStatistics` over the database the orchestrator writes."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def tenants(self) -> list[str]:
        """The tenants that have tasks."""
        async with self.db.session() as session:
            statement = all_tenants(select(TaskRow.tenant_id).distinct(), EVERY_TENANT)
            return sorted((await session.execute(statement)).scalars())

    async def counts_by_status(
        self, tenant: str | None, statuses: tuple[str, ...] | None = None
    ) -> dict[str, int]:
        """Tasks by status (only `statuses` when given; a status without tasks is absent)."""
        statement = _tasks(TaskRow.status, func.count(), tenant=tenant).group_by(TaskRow.status)
        if statuses is not None:
            statement = statement.where(TaskRow.status.in_(statuses))
        async with self.db.session() as session:
            return {status: n for status, n in await session.execute(statement)}

    async def expired_leases(self, tenant: str | None) -> int:
        """Running tasks whose lease has run out (their process may have died)."""
        statement = _tasks(func.count(TaskRow.id), tenant=tenant).where(
            TaskRow.status == TaskStatus.RUNNING, TaskRow.lease_until < utcnow()
        )
        async with self.db.session() as session:
            return int(await session.scalar(statement) or 0)

    async def created_and_finished_since(self, tenant: str, since: datetime) -> tuple[int, int]:
        """Tasks created, and tasks finished, since `since`."""
        async with self.db.session() as session:
            created = await session.scalar(
                _tasks(func.count(TaskRow.id), tenant=tenant).where(TaskRow.created_at >= since)
            )
            finished = await session.scalar(
                _tasks(func.count(TaskRow.id), tenant=tenant).where(TaskRow.finished_at >= since)
            )
        return int(created or 0), int(finished or 0)

    async def counts_by_agent(self, tenant: str) -> dict[str, dict[str, int]]:
        """Tasks by agent, then by status."""
        statement = (
            tenant_select(TaskRow.agent_id, TaskRow.status, func.count(), tenant=tenant)
            .where(TaskRow.agent_id.is_not(None))
            .group_by(TaskRow.agent_id, TaskRow.status)
        )
        counts: dict[str, dict[str, int]] = {}
        async with self.db.session() as session:
            for agent, status, n in await session.execute(statement):
                counts.setdefault(agent, {})[status] = n
        return counts

    async def recent_finished(self, tenant: str, limit: int) -> list[FinishedTask]:
        """The last `limit` tasks that succeeded or failed, newest first."""
        statement = (
            tenant_select(
                TaskRow.agent_id, TaskRow.status, TaskRow.created_at, TaskRow.finished_at, tenant=tenant
            )
            .where(
                TaskRow.status.in_((TaskStatus.SUCCEEDED, TaskStatus.FAILED)),
                TaskRow.finished_at.is_not(None),
            )
            .order_by(TaskRow.finished_at.desc())
            .limit(limit)
        )
        async with self.db.session() as session:
            rows = (await session.execute(statement)).all()
        return [
            FinishedTask(agent_id=agent, status=status, created_at=created, finished_at=finished)
            for agent, status, created, finished in rows
        ]

    async def reward_totals(self, tenant: str) -> list[AgentRewardTotals]:
        """Per agent: how many rewards, their mean, and how many came from feedback."""
        statement = tenant_select(
            RewardRow.agent_id,
            func.count(RewardRow.id),
            func.avg(RewardRow.reward),
            func.sum(case((RewardRow.source == "feedback", 1), else_=0)),
            tenant=tenant,
        ).group_by(RewardRow.agent_id)
        async with self.db.session() as session:
            rows = (await session.execute(statement)).all()
        return [
            AgentRewardTotals(
                agent_id=agent,
                rewards=n,
                mean_reward=None if mean is None else float(mean),
                feedback=int(feedback or 0),
            )
            for agent, n, mean, feedback in rows
        ]

    async def recent_rewards(self, tenant: str, limit: int) -> list[tuple[str, float]]:
        """The last `limit` rewards as (agent, reward), newest first."""
        statement = (
            tenant_select(RewardRow.agent_id, RewardRow.reward, tenant=tenant)
            .order_by(RewardRow.id.desc())
            .limit(limit)
        )
        async with self.db.session() as session:
            return [(agent, float(reward)) for agent, reward in await session.execute(statement)]

    async def policy_in_use(self, tenant: str, default: str) -> PolicyInUse:
        """The tenant's routing policy (`default` unless it chose one) and the lessons stored for it: the
        version every replica reaches by folding them."""
        async with self.db.session() as session:
            configured = await session.scalar(tenant_select(PolicyConfigRow.name, tenant=tenant))
            name = configured or default
            version = await session.scalar(
                tenant_select(PolicyHeadRow.seq, tenant=tenant).where(PolicyHeadRow.policy == name)
            )
        return PolicyInUse(name=name, version=version or 0, default=configured is None)
