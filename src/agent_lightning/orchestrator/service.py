"""The orchestrator: task intake, agent choice through the routing policy, and the learning loop."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from agent_lightning.agents.schemas import Agent, AgentRegistry
from agent_lightning.core import tracing
from agent_lightning.core.config import Settings
from agent_lightning.core.db import Database, new_id, utcnow
from agent_lightning.core.errors import AppError, Conflict, Invalid, NotFound
from agent_lightning.core.events import Event, EventBus
from agent_lightning.core.logging import current_correlation_id, get_logger
from agent_lightning.core.tenancy import DEFAULT_TENANT, current_tenant
from agent_lightning.orchestrator import evaluation
from agent_lightning.orchestrator.embedding import TaskEmbedder
from agent_lightning.orchestrator.matching import capability_score, has_capabilities
from agent_lightning.orchestrator.policy import (
    POLICY_NAMES,
    Candidate,
    Choice,
    RoutingContext,
    RoutingPolicy,
    make_policy,
    uses_embeddings,
)
from agent_lightning.orchestrator.schemas import (
    AssignTaskRequest,
    AssignTaskResponse,
    Attempt,
    AgentPolicyStats,
    CandidateScore,
    Decision,
    DecisionLogEntry,
    DecisionPage,
    EstimateOut,
    EvaluationReport,
    EvaluationRequest,
    FeedbackRequest,
    FeedbackResponse,
    PolicyInfo,
    PolicyRef,
    PolicySwitchRequest,
    QTable,
    Reward,
    RoutePreview,
    RoutePreviewRequest,
    Task,
    TaskDetail,
    TaskFilters,
    TaskPage,
)
from agent_lightning.orchestrator.tables import (
    FINISHED,
    AttemptRow,
    DecisionRow,
    PolicyConfigRow,
    PolicyStateRow,
    RewardRow,
    TaskRow,
)
from agent_lightning.validation.schemas import MAX_TEXT, ScanRequest, TaskRejected, ValidateRequest, Validator

log = get_logger(__name__)

SEED_FIELDS = (
    "target_environment",
    "working_directory",
    "search_scope",
    "platform",
    "environment_vars",
    "execution_mode",
)
KNOWN_ENVIRONMENTS = {"local", "development", "staging", "production", "ubuntu_server", "aws_ec2"}


def outcome_reward(*, success: bool, latency_s: float, latency_target_s: float) -> float:
    """Reward of an attempt's outcome: 0 on failure; on success 1, less up to 0.3 for slowness."""
    if not success:
        return 0.0
    return round(1.0 - 0.3 * min(latency_s / latency_target_s, 1.0), 4)


def outcome_cost(*, latency_s: float, latency_target_s: float, tokens: int = 0, token_budget: int = 4096) -> float:
    """Cost of an attempt in [0, 1]: half its share of the latency target, half its share of a token budget."""
    return round(0.5 * min(latency_s / latency_target_s, 1.0) + 0.5 * min(tokens / token_budget, 1.0), 4)


class PolicySwitchDisabled(AppError):
    """Switching the routing policy over the API is turned off (ALP_POLICY_SWITCH_ENABLED=false)."""

    status = 403
    code = "policy_switch_disabled"


EMBED_BATCH = 64
MAX_SAVE_ATTEMPTS = 5  # compare-and-set rounds when replicas save the same policy state at once


def feedback_reward(score: float) -> float:
    """A person's 0–10 score as a reward in [0, 1]."""
    return round(score / 10.0, 4)


def _request_hash(request: AssignTaskRequest) -> str:
    body = request.model_dump(mode="json", exclude={"idempotency_key"})
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _aware(moment: datetime) -> datetime:
    """A time without a zone is taken as UTC (the database stores UTC)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _encode_cursor(row: TaskRow) -> str:
    raw = f"{row.created_at.isoformat()}|{row.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, task_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(created), task_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise AppError("The cursor is not valid.", code="invalid_cursor") from exc


def _task_texts(request: AssignTaskRequest) -> dict[str, str]:
    """The texts of a task the validator scans, by field: the description, the seed fields and every string
    in the metadata and environment variables."""
    texts = {"description": request.description}
    for name in SEED_FIELDS:
        value = getattr(request, name)
        if isinstance(value, str) and value:
            texts[name] = value
    for key, value in request.environment_vars.items():
        texts[f"environment_vars.{key}"] = value

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, str):
            texts[prefix] = value
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}", v)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(f"{prefix}[{i}]", v)

    walk("metadata", request.metadata)
    return texts


def _task_out(row: TaskRow) -> Task:
    return Task(
        task_id=row.id,
        description=row.description,
        status=row.status,
        priority=row.priority,
        assigned_agent=row.agent_id,
        agent_version=row.agent_version,
        confidence=row.confidence,
        reason=row.reason,
        warnings=row.warnings,
        validation_passed=row.validation_passed,
        metadata=row.meta,
        idempotency_key=row.idempotency_key,
        result=row.result,
        error=row.error,
        attempts_count=row.attempts_count,
        max_attempts=row.max_attempts,
        created_at=row.created_at,
        updated_at=row.updated_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


class OrchestratorService:
    """Accepts tasks, routes them, hands them to the work queue, and learns from their outcomes.

    `dispatch` is how an assigned task reaches the worker (a taskiq kicker set by the composition root).
    `policy` is the deployment's policy, built with `policy_params`; a tenant may switch to another
    (`switch_policy`), kept in the `policy_config` table. `embedder`, when given, embeds task
    descriptions for the policies that use embeddings.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        agents: AgentRegistry,
        policy: RoutingPolicy,
        bus: EventBus,
        policy_params: dict[str, Any] | None = None,
        embedder: TaskEmbedder | None = None,
        validator: Validator | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.agents = agents
        self.bus = bus
        self.embedder = embedder
        self.validator = validator
        self.default_policy: tuple[str, dict[str, Any]] = (policy.name, dict(policy_params or {}))
        self._policies: dict[str, tuple[tuple[str, dict[str, Any]], RoutingPolicy]] = {
            DEFAULT_TENANT: (self.default_policy, policy)
        }
        self.dispatch = None  # async callable(task_id) -> None, set by the composition root
        self._policy_lock = asyncio.Lock()
        self._switch_lock = asyncio.Lock()

    @property
    def policy(self) -> RoutingPolicy:
        """The policy of the current tenant as last resolved (see `active_policy`)."""
        entry = self._policies.get(current_tenant()) or self._policies[DEFAULT_TENANT]
        return entry[1]

    # -- intake ----------------------------------------------------------------------------------------

    @tracing.traced("route task")  # the decision, its record and the queued job (README "Tracing")
    async def assign(self, request: AssignTaskRequest) -> AssignTaskResponse:
        """Create a task, choose its agent and queue it (or hold it for review when unsure)."""
        request_hash = _request_hash(request)
        if request.idempotency_key:
            replay = await self._idempotent_replay(request.idempotency_key, request_hash)
            if replay is not None:
                return replay
        request, scan_warnings = await self._scan(request)  # raises TaskRejected: then nothing is created
        started = time.perf_counter()
        task_id = request.task_id or new_id()
        policy = await self.active_policy()
        embedding = await self._embedding(policy, request.description)
        context = RoutingContext(request.description, request.priority, request.metadata, embedding)
        if request.agent_id:
            agent = await self._active_agent(request.agent_id)
            choice = policy.score(context, [self._candidate(agent, request.description)])
            policy_name, reason = "explicit", f"{agent.name}: chosen by the client"
        else:
            candidates = await self._candidates(request.description, request.required_capabilities)
            async with self._policy_lock:
                choice = policy.choose(context, [c for c, _ in candidates])
            agent = next(a for c, a in candidates if c.agent_id == choice.agent_id)
            policy_name = policy.name
            reason = capability_score(agent, request.description).reason(agent.name)
        tracing.annotate({"alp.task.id": task_id, "alp.policy.name": policy_name, "alp.policy.version": policy.version,
                          "alp.routing.agent": agent.id, "alp.routing.probability": choice.probability,
                          "alp.routing.confidence": choice.confidence, "alp.routing.candidates": len(choice.scores),
                          "alp.routing.state": choice.state})
        warnings = self._warnings(request, choice.confidence) + scan_warnings
        confident = choice.confidence >= self.settings.confidence_threshold
        held = not (confident or request.force_execute or request.agent_id)
        status = "awaiting_review" if held else "assigned"
        if held:
            reason += f"; confidence {choice.confidence:.2f} is below {self.settings.confidence_threshold}"
        response = AssignTaskResponse(
            task_id=task_id,
            assigned_agent=agent.id,
            agent_version=agent.version,
            confidence=choice.confidence,
            status=status,
            reason=reason,
            candidates=[CandidateScore(**s) for s in choice.scores[:5]],
            policy=PolicyRef(name=policy_name, version=policy.version),
            probability=choice.probability,
            validation_passed=confident,
            warnings=warnings,
        )
        metadata = dict(request.metadata)
        metadata.update({f: getattr(request, f) for f in SEED_FIELDS if getattr(request, f)})
        row = TaskRow(
            id=task_id,
            tenant_id=current_tenant(),
            description=request.description,
            priority=request.priority,
            meta=metadata,
            status=status,
            agent_id=agent.id,
            agent_version=agent.version,
            required_capabilities=request.required_capabilities,
            confidence=choice.confidence,
            reason=reason,
            warnings=warnings,
            validation_passed=confident,
            force_execute=request.force_execute,
            idempotency_key=request.idempotency_key,
            request_hash=request_hash,
            assignment=response.model_dump(mode="json"),
            max_attempts=request.max_attempts or self.settings.max_attempts,
            timeout_s=request.timeout or self.settings.task_timeout_s,
            correlation_id=current_correlation_id(),
        )
        try:
            async with self.db.session() as session:
                session.add(row)
                await session.flush()
                session.add(self._decision_row(task_id, policy_name, choice, policy.version))
        except IntegrityError as exc:
            if request.idempotency_key:  # a concurrent request with the same key won the race
                replay = await self._idempotent_replay(request.idempotency_key, request_hash)
                if replay is not None:
                    return replay
            raise Conflict(f"A task with id '{task_id}' already exists.", code="task_exists") from exc
        decision_ms = round((time.perf_counter() - started) * 1000, 3)  # intake to the stored decision
        await self._publish(
            "task.created", task_id, priority=request.priority, agent_id=agent.id, policy=policy_name, decision_ms=decision_ms
        )
        if status == "assigned":
            await self._publish("task.assigned", task_id, agent_id=agent.id, confidence=choice.confidence)
            await self._dispatch(task_id)
        return response

    async def preview(self, request: RoutePreviewRequest) -> RoutePreview:
        """The greedy choice of the current policy for a description, without creating a task."""
        candidates = await self._candidates(request.description, request.required_capabilities)
        policy = await self.active_policy()
        context = RoutingContext(request.description, embedding=await self._embedding(policy, request.description))
        choice = policy.score(context, [c for c, _ in candidates])
        agent = next(a for c, a in candidates if c.agent_id == choice.agent_id)
        return RoutePreview(
            agent_id=agent.id,
            confidence=choice.confidence,
            reason=capability_score(agent, request.description).reason(agent.name),
            candidates=[CandidateScore(**s) for s in choice.scores[:5]],
            policy=PolicyRef(name=policy.name, version=policy.version),
        )

    async def approve(self, task_id: str, agent_id: str | None = None) -> AssignTaskResponse:
        """Release a task held for review, optionally with another agent."""
        async with self.db.session() as session:
            row = await self._task_row(session, task_id)
            if row.status != "awaiting_review":
                raise Conflict(f"Task '{task_id}' is {row.status}, not awaiting review.", code="not_awaiting_review")
            if agent_id and agent_id != row.agent_id:
                agent = await self._active_agent(agent_id)
                policy = await self.active_policy()
                embedding = await self._embedding(policy, row.description)
                context = RoutingContext(row.description, row.priority, row.meta, embedding)
                choice = policy.score(context, [self._candidate(agent, row.description)])
                session.add(self._decision_row(task_id, "review", choice, policy.version))
                row.agent_id, row.agent_version, row.confidence = agent.id, agent.version, choice.confidence
                row.reason = f"{agent.name}: chosen on review"
            else:
                row.reason += "; approved on review"
            row.status = "assigned"
            assignment = AssignTaskResponse.model_validate(row.assignment).model_copy(
                update={
                    "assigned_agent": row.agent_id,
                    "agent_version": row.agent_version,
                    "confidence": row.confidence,
                    "status": "assigned",
                    "reason": row.reason,
                }
            )
        await self._publish("task.assigned", task_id, agent_id=assignment.assigned_agent, approved=True)
        await self._dispatch(task_id)
        return assignment

    # -- reading ---------------------------------------------------------------------------------------

    async def get_task(self, task_id: str) -> TaskDetail:
        """A task with its attempts, routing decisions and rewards."""
        async with self.db.session() as session:
            row = await self._task_row(session, task_id)
            attempts = await session.scalars(
                select(AttemptRow).where(AttemptRow.task_id == task_id).order_by(AttemptRow.number)
            )
            decisions = await session.scalars(
                select(DecisionRow).where(DecisionRow.task_id == task_id).order_by(DecisionRow.id)
            )
            rewards = await session.scalars(
                select(RewardRow).where(RewardRow.task_id == task_id).order_by(RewardRow.id)
            )
            return TaskDetail(
                **_task_out(row).model_dump(),
                attempts=[Attempt.model_validate(a) for a in attempts],
                decisions=[Decision.model_validate(d) for d in decisions],
                rewards=[Reward.model_validate(r) for r in rewards],
            )

    async def list_tasks(self, filters: TaskFilters, *, limit: int = 50, cursor: str | None = None) -> TaskPage:
        """Tasks newest first, filtered, one page at a time (pass `next_cursor` back for the next)."""
        query = select(TaskRow).where(TaskRow.tenant_id == current_tenant())
        if filters.status:
            query = query.where(TaskRow.status.in_(filters.status))
        if filters.agent_id:
            query = query.where(TaskRow.agent_id == filters.agent_id)
        if filters.priority_min is not None:
            query = query.where(TaskRow.priority >= filters.priority_min)
        if filters.priority_max is not None:
            query = query.where(TaskRow.priority <= filters.priority_max)
        if filters.created_after:
            query = query.where(TaskRow.created_at >= filters.created_after)
        if filters.created_before:
            query = query.where(TaskRow.created_at < filters.created_before)
        if filters.text:
            escaped = filters.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(TaskRow.description.ilike(f"%{escaped}%", escape="\\"))
        if cursor:
            created, task_id = _decode_cursor(cursor)
            query = query.where(
                or_(TaskRow.created_at < created, and_(TaskRow.created_at == created, TaskRow.id < task_id))
            )
        query = query.order_by(TaskRow.created_at.desc(), TaskRow.id.desc()).limit(limit + 1)
        async with self.db.session() as session:
            rows = list(await session.scalars(query))
        next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
        return TaskPage(items=[_task_out(r) for r in rows[:limit]], next_cursor=next_cursor)

    async def q_table(self) -> QTable:
        """The seed policy's Q-values by state (empty under the other policies)."""
        policy = await self.active_policy()
        table = policy.state().get("q", {}) if policy.name == "seed-q" else {}
        return QTable(
            states=sorted(table),
            total_entries=sum(len(v) for v in table.values()),
            q_table=table,
            policy=PolicyRef(name=policy.name, version=policy.version),
        )

    # -- changes after intake --------------------------------------------------------------------------

    async def cancel(self, task_id: str) -> Task:
        """Cancel a task that has not finished; a running attempt is abandoned."""
        async with self.db.session() as session:
            row = await self._task_row(session, task_id)
            if row.status in FINISHED:
                raise Conflict(f"Task '{task_id}' is already {row.status}.", code="task_finished")
            row.status, row.finished_at, row.lease_until = "cancelled", utcnow(), None
            task = _task_out(row)
        await self._publish("task.cancelled", task_id)
        return task

    async def feedback(self, task_id: str, body: FeedbackRequest) -> FeedbackResponse:
        """A person's score for a finished task: stored, and the policy learns from it."""
        async with self.db.session() as session:
            row = await self._task_row(session, task_id)
            if row.status not in ("succeeded", "failed"):
                raise Conflict(f"Task '{task_id}' is {row.status}; feedback needs a finished task.", code="task_not_finished")
            decision = await self._latest_decision(session, task_id)
            reward = feedback_reward(body.score)
            session.add(
                RewardRow(
                    tenant_id=row.tenant_id,
                    task_id=task_id,
                    decision_id=decision.id if decision else None,
                    agent_id=row.agent_id,
                    source="feedback",
                    score=body.score,
                    reward=reward,
                    comment=body.comment,
                )
            )
            agent_id = row.agent_id
        await self._publish("feedback.received", task_id, agent_id=agent_id, score=body.score, reward=reward)
        await self.learn(decision, agent_id, reward)
        return FeedbackResponse(
            task_id=task_id,
            agent_id=agent_id,
            reward=reward,
            policy=PolicyRef(name=self.policy.name, version=self.policy.version),
        )

    # -- the learning loop -----------------------------------------------------------------------------

    async def add_outcome_reward(
        self, session: AsyncSession, row: TaskRow, *, success: bool, latency_s: float, factor: float = 1.0
    ) -> tuple[DecisionRow | None, float]:
        """Store the reward of an attempt's outcome in the caller's transaction (the one that finishes
        the task, so a finished task always has its reward). Call `learn` after the commit. `factor` scales it
        (the share of the validator's result checks the answer passed)."""
        reward = outcome_reward(success=success, latency_s=latency_s, latency_target_s=self.settings.latency_target_s)
        reward = round(reward * factor, 4)
        decision = await self._latest_decision(session, row.id)
        session.add(
            RewardRow(
                tenant_id=row.tenant_id,
                task_id=row.id,
                decision_id=decision.id if decision else None,
                agent_id=row.agent_id,
                source="outcome",
                reward=reward,
            )
        )
        return decision, reward

    async def learn(self, decision: DecisionRow | None, agent_id: str, reward: float, *, cost: float = 0.0) -> None:
        """Update the policy with a reward (and cost) for a logged decision, and persist its new state.

        Late rewards count the same as prompt ones: the decision row carries the features it was made on.
        """
        if decision is None:
            return
        policy = await self.active_policy()
        if decision.policy not in (policy.name, "explicit", "review"):
            return  # logged by another policy: kept for offline evaluation only
        features = {**decision.features, "cost": cost} if cost else decision.features
        async with self._policy_lock:
            await self._update_and_save(policy, decision.state, agent_id, reward, features)
        await self._publish("policy.updated", decision.task_id, agent_id=agent_id, reward=reward, version=policy.version)

    async def active_policy(self) -> RoutingPolicy:
        """The current tenant's policy: its `policy_config` row, else the deployment's default."""
        tenant = current_tenant()
        async with self.db.session() as session:
            row = await session.scalar(select(PolicyConfigRow).where(PolicyConfigRow.tenant_id == tenant))
        config = (row.name, dict(row.params)) if row else self.default_policy
        cached = self._policies.get(tenant)
        if cached and cached[0] == config:
            return cached[1]
        async with self._switch_lock:
            policy = self._build_policy(*config)
            await self._load_state(policy)
            self._policies[tenant] = (config, policy)
        return policy

    def _build_policy(self, name: str, params: dict[str, Any]) -> RoutingPolicy:
        """A fresh policy, or `Invalid` when the name or a parameter is wrong."""
        try:
            return make_policy(name, **params)
        except (TypeError, ValueError) as exc:
            raise Invalid(f"Cannot build policy '{name}': {exc}", code="invalid_policy", details={"available": list(POLICY_NAMES)}) from exc

    async def load_policy(self) -> None:
        """Restore the learned state saved by an earlier run into the current tenant's policy."""
        cached = self._policies.get(current_tenant())
        if cached is not None:
            await self._load_state(cached[1])
        await self.active_policy()

    async def _update_and_save(
        self, policy: RoutingPolicy, state: str, agent_id: str, reward: float, features: dict[str, Any]
    ) -> None:
        """Apply one reward on top of the newest saved state, so replicas sharing a database never lose
        each other's updates: catch up if another replica saved since, update, save only if nobody saved
        in between (compare-and-set on the version), else reload and apply the reward again."""
        reload = False
        for _ in range(MAX_SAVE_ATTEMPTS):
            saved = await self._saved_version(policy.name)
            if saved is not None and (reload or saved != policy.version):
                saved = await self._load_state(policy)
            policy.update(state=state, agent_id=agent_id, reward=reward, features=features)
            if await self._save_state(policy, expected_version=saved):
                return
            reload = True
        log.warning("policy_update_not_saved", policy=policy.name, version=policy.version)

    async def _saved_version(self, name: str) -> int | None:
        async with self.db.session() as session:
            return await session.scalar(
                select(PolicyStateRow.version).where(PolicyStateRow.tenant_id == current_tenant(), PolicyStateRow.name == name)
            )

    async def _load_state(self, policy: RoutingPolicy) -> int | None:
        """Load the tenant's saved state of this policy into it, if there is one; its version."""
        async with self.db.session() as session:
            row = await session.scalar(
                select(PolicyStateRow).where(PolicyStateRow.tenant_id == current_tenant(), PolicyStateRow.name == policy.name)
            )
        if row is None:
            return None
        policy.load(row.state)
        log.info("policy_restored", policy=policy.name, version=row.version)
        return row.version

    async def _save_state(self, policy: RoutingPolicy, *, expected_version: int | None) -> bool:
        """Save the tenant's state of this policy if the saved one is still `expected_version` (None:
        there is none yet); False when another replica got there first."""
        where = (PolicyStateRow.tenant_id == current_tenant(), PolicyStateRow.name == policy.name)
        try:
            async with self.db.session() as session:
                if expected_version is None:
                    session.add(PolicyStateRow(tenant_id=current_tenant(), name=policy.name, version=policy.version, state=policy.state()))
                    return True
                saved = await session.execute(
                    update(PolicyStateRow)
                    .where(*where, PolicyStateRow.version == expected_version)
                    .values(version=policy.version, state=policy.state(), updated_at=utcnow())
                )
                return saved.rowcount == 1
        except IntegrityError:  # another replica saved the first state at the same moment
            return False

    # -- the policy API ------------------------------------------------------------------------------

    async def policy_info(self) -> PolicyInfo:
        """The tenant's policy, its parameters, and per-agent statistics from the decision log."""
        policy = await self.active_policy()
        config = self._policies[current_tenant()][0]
        tenant = current_tenant()
        async with self.db.session() as session:
            decisions = await session.execute(
                select(DecisionRow.chosen_agent, func.count(), func.max(DecisionRow.created_at))
                .where(DecisionRow.tenant_id == tenant)
                .group_by(DecisionRow.chosen_agent)
            )
            rewards = await session.execute(
                select(RewardRow.agent_id, func.count(), func.avg(RewardRow.reward))
                .where(RewardRow.tenant_id == tenant)
                .group_by(RewardRow.agent_id)
            )
            by_agent = {a: (n, last) for a, n, last in decisions}
            rewarded = {a: (n, mean) for a, n, mean in rewards}
        agents = [
            AgentPolicyStats(
                agent_id=a,
                decisions=by_agent.get(a, (0, None))[0],
                rewards=rewarded.get(a, (0, None))[0],
                mean_reward=None if rewarded.get(a, (0, None))[1] is None else round(float(rewarded[a][1]), 4),
                last_decision_at=by_agent.get(a, (0, None))[1],
            )
            for a in sorted(set(by_agent) | set(rewarded))
        ]
        return PolicyInfo(
            tenant_id=tenant,
            name=policy.name,
            version=policy.version,
            params=config[1],
            default=config == self.default_policy,
            available=list(POLICY_NAMES),
            switch_enabled=self.settings.policy_switch_enabled,
            uses_embeddings=uses_embeddings(policy) and self.embedder is not None,
            agents=agents,
        )

    async def switch_policy(self, request: PolicySwitchRequest) -> PolicyInfo:
        """Make the tenant route with another policy (or parameters); its saved state, if any, is resumed."""
        if not self.settings.policy_switch_enabled:
            raise PolicySwitchDisabled("Switching the routing policy over the API is turned off.")
        self._build_policy(request.name, request.params)  # fail before storing anything
        async with self.db.session() as session:
            row = await session.scalar(select(PolicyConfigRow).where(PolicyConfigRow.tenant_id == current_tenant()))
            if row is None:
                row = PolicyConfigRow(tenant_id=current_tenant(), name=request.name)
                session.add(row)
            row.name, row.params = request.name, dict(request.params)
        policy = await self.active_policy()
        await self.bus.publish(
            Event(type="policy.switched", source="orchestrator", tenant_id=current_tenant(),
                  data={"policy": policy.name, "version": policy.version, "params": request.params})
        )
        return await self.policy_info()

    async def list_decisions(
        self, *, limit: int = 50, cursor: str | None = None, policy: str | None = None, since: datetime | None = None
    ) -> DecisionPage:
        """Logged decisions newest first with their rewards, one page at a time."""
        query = select(DecisionRow).where(DecisionRow.tenant_id == current_tenant())
        if policy:
            query = query.where(DecisionRow.policy == policy)
        if since:
            query = query.where(DecisionRow.created_at >= _aware(since))
        if cursor:
            if not cursor.isdigit():
                raise AppError("The cursor is not valid.", code="invalid_cursor")
            query = query.where(DecisionRow.id < int(cursor))
        async with self.db.session() as session:
            rows = list(await session.scalars(query.order_by(DecisionRow.id.desc()).limit(limit + 1)))
            page = rows[:limit]
            rewards = await session.scalars(
                select(RewardRow).where(RewardRow.decision_id.in_([r.id for r in page])).order_by(RewardRow.id)
            )
            joined: dict[int, list[Reward]] = {}
            for reward in rewards:
                joined.setdefault(reward.decision_id, []).append(Reward.model_validate(reward))
        items = [
            DecisionLogEntry(**Decision.model_validate(r).model_dump(), task_id=r.task_id, rewards=joined.get(r.id, []))
            for r in page
        ]
        return DecisionPage(items=items, next_cursor=str(page[-1].id) if len(rows) > limit else None)

    async def evaluate(self, request: EvaluationRequest) -> EvaluationReport:
        """Estimate offline, from the decision log, the mean reward `request.policy` would have earned."""
        target = self._build_policy(request.policy, request.params)
        await self._load_state(target)
        log_rows = await self._rewarded_decisions(request)
        state = "learned" if target.version else "fresh"
        if not log_rows:
            return EvaluationReport(policy=target.name, params=request.params, state=state, decisions=0,
                                    logged_reward=None, ips=None, doubly_robust=None, effective_sample_size=0.0, agreement=0.0)
        embeddings = await self._embeddings(target, [row["description"] for row in log_rows])
        logged = [evaluation.logged_decision(**row, embedding=e) for row, e in zip(log_rows, embeddings, strict=True)]
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
            .where(RewardRow.tenant_id == current_tenant(), RewardRow.decision_id.is_not(None))
            .group_by(RewardRow.decision_id)
            .subquery()
        )
        query = (
            select(DecisionRow, TaskRow.description, TaskRow.priority, TaskRow.meta, mean_reward.c.reward)
            .join(mean_reward, mean_reward.c.decision_id == DecisionRow.id)
            .join(TaskRow, TaskRow.id == DecisionRow.task_id)
            .where(DecisionRow.tenant_id == current_tenant(), DecisionRow.policy.not_in(("explicit", "review")))
        )
        if request.since:
            query = query.where(DecisionRow.created_at >= _aware(request.since))
        if request.logged_by:
            query = query.where(DecisionRow.policy == request.logged_by)
        query = query.order_by(DecisionRow.id.desc()).limit(request.limit)
        async with self.db.session() as session:
            rows = (await session.execute(query)).all()
        return [
            {"description": description, "priority": priority, "metadata": meta, "candidates": d.candidates,
             "state": d.state, "chosen": d.chosen_agent, "probability": d.probability, "reward": float(reward)}
            for d, description, priority, meta, reward in reversed(rows)
        ]

    async def _embedding(self, policy: RoutingPolicy, text: str) -> tuple[float, ...] | None:
        """The description's embedding when the policy uses one and the model service gives one."""
        return (await self._embeddings(policy, [text]))[0]

    async def _embeddings(self, policy: RoutingPolicy, texts: list[str]) -> list[tuple[float, ...] | None]:
        """One embedding (or None) per text, in batches, when the policy uses them."""
        if self.embedder is None or not uses_embeddings(policy):
            return [None] * len(texts)
        vectors: list[tuple[float, ...] | None] = []
        for start in range(0, len(texts), EMBED_BATCH):
            batch = texts[start : start + EMBED_BATCH]
            vectors.extend(await self.embedder.embed(batch) or [None] * len(batch))
        return vectors

    # -- helpers ---------------------------------------------------------------------------------------

    async def _dispatch(self, task_id: str) -> None:
        """Queue the task; if the queue cannot take it now, it stays waiting and the orphan sweep queues it
        again once it has waited `lease_s` (the row is the source of truth, so the intake still succeeds)."""
        if self.dispatch is None:
            return
        try:
            await self.dispatch(task_id)
        except Exception as exc:
            log.warning("dispatch_failed", task_id=task_id, error=repr(exc))

    async def _publish(self, event_type: str, task_id: str, **data: Any) -> None:
        await self.bus.publish(
            Event(type=event_type, source="orchestrator", tenant_id=current_tenant(), data={"task_id": task_id, **data})
        )

    async def _idempotent_replay(self, key: str, request_hash: str) -> AssignTaskResponse | None:
        async with self.db.session() as session:
            row = await session.scalar(
                select(TaskRow).where(TaskRow.tenant_id == current_tenant(), TaskRow.idempotency_key == key)
            )
        if row is None:
            return None
        if row.request_hash != request_hash:
            raise Conflict(
                "This idempotency key was used with a different request.",
                code="idempotency_conflict",
                details={"task_id": row.id},
            )
        return AssignTaskResponse.model_validate(row.assignment)

    async def _active_agent(self, agent_id: str) -> Agent:
        agent = await self.agents.get(agent_id)
        if agent.status != "active":
            raise Conflict(f"Agent '{agent_id}' is {agent.status} and cannot be assigned.", code="agent_not_active")
        return agent

    @staticmethod
    def _candidate(agent: Agent, description: str) -> Candidate:
        return Candidate(agent_id=agent.id, capability=capability_score(agent, description).score)

    async def _candidates(self, description: str, required: list[str]) -> list[tuple[Candidate, Agent]]:
        agents = [a for a in await self.agents.list(status="active") if has_capabilities(a, required)]
        if not agents:
            raise Invalid(
                "No active agent has the required capabilities.",
                code="no_eligible_agent",
                details={"required_capabilities": required},
            )
        return [(self._candidate(a, description), a) for a in agents]

    async def _scan(self, request: AssignTaskRequest) -> tuple[AssignTaskRequest, list[str]]:
        """Ask the validator about the task's texts: reject the task on a blocking finding, else return the
        request (its description cleaned of active HTML with ALP_VALIDATION_SANITIZE_HTML) and its warnings."""
        if self.validator is None or not self.settings.validation_enabled:
            return request, []
        report = await self.validator.scan(ScanRequest(fields=_task_texts(request)))
        if report.blocked:
            rules = sorted({f.rule for f in report.findings if f.blocking})
            log.warning("task_rejected", rules=rules)
            raise TaskRejected(
                f"The task was rejected by validation: {', '.join(rules)}.",
                details={"findings": [f.model_dump() for f in report.findings]},
            )
        warnings = [f"{f.rule} in {f.field} at {f.start}-{f.end}: {f.message}" for f in report.findings
                    if f.severity != "info"]
        if self.settings.validation_sanitize_html and "description" in report.sanitized:
            cleaned = report.sanitized["description"].strip()
            if cleaned:
                request = request.model_copy(update={"description": cleaned})
                warnings.append("html.active: the description was stored as cleaned by nh3.")
        return request, warnings

    async def result_factor(self, row: TaskRow, answer: str) -> float:
        """The validator's result checks on an answer (stored as the task's validation report), as the factor
        on its outcome reward: the share of result checks passed; 1 when the checks are off or cannot run."""
        if self.validator is None or not self.settings.validation_result_checks:
            return 1.0
        try:
            report = await self.validator.validate(
                ValidateRequest(task=row.description, task_id=row.id, result=answer[:MAX_TEXT])
            )
        except Exception as exc:  # the task is done: a validator outage does not undo it
            log.warning("result_validation_failed", task_id=row.id, error=type(exc).__name__)
            return 1.0
        results = [c for c in report.checks if c.name.startswith("result_")]
        return sum(c.passed for c in results) / len(results) if results else 1.0

    def _warnings(self, request: AssignTaskRequest, confidence: float) -> list[str]:
        warnings = []
        if request.priority >= 8 and confidence < 0.75:
            warnings.append(f"High priority ({request.priority}) with moderate confidence {confidence:.2f}.")
        if request.working_directory and not request.working_directory.startswith("/"):
            warnings.append("working_directory should be an absolute path.")
        if request.target_environment and request.target_environment not in KNOWN_ENVIRONMENTS:
            warnings.append(f"Unknown target_environment '{request.target_environment}'.")
        return warnings

    def _decision_row(self, task_id: str, policy_name: str, choice: Choice, version: int) -> DecisionRow:
        return DecisionRow(
            tenant_id=current_tenant(),
            task_id=task_id,
            policy=policy_name,
            policy_version=version,
            state=choice.state,
            features=choice.features,
            candidates=choice.scores,
            chosen_agent=choice.agent_id,
            probability=choice.probability,
            confidence=choice.confidence,
        )

    async def _task_row(self, session: AsyncSession, task_id: str) -> TaskRow:
        row = await session.get(TaskRow, task_id)
        if row is None or row.tenant_id != current_tenant():
            raise NotFound(f"Unknown task '{task_id}'.", code="task_not_found")
        return row

    async def _latest_decision(self, session: AsyncSession, task_id: str) -> DecisionRow | None:
        return await session.scalar(
            select(DecisionRow).where(DecisionRow.task_id == task_id).order_by(DecisionRow.id.desc()).limit(1)
        )

    # -- used by the worker ----------------------------------------------------------------------------

    async def claim(self, task_id: str) -> TaskRow | None:
        """Atomically move an assigned/queued task to running; None if someone else has it or it ended."""
        now = utcnow()
        async with self.db.session() as session:
            timeout_s = await session.scalar(select(TaskRow.timeout_s).where(TaskRow.id == task_id))
            lease_s = max(self.settings.lease_s, (timeout_s or 0) + 60)  # never expires mid-attempt
            result = await session.execute(
                update(TaskRow)
                .where(TaskRow.id == task_id, TaskRow.status.in_(("assigned", "queued")))
                .values(
                    status="running",
                    attempts_count=TaskRow.attempts_count + 1,
                    lease_until=now + timedelta(seconds=lease_s),
                    started_at=now,
                    updated_at=now,
                )
            )
            if result.rowcount != 1:
                return None
            return await session.get(TaskRow, task_id)

    async def recoverable(self, *, sole_worker: bool, include_waiting: bool = True) -> list[str]:
        """Tasks to (re)queue: waiting ones (without `include_waiting`, only those that have waited
        `lease_s` since their last change or queueing: their message may have been lost), and running ones
        whose worker died. A sole worker (one process) knows every running task is orphaned at start-up;
        otherwise a running task is orphaned when its lease has run out. An orphan that has used all its
        attempts fails instead. A second message for a task is harmless: only one claim can win."""
        now = utcnow()
        stale = now - timedelta(seconds=self.settings.lease_s)
        async with self.db.session() as session:
            rows = await session.scalars(select(TaskRow).where(TaskRow.status.in_(("assigned", "queued", "running"))))
            ids, orphaned = [], []
            for row in rows:
                if row.status != "running":
                    if include_waiting or row.updated_at < stale:
                        row.updated_at = now  # queued again now: not again before another `lease_s`
                        ids.append(row.id)
                    continue
                if not sole_worker and row.lease_until and row.lease_until > now:
                    continue
                orphaned.append(row.id)
                row.lease_until = None
                if row.attempts_count >= row.max_attempts:
                    row.status, row.finished_at = "failed", now
                    row.error = f"abandoned: the worker stopped during attempt {row.attempts_count} of {row.max_attempts}"
                    continue
                row.status = "queued"
                ids.append(row.id)
            if orphaned:
                await session.execute(
                    update(AttemptRow)
                    .where(AttemptRow.task_id.in_(orphaned), AttemptRow.status == "running")
                    .values(status="failed", finished_at=now, error="abandoned: the worker stopped")
                )
        return ids
