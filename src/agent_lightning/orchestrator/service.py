"""The orchestrator: task intake, agent choice through the routing policy, and the learning loop, assembled
from its parts (one module each):

- `intake` (orchestrator/intake.py): a new task scanned, routed, stored and queued, or held for review;
- `reads` (orchestrator/reads.py): a task with its attempts, decisions and rewards, pages of tasks;
- `lifecycle` (orchestrator/lifecycle.py): every later change of a task's status, the worker's claims and
  outcomes under a lease, cancel, retry, approvals of tool calls, takeover of orphans;
- `rewards` (orchestrator/rewards.py): outcomes and feedback as rewards and lessons;
- `policies` (orchestrator/tenant_policies.py): each tenant's policy, restored, learning, saved;
- `admin` (orchestrator/admin.py): the policy API (statistics, switch, decision log, offline evaluation).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from agent_lightning.agents.schemas import AgentRegistry
from agent_lightning.core.config import Settings
from agent_lightning.core.db import Database
from agent_lightning.core.events import EventBus
from agent_lightning.core.logging import get_logger
from agent_lightning.execution.schemas import Executor
from agent_lightning.orchestrator.admin import PolicyAdmin
from agent_lightning.orchestrator.embedding import TaskEmbedder
from agent_lightning.orchestrator.intake import Intake
from agent_lightning.orchestrator.lifecycle import TaskLifecycle
from agent_lightning.orchestrator.policy import RoutingPolicy
from agent_lightning.orchestrator.reads import TaskReads
from agent_lightning.orchestrator.rewards import Rewards
from agent_lightning.orchestrator.schemas import (
    AssignTaskRequest,
    AssignTaskResponse,
    RoutePreview,
    RoutePreviewRequest,
    Task,
    TaskDetail,
)
from agent_lightning.orchestrator.tenant_policies import TenantPolicies
from agent_lightning.validation.schemas import Validator

log = get_logger(__name__)


class OrchestratorService:
    """Accepts tasks, routes them, hands them to the work queue, and learns from their outcomes.

    `enqueue` is how a task reaches the worker (the job `orchestrator.run_task` of the work queue). `policy`
    is the deployment's policy, built with `policy_params`; a tenant may switch to another. `embedder`, when
    given, embeds task descriptions for the policies that use embeddings. The execution service, which takes
    the decisions on tool calls that wait for a person, is connected once both are built (`connect_execution`:
    it routes through the orchestrator, and the orchestrator passes decisions to it).

    Its own methods are what other services ask of it (`Router`, `TaskGateway`); the rest is on its parts.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        agents: AgentRegistry,
        policy: RoutingPolicy,
        bus: EventBus,
        enqueue: Callable[[str], Awaitable[None]],
        policy_params: dict[str, Any] | None = None,
        embedder: TaskEmbedder | None = None,
        validator: Validator | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.enqueue = enqueue
        self.policies = TenantPolicies(
            settings=settings, db=db, bus=bus, policy=policy, policy_params=policy_params, embedder=embedder
        )
        self.rewards = Rewards(settings=settings, db=db, bus=bus, policies=self.policies, validator=validator)
        self.reads = TaskReads(db)
        self.intake = Intake(
            settings=settings,
            db=db,
            bus=bus,
            agents=agents,
            policies=self.policies,
            dispatch=self._dispatch,
            validator=validator,
        )
        self.lifecycle = TaskLifecycle(
            settings=settings,
            db=db,
            bus=bus,
            rewards=self.rewards,
            dispatch=self._dispatch,
        )
        self.admin = PolicyAdmin(settings=settings, db=db, bus=bus, policies=self.policies)

    def connect_execution(self, execution: Executor) -> None:
        """The execution service (in this process or over HTTP) that takes the decisions on tool calls."""
        self.lifecycle.execution = execution

    async def assign(self, request: AssignTaskRequest) -> AssignTaskResponse:
        """Create a task, choose its agent and queue it (or hold it for review when unsure)."""
        return await self.intake.assign(request)

    async def preview(self, request: RoutePreviewRequest) -> RoutePreview:
        """The greedy choice of the current policy for a description, without creating a task."""
        return await self.intake.preview(request)

    async def get_task(self, task_id: str) -> TaskDetail:
        """A task with its attempts, routing decisions and rewards."""
        return await self.reads.get_task(task_id)

    async def cancel(self, task_id: str) -> Task:
        """Cancel a task that has not finished; a running attempt is abandoned."""
        return await self.lifecycle.cancel(task_id)

    async def recoverable(self, *, sole_worker: bool, include_waiting: bool = True) -> list[str]:
        """Tasks to queue again: those whose worker died, and waiting ones the queue may have lost."""
        return await self.lifecycle.recoverable(sole_worker=sole_worker, include_waiting=include_waiting)

    async def _dispatch(self, task_id: str) -> None:
        """Queue the task; if the queue cannot take it now, it stays waiting and the orphan sweep queues it
        again once it has waited `lease_s` (the row is the source of truth, so the intake still succeeds)."""
        try:
            await self.enqueue(task_id)
        except Exception as exc:
            log.warning("dispatch_failed", task_id=task_id, error=repr(exc))
