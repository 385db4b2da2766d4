"""Task intake: a new task is scanned, routed by the tenant's policy (or to the agent the client names),
stored with its routing decision, and queued, or held for review when the policy is unsure; a held task is
released by `approve`."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from agent_lightning.agents.schemas import Agent, AgentRegistry, AgentStatus
from agent_lightning.core import stages, tracing
from agent_lightning.core.config import Settings
from agent_lightning.core.db import Database, new_id
from agent_lightning.core.errors import Conflict, Invalid
from agent_lightning.core.events import EventBus
from agent_lightning.core.logging import current_correlation_id
from agent_lightning.core.tenancy import current_tenant, tenant_get, tenant_is
from agent_lightning.orchestrator.events import publish
from agent_lightning.orchestrator.matching import capability_score, has_capabilities
from agent_lightning.orchestrator.policy import Candidate, Choice, RoutingContext
from agent_lightning.orchestrator.reads import task_row
from agent_lightning.orchestrator.schemas import (
    AssignTaskRequest,
    AssignTaskResponse,
    CandidateScore,
    PolicyRef,
    RoutePreview,
    RoutePreviewRequest,
    TaskStatus,
)
from agent_lightning.orchestrator.tables import DecisionRow, TaskRow
from agent_lightning.orchestrator.tenant_policies import TenantPolicies
from agent_lightning.validation import intake
from agent_lightning.validation.schemas import Validator

SEED_FIELDS = (
    "target_environment",
    "working_directory",
    "search_scope",
    "platform",
    "environment_vars",
    "execution_mode",
)
KNOWN_ENVIRONMENTS = {"local", "development", "staging", "production", "ubuntu_server", "aws_ec2"}


def _request_hash(request: AssignTaskRequest) -> str:
    body = request.model_dump(mode="json", exclude={"idempotency_key"})
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class Intake:
    """`dispatch` queues a task for the worker (it never raises: a task the queue cannot take now waits for
    the orphan sweep)."""

    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        bus: EventBus,
        agents: AgentRegistry,
        policies: TenantPolicies,
        dispatch: Callable[[str], Awaitable[None]],
        validator: Validator | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.bus = bus
        self.agents = agents
        self.policies = policies
        self.dispatch = dispatch
        self.validator = validator

    @tracing.traced("route task")  # the decision, its record and the queued job (README "Tracing")
    async def assign(self, request: AssignTaskRequest) -> AssignTaskResponse:
        """Create a task, choose its agent and queue it (or hold it for review when unsure)."""
        begun = time.perf_counter()
        request_hash = _request_hash(request)
        if request.idempotency_key:
            replay = await self._idempotent_replay(request.idempotency_key, request_hash)
            if replay is not None:
                return replay
        request, scan_warnings = await self._scan(request)  # raises TaskRejected: then nothing is created
        if request.parent_task_id:
            await self._check_parent(request.parent_task_id)
        started = time.perf_counter()
        stages.observe("intake", started - begun)
        task_id = request.task_id or new_id()
        policy = await self.policies.active()
        embedding = await self.policies.embedding(policy, request.description)
        context = RoutingContext(request.description, request.priority, request.metadata, embedding)
        if request.agent_id:
            agent = await self._active_agent(request.agent_id)
            choice = policy.score(context, [self._candidate(agent, request.description)])
            policy_name, reason = "explicit", f"{agent.name}: chosen by the client"
        else:
            candidates = await self._candidates(request.description, request.required_capabilities)
            choice = policy.choose(
                context, [c for c, _ in candidates]
            )  # the state as folded so far: no waiting
            agent = next(a for c, a in candidates if c.agent_id == choice.agent_id)
            policy_name = policy.name
            reason = capability_score(agent, request.description).reason(agent.name)
        tracing.annotate(
            {
                "alp.task.id": task_id,
                "alp.policy.name": policy_name,
                "alp.policy.version": policy.version,
                "alp.routing.agent": agent.id,
                "alp.routing.probability": choice.probability,
                "alp.routing.confidence": choice.confidence,
                "alp.routing.candidates": len(choice.scores),
                "alp.routing.state": choice.state,
            }
        )
        routed = time.perf_counter()
        stages.observe("routing", routed - started)
        warnings = self._warnings(request, choice.confidence) + scan_warnings
        confident = choice.confidence >= self.settings.confidence_threshold
        held = not (confident or request.force_execute or request.agent_id)
        status = TaskStatus.AWAITING_REVIEW if held else TaskStatus.ASSIGNED
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
        row = dict(
            id=task_id,
            tenant_id=current_tenant(),
            parent_task_id=request.parent_task_id,
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
        try:  # plain INSERTs: no unit of work to sort out for two new rows
            async with self.db.session() as session:
                await session.execute(insert(TaskRow), [row])
                await session.execute(
                    insert(DecisionRow), [self._decision_values(task_id, policy_name, choice, policy.version)]
                )
        except IntegrityError as exc:
            if request.idempotency_key:  # a concurrent request with the same key won the race
                replay = await self._idempotent_replay(request.idempotency_key, request_hash)
                if replay is not None:
                    return replay
            raise Conflict(f"A task with id '{task_id}' already exists.", code="task_exists") from exc
        stages.observe("persistence", time.perf_counter() - routed)
        decision_ms = round((time.perf_counter() - started) * 1000, 3)  # intake to the stored decision
        await publish(
            self.bus,
            "task.created",
            task_id,
            priority=request.priority,
            agent_id=agent.id,
            policy=policy_name,
            decision_ms=decision_ms,
        )
        if status == TaskStatus.ASSIGNED:
            await publish(self.bus, "task.assigned", task_id, agent_id=agent.id, confidence=choice.confidence)
            await self.dispatch(task_id)
        return response

    async def preview(self, request: RoutePreviewRequest) -> RoutePreview:
        """The greedy choice of the current policy for a description, without creating a task."""
        candidates = await self._candidates(request.description, request.required_capabilities)
        policy = await self.policies.active()
        context = RoutingContext(
            request.description, embedding=await self.policies.embedding(policy, request.description)
        )
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
            row = await task_row(session, task_id)
            if row.status != TaskStatus.AWAITING_REVIEW:
                raise Conflict(
                    f"Task '{task_id}' is {row.status}, not awaiting review.", code="not_awaiting_review"
                )
            if agent_id and agent_id != row.agent_id:
                agent = await self._active_agent(agent_id)
                policy = await self.policies.active()
                embedding = await self.policies.embedding(policy, row.description)
                context = RoutingContext(row.description, row.priority, row.meta, embedding)
                choice = policy.score(context, [self._candidate(agent, row.description)])
                session.add(DecisionRow(**self._decision_values(task_id, "review", choice, policy.version)))
                row.agent_id, row.agent_version, row.confidence = agent.id, agent.version, choice.confidence
                row.reason = f"{agent.name}: chosen on review"
            else:
                row.reason += "; approved on review"
            row.status = TaskStatus.ASSIGNED
            assignment = AssignTaskResponse.model_validate(row.assignment).model_copy(
                update={
                    "assigned_agent": row.agent_id,
                    "agent_version": row.agent_version,
                    "confidence": row.confidence,
                    "status": TaskStatus.ASSIGNED,
                    "reason": row.reason,
                }
            )
        await publish(self.bus, "task.assigned", task_id, agent_id=assignment.assigned_agent, approved=True)
        await self.dispatch(task_id)
        return assignment

    async def _idempotent_replay(self, key: str, request_hash: str) -> AssignTaskResponse | None:
        async with self.db.session() as session:
            row = await session.scalar(
                select(TaskRow).where(tenant_is(TaskRow), TaskRow.idempotency_key == key)
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

    async def _check_parent(self, parent_task_id: str) -> None:
        async with self.db.session() as session:
            parent = await tenant_get(session, TaskRow, parent_task_id)
        if parent is None:
            raise Invalid(f"Unknown parent task '{parent_task_id}'.", code="unknown_parent_task")

    async def _active_agent(self, agent_id: str) -> Agent:
        agent = await self.agents.get(agent_id)
        if agent.status != AgentStatus.ACTIVE:
            raise Conflict(
                f"Agent '{agent_id}' is {agent.status} and cannot be assigned.", code="agent_not_active"
            )
        return agent

    @staticmethod
    def _candidate(agent: Agent, description: str) -> Candidate:
        return Candidate(agent_id=agent.id, capability=capability_score(agent, description).score)

    async def _candidates(self, description: str, required: list[str]) -> list[tuple[Candidate, Agent]]:
        agents = [
            a for a in await self.agents.list(status=AgentStatus.ACTIVE) if has_capabilities(a, required)
        ]
        if not agents:
            raise Invalid(
                "No active agent has the required capabilities.",
                code="no_eligible_agent",
                details={"required_capabilities": required},
            )
        return [(self._candidate(a, description), a) for a in agents]

    async def _scan(self, request: AssignTaskRequest) -> tuple[AssignTaskRequest, list[str]]:
        """The intake scan (validation/intake.py) of the description, the seed fields and every string in the
        metadata and environment variables: raises TaskRejected; returns the request (its description cleaned
        of active HTML with ALP_VALIDATION_SANITIZE_HTML) and its warnings."""
        texts = intake.task_texts(
            {"description": request.description, **{f: getattr(request, f) for f in SEED_FIELDS}},
            environment_vars=request.environment_vars,
            metadata=request.metadata,
        )
        cleaned, warnings = await intake.screen(self.validator, self.settings, texts)
        if "description" in cleaned:
            request = request.model_copy(update={"description": cleaned["description"]})
            warnings.append("html.active: the description was stored as cleaned by nh3.")
        return request, warnings

    def _warnings(self, request: AssignTaskRequest, confidence: float) -> list[str]:
        warnings = []
        if request.priority >= 8 and confidence < 0.75:
            warnings.append(f"High priority ({request.priority}) with moderate confidence {confidence:.2f}.")
        if request.working_directory and not request.working_directory.startswith("/"):
            warnings.append("working_directory should be an absolute path.")
        if request.target_environment and request.target_environment not in KNOWN_ENVIRONMENTS:
            warnings.append(f"Unknown target_environment '{request.target_environment}'.")
        return warnings

    def _decision_values(
        self, task_id: str, policy_name: str, choice: Choice, version: int
    ) -> dict[str, Any]:
        return dict(
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
