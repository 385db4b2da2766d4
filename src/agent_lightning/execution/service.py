"""The execution service: runs a task with an agent through the model service, and records it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
from collections.abc import Awaitable, Callable

from sqlalchemy import select

from agent_lightning.agents.schemas import Agent, AgentRegistry, AgentStatus
from agent_lightning.core import tracing
from agent_lightning.core.config import Settings
from agent_lightning.core.db import Database, new_id, utcnow
from agent_lightning.core.errors import AppError, Conflict, NotFound, Unavailable, UpstreamError
from agent_lightning.core.events import EventBus
from agent_lightning.core.fencing import FENCE_INSTRUCTION
from agent_lightning.core.leases import Lease, Leases
from agent_lightning.core.logging import get_logger
from agent_lightning.core.tenancy import (
    all_tenants,
    current_tenant,
    set_tenant,
    tenant_select,
    tenant_update,
)
from agent_lightning.execution.loop import AgentLoop, AgentRun, LoopOutcome
from agent_lightning.execution.schemas import (
    ActionLog,
    ExecuteAccepted,
    ExecuteRequest,
    ExecuteResponse,
    ExecuteResult,
    ExecutionRecord,
    ExecutionStatus,
    Step,
)
from agent_lightning.execution.steps import StepLog
from agent_lightning.execution.tables import ExecutionRow
from agent_lightning.execution.tools.base import ToolContext
from agent_lightning.execution.tools.catalogue import ToolCatalogue
from agent_lightning.knowledge.schemas import ContextRequest as KnowledgeRequest
from agent_lightning.knowledge.schemas import KnowledgeBase, KnowledgeContext
from agent_lightning.memory.schemas import ContextRequest as MemoryRequest
from agent_lightning.memory.schemas import Exchange, MemoryContext, MemoryStore
from agent_lightning.models.schemas import ChatMessage, ModelGateway
from agent_lightning.orchestrator.schemas import RoutePreviewRequest, Router
from agent_lightning.validation import intake
from agent_lightning.validation.schemas import Validator

log = get_logger(__name__)

CONTEXT_LIMIT = 4000
CONVERSATION_KEYS = ("session_id", "user_id")


class ToolMisused(AppError):
    """The run ended without an answer after the agent's own tool calls failed: the agent's fault."""

    status = 502
    code = "tool_misuse"


class ToolUnavailable(Unavailable):
    """The run ended without an answer because a tool could not run: not the agent's fault."""

    code = "tool_unavailable"


def build_messages(
    agent: Agent, task: str, context: dict, *, knowledge: str = "", memory: MemoryContext | None = None
) -> list[ChatMessage]:
    """The agent's system prompt (with remembered context and retrieved knowledge), the conversation's
    recent turns, then the task with any context the caller gave."""
    system = agent.system_prompt
    if agent.capabilities:
        system += f"\n\nYour capabilities: {', '.join(agent.capabilities)}."
    if memory is not None and memory.text:
        system += f"\n\n{memory.text}"
    if knowledge:
        system += (
            "\n\nRelevant knowledge (cite it as [K1], [K2] … when you use it). "
            f"{FENCE_INSTRUCTION}\n{knowledge}"
        )
    turns = [
        ChatMessage(role=t.role if t.role != "system" else "user", content=t.content)
        for t in (memory.turns if memory else [])
    ]
    user = task
    extra = {k: v for k, v in context.items() if k not in CONVERSATION_KEYS}
    if extra:
        rendered = json.dumps(extra, indent=2, sort_keys=True, default=str)[:CONTEXT_LIMIT]
        user += f"\n\nContext:\n{rendered}"
    return [ChatMessage(role="system", content=system), *turns, ChatMessage(role="user", content=user)]


class ExecutionService:
    """Resolves the agent, runs it (the agent loop: model calls and tool calls), and keeps a record of every
    execution and its steps.

    `enqueue` is how an async execution reaches the queue (the job `execution.run`);
    `router` picks an agent when the request names none; `tools` holds the tools agents may be granted.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        agents: AgentRegistry,
        models: ModelGateway,
        router: Router | None,
        enqueue: Callable[[str], Awaitable[None]],
        knowledge: KnowledgeBase | None = None,
        memory: MemoryStore | None = None,
        bus: EventBus | None = None,
        tools: ToolCatalogue | None = None,
        validator: Validator | None = None,
    ) -> None:
        self.settings = settings
        self.validator = validator
        self.knowledge = knowledge
        self.memory = memory
        self.db = db
        self.agents = agents
        self.models = models
        self.router = router
        self.enqueue = enqueue
        self.leases = Leases(db, ExecutionRow, lease_s=settings.lease_s, heartbeat_s=settings.heartbeat_s)
        self.tools = tools or ToolCatalogue(settings, [])
        self.steps = StepLog(db, bus)
        self.loop = AgentLoop(models, self.steps, token_budget=settings.agent_token_budget)

    async def screen(self, request: ExecuteRequest) -> tuple[ExecuteRequest, list[str]]:
        """The intake scan (validation/intake.py) of a task handed in over the API, as at `POST /assign-task`:
        the task and every string in its context. Raises TaskRejected; returns the request (its task cleaned
        of active HTML with ALP_VALIDATION_SANITIZE_HTML) and the warnings."""
        texts = intake.task_texts({"task": request.task}, context=request.context)
        cleaned, warnings = await intake.screen(self.validator, self.settings, texts)
        if "task" in cleaned:
            request = request.model_copy(update={"task": cleaned["task"]})
            warnings.append("html.active: the task was run as cleaned by nh3.")
        return request, warnings

    async def execute(self, request: ExecuteRequest) -> ExecuteResponse:
        """Run the task now and return the answer (or, when a tool call waits for approval, the steps that
        wait). A task whose run was paused for approval continues that run."""
        paused = await self._claim_paused(request.task_id)
        if paused is not None:
            row, lease = paused
            return await self._held(lease, row, request, resume=await self.steps.of_execution(row.id))
        row = await self._record(request, **self.leases.start())
        return await self._held(Lease(row.id, row.lease_token), row, request)

    async def actions(self, task_id: str) -> ActionLog:
        """Every step of a task's runs: model calls and tool calls."""
        return await self.steps.of_task(task_id)

    async def decide_step(self, task_id: str, number: int, *, approve: bool, by: str) -> tuple[Step, int]:
        """Approve or deny a tool call waiting for a person; the step and how many still wait."""
        return await self.steps.decide(task_id, number, approve=approve, by=by)

    async def submit(self, request: ExecuteRequest) -> ExecuteAccepted:
        """Queue the task and return at once; poll `GET /api/v1/tasks/{task_id}` for the outcome."""
        row = await self._record(request, status=ExecutionStatus.QUEUED, run_async=True)
        try:
            await self.enqueue(row.id)
        except Exception as exc:  # the broker is down: say so, and leave nothing waiting for ever
            log.warning("enqueue_failed", execution_id=row.id, error=repr(exc))
            async with self.db.session() as session:
                await session.execute(
                    tenant_update(ExecutionRow)
                    .where(ExecutionRow.id == row.id, ExecutionRow.status == ExecutionStatus.QUEUED)
                    .values(
                        status=ExecutionStatus.FAILED,
                        finished_at=utcnow(),
                        error="queue_unavailable: the work queue could not take it",
                    )
                )
            raise Unavailable(
                "The work queue is unavailable; try again shortly.", code="queue_unavailable"
            ) from exc
        return ExecuteAccepted(task_id=row.task_id, status_url=f"/api/v1/tasks/{row.task_id}")

    async def run_queued(self, execution_id: str) -> None:
        """Worker entry: run a queued execution once (a second delivery finds it taken and returns)."""
        async with self.db.session() as session:
            lease = await self.leases.claim(session, execution_id, started_at=utcnow())
            if lease is None:
                return
            row = await session.scalar(
                all_tenants(
                    select(ExecutionRow).where(ExecutionRow.id == execution_id),
                    "a worker runs the execution it claimed, of any tenant",
                )
            )
        set_tenant(row.tenant_id)
        # An AppError is recorded on the row by _run, or the lease was lost to another process.
        with contextlib.suppress(AppError):
            await self._held(lease, row, ExecuteRequest.model_validate(row.request))

    async def get(self, task_id: str) -> ExecutionRecord:
        """The latest execution for a task id; 404 when there is none."""
        async with self.db.session() as session:
            row = await session.scalar(
                tenant_select(ExecutionRow)
                .where(ExecutionRow.task_id == task_id)
                .order_by(ExecutionRow.created_at.desc())
                .limit(1)
            )
        if row is None:
            raise NotFound(f"Unknown task '{task_id}'.", code="task_not_found")
        result = None
        if row.status == ExecutionStatus.SUCCEEDED:
            result = ExecuteResult(
                response=row.response or "",
                agent=row.agent_id,
                agent_version=row.agent_version,
                model=row.model,
                provider=row.provider or "",
                prompt_tokens=row.prompt_tokens,
                completion_tokens=row.completion_tokens,
                latency_ms=row.latency_ms or 0.0,
                knowledge_used=row.knowledge_used or [],
                citations=[
                    c["marker"]
                    for c in row.knowledge_used or []
                    if f"[{c['marker']}]" in (row.response or "")
                ],
                memory_used=row.memory_used,
                steps=await self.steps.counts(row.id),
            )
        return ExecutionRecord(
            task_id=row.task_id,
            status=row.status,
            agent_id=row.agent_id,
            result=result,
            error=row.error,
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
        )

    async def recoverable(self, *, sole_worker: bool = True, include_waiting: bool = True) -> list[str]:
        """Executions to queue (again): running ones whose lease ran out (a sole worker, at its start, knows
        every running execution is orphaned) and, with `include_waiting`, the queued ones. An orphaned
        execution that a caller was waiting for (not `async`) fails: its caller got an error and retries."""
        now = utcnow()
        async with self.db.session() as session:
            waiting = await self.leases.stale(session, older_than_s=None) if include_waiting else []
            requeued, _ = await self.leases.expire(
                session,
                sole_worker=sole_worker,
                exhausted=ExecutionRow.run_async.is_(False),
                failed={
                    "finished_at": now,
                    "error": "abandoned: the process stopped while its caller waited",
                },
            )
        return [*waiting, *requeued]

    async def ready(self) -> bool:
        return (await self.models.ready()).ok

    # -- helpers ---------------------------------------------------------------------------------------

    async def _record(self, request: ExecuteRequest, *, status: ExecutionStatus, **values) -> ExecutionRow:
        row = ExecutionRow(
            id=new_id(),
            tenant_id=current_tenant(),
            task_id=request.task_id or new_id(),
            status=status,
            request=request.model_dump(mode="json", by_alias=True),
            agent_id=request.agent_id,
            started_at=utcnow() if status == ExecutionStatus.RUNNING else None,
            **values,
        )
        async with self.db.session() as session:
            session.add(row)
        return row

    async def _resolve_agent(self, request: ExecuteRequest) -> Agent:
        agent_id = request.agent_id
        if agent_id is None:
            if self.router is None:
                raise AppError("No agent_id given and no router to choose one.", code="agent_required")
            agent_id = (await self.router.preview(RoutePreviewRequest(description=request.task))).agent_id
        agent = await self.agents.get(agent_id)
        if agent.status == AgentStatus.RETIRED:
            raise Conflict(f"Agent '{agent_id}' is retired.", code="agent_not_active")
        return agent

    async def _claim_paused(self, task_id: str | None) -> tuple[ExecutionRow, Lease] | None:
        """The task's run paused for approval, taken under a new lease to continue it (None when there is
        none)."""
        if task_id is None:
            return None
        async with self.db.session() as session:
            row = await session.scalar(
                tenant_select(ExecutionRow)
                .where(
                    ExecutionRow.task_id == task_id,
                    ExecutionRow.status == ExecutionStatus.AWAITING_APPROVAL,
                )
                .order_by(ExecutionRow.created_at.desc())
                .limit(1)
            )
            if row is None:
                return None
            lease = await self.leases.claim(session, row.id, statuses=(ExecutionStatus.AWAITING_APPROVAL,))
            return None if lease is None else (row, lease)

    def _scratch(self, task_id: str):
        return self.settings.data_dir / "scratch" / current_tenant() / task_id

    async def _held(
        self, lease: Lease, row: ExecutionRow, request: ExecuteRequest, *, resume: list[Step] | None = None
    ) -> ExecuteResponse:
        """Run the execution while holding its lease: a lost lease (taken over) stops it."""
        run = asyncio.ensure_future(self._run(lease, row, request, resume=resume))
        async with self.leases.hold(lease, on_lost=run.cancel):
            try:
                return await run
            except asyncio.CancelledError:
                if run.cancelled() and not asyncio.current_task().cancelling():
                    raise Unavailable(
                        "The execution was taken over by another process.", code="execution_taken_over"
                    ) from None
                raise

    @tracing.traced("execute agent")
    async def _run(
        self, lease: Lease, row: ExecutionRow, request: ExecuteRequest, *, resume: list[Step] | None = None
    ) -> ExecuteResponse:
        started = time.perf_counter()
        execution_id = row.id
        tracing.annotate({"alp.execution.id": execution_id, "alp.task.id": row.task_id})
        try:
            agent = await self._resolve_agent(request)
            tracing.annotate({"alp.agent.id": agent.id, "alp.agent.version": agent.version})
            knowledge = await self._knowledge(agent, request)
            memory = await self._memory(agent, request)
            messages = build_messages(
                agent,
                request.task,
                request.context,
                knowledge=knowledge.text if knowledge else "",
                memory=memory,
            )
            context = ToolContext(
                task_id=row.task_id,
                execution_id=execution_id,
                tenant_id=current_tenant(),
                agent_id=agent.id,
                scratch=self._scratch(row.task_id),
                user_id=request.context.get("user_id"),
                session_id=request.context.get("session_id"),
                depth=int(request.context.get("delegation_depth") or 0),
            )
            async with self.tools.toolbox(agent, context, policy=self.agents.tool_policy) as toolbox:
                outcome = await self.loop.run(
                    AgentRun(
                        agent=agent,
                        execution_id=execution_id,
                        task_id=row.task_id,
                        messages=messages,
                        toolbox=toolbox,
                        context=context,
                        timeout_s=request.timeout or self.settings.task_timeout_s,
                        metadata={
                            "task_id": request.task_id or "",
                            "agent_id": agent.id,
                            "tenant_id": current_tenant(),
                        },
                    ),
                    resume=resume,
                )
            if outcome.pending:
                await self._finish(lease, row.task_id, status=ExecutionStatus.AWAITING_APPROVAL)
                return ExecuteResponse(
                    task_id=row.task_id,
                    status=ExecutionStatus.AWAITING_APPROVAL,
                    pending_steps=outcome.pending,
                    metadata={"agent_id": agent.id},
                )
            if not outcome.content.strip():
                raise self._no_answer(outcome)
        except AppError as exc:
            await self._finish(
                lease, row.task_id, status=ExecutionStatus.FAILED, error=f"{exc.code}: {exc.message}"
            )
            raise
        except Exception as exc:
            log.exception("execution_crashed", execution_id=execution_id)
            await self._finish(
                lease, row.task_id, status=ExecutionStatus.FAILED, error=f"{type(exc).__name__}: {exc}"
            )
            raise
        used = knowledge.used if knowledge else []
        result = ExecuteResult(
            response=outcome.content,
            agent=agent.id,
            agent_version=agent.version,
            model=outcome.model,
            provider=outcome.provider,
            prompt_tokens=outcome.prompt_tokens,
            completion_tokens=outcome.completion_tokens,
            latency_ms=(time.perf_counter() - started) * 1000,
            knowledge_used=used,
            citations=[c.marker for c in used if f"[{c.marker}]" in outcome.content],
            memory_used=memory.used() if memory else None,
            steps=outcome.counts,
        )
        await self._remember(memory, agent, request, outcome.content)
        await self._finish(lease, row.task_id, status=ExecutionStatus.SUCCEEDED, result=result)
        return ExecuteResponse(task_id=row.task_id, result=result, metadata={"agent_id": agent.id})

    @staticmethod
    def _no_answer(outcome: LoopOutcome) -> AppError:
        """Why a run ended without an answer: the agent's misuse of a tool, a tool's outage, or the model."""
        if outcome.last_tool_error == "misuse":
            return ToolMisused("The agent's tool calls failed and it gave no answer.")
        if outcome.last_tool_error in ("outage", "timeout"):
            return ToolUnavailable("A tool the agent needed could not run, and it gave no answer.")
        return UpstreamError("The model returned an empty answer.", code="empty_answer")

    @tracing.traced("knowledge retrieval")
    async def _knowledge(self, agent: Agent, request: ExecuteRequest) -> KnowledgeContext | None:
        """The best knowledge for the task within the budget; the task runs without it if search fails."""
        if self.knowledge is None or self.settings.knowledge_budget_tokens <= 0:
            return None
        try:
            return await self.knowledge.context(
                KnowledgeRequest(
                    task=request.task,
                    agent_id=agent.id,
                    task_id=request.task_id,
                    budget_tokens=self.settings.knowledge_budget_tokens,
                )
            )
        except Exception as exc:
            log.warning("knowledge_unavailable", error=f"{type(exc).__name__}: {exc}")
            tracing.record_error(exc)
            return None

    @tracing.traced("memory context")
    async def _memory(self, agent: Agent, request: ExecuteRequest) -> MemoryContext | None:
        """The conversation's context when the request names a session or a user."""
        session_id, user_id = request.context.get("session_id"), request.context.get("user_id")
        if self.memory is None or not (session_id or user_id):
            return None
        try:
            return await self.memory.build_context(
                MemoryRequest(
                    session_id=session_id,
                    user_id=user_id,
                    agent_id=agent.id,
                    query=request.task,
                    budget_tokens=self.settings.memory_budget_tokens,
                )
            )
        except AppError:
            raise
        except Exception as exc:
            log.warning("memory_unavailable", error=f"{type(exc).__name__}: {exc}")
            tracing.record_error(exc)
            return None

    async def _remember(
        self, memory: MemoryContext | None, agent: Agent, request: ExecuteRequest, answer: str
    ) -> None:
        """Record the finished turn in the conversation (a failure loses the turn, not the answer)."""
        if memory is None or self.memory is None:
            return
        try:
            await self.memory.record_exchange(
                Exchange(
                    session_id=memory.session_id,
                    user_id=memory.user_id,
                    agent_id=agent.id,
                    user=request.task,
                    assistant=answer,
                    task_id=request.task_id,
                )
            )
        except Exception as exc:
            log.warning(
                "memory_not_recorded", session_id=memory.session_id, error=f"{type(exc).__name__}: {exc}"
            )

    async def _finish(
        self,
        lease: Lease,
        task_id: str,
        *,
        status: ExecutionStatus,
        error: str | None = None,
        result: ExecuteResult | None = None,
    ) -> None:
        """Record the outcome (or the pause for approval), unless the lease was lost meanwhile (another
        process took the execution over)."""
        values: dict = {
            "status": status,
            "error": error,
            "lease_until": None,
            "finished_at": None if status == ExecutionStatus.AWAITING_APPROVAL else utcnow(),
        }
        if result is not None:
            values.update(
                agent_id=result.agent,
                agent_version=result.agent_version,
                model=result.model,
                provider=result.provider,
                response=result.response,
                prompt_tokens=result.prompt_tokens,
                completion_tokens=result.completion_tokens,
                latency_ms=result.latency_ms,
                knowledge_used=[c.model_dump(mode="json") for c in result.knowledge_used] or None,
                memory_used=result.memory_used,
            )
        async with self.db.session() as session:
            done = await session.execute(
                tenant_update(ExecutionRow).where(self.leases.fenced(lease)).values(**values)
            )
        if done.rowcount != 1:
            log.warning("execution_outcome_dropped", execution_id=lease.id, reason="lease lost")
        if status in (ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED):
            shutil.rmtree(self._scratch(task_id), ignore_errors=True)
