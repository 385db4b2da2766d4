"""The execution service: runs a task with an agent through the model service, and records it."""

from __future__ import annotations

import json
import time
from datetime import timedelta

from sqlalchemy import select, update

from agent_lightning.agents.schemas import Agent, AgentRegistry
from agent_lightning.core import tracing
from agent_lightning.core.config import Settings
from agent_lightning.core.db import Database, new_id, utcnow
from agent_lightning.core.errors import AppError, Conflict, NotFound, Unavailable, UpstreamError
from agent_lightning.core.logging import get_logger
from agent_lightning.core.tenancy import current_tenant, set_tenant
from agent_lightning.execution.schemas import (
    ExecuteAccepted,
    ExecuteRequest,
    ExecuteResponse,
    ExecuteResult,
    ExecutionRecord,
)
from agent_lightning.execution.tables import ExecutionRow
from agent_lightning.knowledge.schemas import ContextRequest as KnowledgeRequest
from agent_lightning.knowledge.schemas import KnowledgeBase, KnowledgeContext
from agent_lightning.memory.schemas import ContextRequest as MemoryRequest
from agent_lightning.memory.schemas import Exchange, MemoryContext, MemoryStore
from agent_lightning.models.schemas import ChatMessage, ChatRequest, ModelGateway
from agent_lightning.orchestrator.schemas import RoutePreviewRequest, Router

log = get_logger(__name__)

CONTEXT_LIMIT = 4000
CONVERSATION_KEYS = ("session_id", "user_id")


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
        system += f"\n\nRelevant knowledge (cite it as [K1], [K2] … when you use it):\n{knowledge}"
    turns = [ChatMessage(role=t.role if t.role != "system" else "user", content=t.content) for t in (memory.turns if memory else [])]
    user = task
    extra = {k: v for k, v in context.items() if k not in CONVERSATION_KEYS}
    if extra:
        rendered = json.dumps(extra, indent=2, sort_keys=True, default=str)[:CONTEXT_LIMIT]
        user += f"\n\nContext:\n{rendered}"
    return [ChatMessage(role="system", content=system), *turns, ChatMessage(role="user", content=user)]


class ExecutionService:
    """Resolves the agent, asks the model, and keeps a record of every execution.

    `enqueue` is how an async execution reaches the queue (set by the composition root);
    `router` picks an agent when the request names none.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        agents: AgentRegistry,
        models: ModelGateway,
        router: Router | None,
        knowledge: KnowledgeBase | None = None,
        memory: MemoryStore | None = None,
    ) -> None:
        self.settings = settings
        self.knowledge = knowledge
        self.memory = memory
        self.db = db
        self.agents = agents
        self.models = models
        self.router = router
        self.enqueue = None

    async def execute(self, request: ExecuteRequest) -> ExecuteResponse:
        """Run the task now and return the answer."""
        row = await self._record(request, status="running")
        return await self._run(row.id, request)

    async def submit(self, request: ExecuteRequest) -> ExecuteAccepted:
        """Queue the task and return at once; poll `GET /api/v1/tasks/{task_id}` for the outcome."""
        row = await self._record(request, status="queued")
        if self.enqueue is not None:
            try:
                await self.enqueue(row.id)
            except Exception as exc:  # the broker is down: say so, and leave nothing waiting for ever
                log.warning("enqueue_failed", execution_id=row.id, error=repr(exc))
                await self._finish(row.id, status="failed", error="queue_unavailable: the work queue could not take it")
                raise Unavailable("The work queue is unavailable; try again shortly.", code="queue_unavailable") from exc
        return ExecuteAccepted(task_id=row.task_id, status_url=f"/api/v1/tasks/{row.task_id}")

    async def run_queued(self, execution_id: str) -> None:
        """Worker entry: run a queued execution once (a second delivery finds it taken and returns)."""
        async with self.db.session() as session:
            claimed = await session.execute(
                update(ExecutionRow)
                .where(ExecutionRow.id == execution_id, ExecutionRow.status == "queued")
                .values(status="running", started_at=utcnow())
            )
            if claimed.rowcount != 1:
                return
            row = await session.get(ExecutionRow, execution_id)
        set_tenant(row.tenant_id)
        try:
            await self._run(execution_id, ExecuteRequest.model_validate(row.request))
        except AppError:
            pass  # recorded on the row by _run

    async def get(self, task_id: str) -> ExecutionRecord:
        """The latest execution for a task id; 404 when there is none."""
        async with self.db.session() as session:
            row = await session.scalar(
                select(ExecutionRow)
                .where(ExecutionRow.task_id == task_id, ExecutionRow.tenant_id == current_tenant())
                .order_by(ExecutionRow.created_at.desc())
                .limit(1)
            )
        if row is None:
            raise NotFound(f"Unknown task '{task_id}'.", code="task_not_found")
        result = None
        if row.status == "succeeded":
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
                citations=[c["marker"] for c in row.knowledge_used or [] if f"[{c['marker']}]" in (row.response or "")],
                memory_used=row.memory_used,
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

    async def requeue_unfinished(self, *, sole_worker: bool = True, include_waiting: bool = True) -> list[str]:
        """Executions to queue (again): queued ones (unless `include_waiting` is false), and running ones
        whose process died. A sole worker (one process, its own queue) knows at start-up that every running
        execution is orphaned; with replicas one is orphaned once it has run longer than its timeout plus
        `lease_s`, since a live process would have finished or failed it by then."""
        now = utcnow()
        statuses = ("queued", "running") if include_waiting else ("running",)
        ids = []
        async with self.db.session() as session:
            for row in await session.scalars(select(ExecutionRow).where(ExecutionRow.status.in_(statuses))):
                if row.status == "running" and not sole_worker:
                    allowed = (row.request or {}).get("timeout") or self.settings.task_timeout_s
                    if row.started_at and now - row.started_at < timedelta(seconds=allowed + self.settings.lease_s):
                        continue
                row.status = "queued"
                ids.append(row.id)
        return ids

    async def ready(self) -> bool:
        return (await self.models.ready()).ok

    # -- helpers ---------------------------------------------------------------------------------------

    async def _record(self, request: ExecuteRequest, *, status: str) -> ExecutionRow:
        row = ExecutionRow(
            id=new_id(),
            tenant_id=current_tenant(),
            task_id=request.task_id or new_id(),
            status=status,
            request=request.model_dump(mode="json", by_alias=True),
            agent_id=request.agent_id,
            started_at=utcnow() if status == "running" else None,
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
        if agent.status == "retired":
            raise Conflict(f"Agent '{agent_id}' is retired.", code="agent_not_active")
        return agent

    @tracing.traced("execute agent")
    async def _run(self, execution_id: str, request: ExecuteRequest) -> ExecuteResponse:
        started = time.perf_counter()
        tracing.annotate({"alp.execution.id": execution_id, "alp.task.id": request.task_id})
        try:
            agent = await self._resolve_agent(request)
            tracing.annotate({"alp.agent.id": agent.id, "alp.agent.version": agent.version})
            knowledge = await self._knowledge(agent, request)
            memory = await self._memory(agent, request)
            chat = await self.models.chat(
                ChatRequest(
                    model=agent.model,
                    messages=build_messages(
                        agent, request.task, request.context, knowledge=knowledge.text if knowledge else "", memory=memory
                    ),
                    temperature=agent.temperature,
                    max_tokens=agent.max_tokens,
                    timeout_s=request.timeout or self.settings.task_timeout_s,
                    metadata={"task_id": request.task_id or "", "agent_id": agent.id, "tenant_id": current_tenant()},
                )
            )
        except AppError as exc:
            await self._finish(execution_id, status="failed", error=f"{exc.code}: {exc.message}")
            raise
        except Exception as exc:
            log.exception("execution_crashed", execution_id=execution_id)
            await self._finish(execution_id, status="failed", error=f"{type(exc).__name__}: {exc}")
            raise
        if not chat.content.strip():
            await self._finish(execution_id, status="failed", error="empty_answer: the model returned no text")
            raise UpstreamError("The model returned an empty answer.", code="empty_answer")
        result = ExecuteResult(
            response=chat.content,
            agent=agent.id,
            agent_version=agent.version,
            model=chat.model,
            provider=chat.provider,
            prompt_tokens=chat.prompt_tokens,
            completion_tokens=chat.completion_tokens,
            latency_ms=(time.perf_counter() - started) * 1000,
            knowledge_used=knowledge.used if knowledge else [],
            citations=[c.marker for c in (knowledge.used if knowledge else []) if f"[{c.marker}]" in chat.content],
            memory_used=memory.used() if memory else None,
        )
        await self._remember(memory, agent, request, chat.content)
        row = await self._finish(execution_id, status="succeeded", result=result)
        return ExecuteResponse(task_id=row.task_id, result=result, metadata={"agent_id": agent.id})

    @tracing.traced("knowledge retrieval")
    async def _knowledge(self, agent: Agent, request: ExecuteRequest) -> KnowledgeContext | None:
        """The best knowledge for the task within the budget; the task runs without it if search fails."""
        if self.knowledge is None or self.settings.knowledge_budget_tokens <= 0:
            return None
        try:
            return await self.knowledge.context(
                KnowledgeRequest(task=request.task, agent_id=agent.id, task_id=request.task_id,
                                 budget_tokens=self.settings.knowledge_budget_tokens)
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
                MemoryRequest(session_id=session_id, user_id=user_id, agent_id=agent.id, query=request.task,
                              budget_tokens=self.settings.memory_budget_tokens)
            )
        except AppError:
            raise
        except Exception as exc:
            log.warning("memory_unavailable", error=f"{type(exc).__name__}: {exc}")
            tracing.record_error(exc)
            return None

    async def _remember(self, memory: MemoryContext | None, agent: Agent, request: ExecuteRequest, answer: str) -> None:
        """Record the finished turn in the conversation (a failure loses the turn, not the answer)."""
        if memory is None or self.memory is None:
            return
        try:
            await self.memory.record_exchange(
                Exchange(session_id=memory.session_id, user_id=memory.user_id, agent_id=agent.id, user=request.task,
                         assistant=answer, task_id=request.task_id)
            )
        except Exception as exc:
            log.warning("memory_not_recorded", session_id=memory.session_id, error=f"{type(exc).__name__}: {exc}")

    async def _finish(self, execution_id: str, *, status: str, error: str | None = None, result: ExecuteResult | None = None) -> ExecutionRow:
        async with self.db.session() as session:
            row = await session.get(ExecutionRow, execution_id)
            row.status, row.error, row.finished_at = status, error, utcnow()
            if result is not None:
                row.agent_id, row.agent_version = result.agent, result.agent_version
                row.model, row.provider, row.response = result.model, result.provider, result.response
                row.prompt_tokens, row.completion_tokens = result.prompt_tokens, result.completion_tokens
                row.latency_ms = result.latency_ms
                row.knowledge_used = [c.model_dump(mode="json") for c in result.knowledge_used] or None
                row.memory_used = result.memory_used
        return row
