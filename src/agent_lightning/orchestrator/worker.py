"""The worker: runs an assigned task's attempts through the execution service.

Safe to run twice for the same task: only the call that atomically claims the task does any work.
A failed attempt is retried with backoff up to the task's maximum; the outcome becomes a reward.
"""

from __future__ import annotations

import asyncio
import random
import time

from sqlalchemy import update

from agent_lightning.core import tracing
from agent_lightning.core.db import utcnow
from agent_lightning.core.errors import AppError
from agent_lightning.core.events import Event, EventBus
from agent_lightning.core.logging import correlation_id, get_logger
from agent_lightning.core.resilience import backoff_delay
from agent_lightning.core.tenancy import set_tenant
from agent_lightning.execution.schemas import ExecuteRequest, ExecuteResponse, Executor
from agent_lightning.orchestrator.service import OrchestratorService, outcome_cost
from agent_lightning.orchestrator.tables import AttemptRow, TaskRow

log = get_logger(__name__)


class _AttemptFailed(Exception):
    def __init__(self, message: str, *, retryable: bool, agent_fault: bool) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.agent_fault = agent_fault


def _attempt_attributes(row: TaskRow, attempt: AttemptRow) -> dict[str, object] | None:
    if not tracing.enabled():
        return None
    return {"alp.task.id": row.id, "alp.attempt.number": attempt.number, "alp.agent.id": row.agent_id,
            "alp.agent.version": row.agent_version, "alp.correlation_id": row.correlation_id or ""}


class TaskWorker:
    def __init__(self, orchestrator: OrchestratorService, executor: Executor, bus: EventBus) -> None:
        self.orchestrator = orchestrator
        self.executor = executor
        self.bus = bus
        self.db = orchestrator.db
        self.settings = orchestrator.settings
        self.enqueue = None  # async callable(task_id), set by the composition root
        self._running: dict[str, asyncio.Task] = {}
        self._rng = random.Random()
        bus.subscribe("task.cancelled", self._on_cancelled)

    async def run(self, task_id: str) -> None:
        """Claim the task and run one attempt; requeue it after a backoff if it may be retried."""
        row = await self.orchestrator.claim(task_id)
        if row is None:
            return
        set_tenant(row.tenant_id)
        correlation_id.set(row.correlation_id or None)
        attempt = AttemptRow(
            tenant_id=row.tenant_id,
            task_id=row.id,
            number=row.attempts_count,
            agent_id=row.agent_id,
            agent_version=row.agent_version,
            status="running",
        )
        async with self.db.session() as session:
            session.add(attempt)
        await self._publish("task.started", row, attempt=attempt.number)
        started = time.perf_counter()
        with tracing.span("attempt", attributes=_attempt_attributes(row, attempt)) as span:
            try:
                response = await self._execute(row)
            except _AttemptFailed as failure:
                tracing.record_error(str(failure), span)
                failed = failure
            else:
                failed = None
        if failed is not None:
            await self._failed(row, attempt, failed, time.perf_counter() - started)
        else:
            await self._succeeded(row, attempt, response, time.perf_counter() - started)

    async def _execute(self, row: TaskRow) -> ExecuteResponse:
        request = ExecuteRequest(
            task=row.description, agent_id=row.agent_id, task_id=row.id, context=row.meta, timeout=row.timeout_s
        )
        call = asyncio.ensure_future(self.executor.execute(request))
        self._running[row.id] = call
        try:
            return await asyncio.wait_for(call, row.timeout_s)
        except asyncio.CancelledError:
            if call.cancelled() and not asyncio.current_task().cancelling():
                raise _AttemptFailed("cancelled", retryable=False, agent_fault=False) from None
            raise
        except TimeoutError:
            raise _AttemptFailed(f"timed out after {row.timeout_s} s", retryable=True, agent_fault=True) from None
        except AppError as exc:
            retryable = exc.status >= 500 or exc.status == 429
            raise _AttemptFailed(f"{exc.code}: {exc.message}", retryable=retryable, agent_fault=False) from None
        except Exception as exc:  # a bug or a broken connection: retry, but do not blame the agent
            log.exception("attempt_crashed", task_id=row.id)
            raise _AttemptFailed(f"{type(exc).__name__}: {exc}", retryable=True, agent_fault=False) from None
        finally:
            self._running.pop(row.id, None)

    async def _succeeded(self, row: TaskRow, attempt: AttemptRow, response: ExecuteResponse, seconds: float) -> None:
        result = response.result
        factor = await self.orchestrator.result_factor(row, result.response)  # validator's result checks
        now = utcnow()
        async with self.db.session() as session:
            await session.execute(
                update(AttemptRow)
                .where(AttemptRow.id == attempt.id)
                .values(
                    status="succeeded",
                    finished_at=now,
                    latency_ms=seconds * 1000,
                    model=result.model,
                    agent_version=result.agent_version,
                    prompt_tokens=result.prompt_tokens,
                    completion_tokens=result.completion_tokens,
                    knowledge_used=[c.model_dump(mode="json") for c in result.knowledge_used] or None,
                    memory_used=result.memory_used,
                )
            )
            done = await session.execute(
                update(TaskRow)
                .where(TaskRow.id == row.id, TaskRow.status == "running")
                .values(status="succeeded", result=result.response, error=None, finished_at=now, lease_until=None, updated_at=now)
            )
            if done.rowcount != 1:
                return  # cancelled meanwhile: the answer is kept on the attempt only
            decision, reward = await self.orchestrator.add_outcome_reward(session, row, success=True, latency_s=seconds, factor=factor)
        await self._publish("task.succeeded", row, agent_id=row.agent_id, latency_ms=round(seconds * 1000, 1), reward=reward)
        tokens = result.prompt_tokens + result.completion_tokens
        cost = outcome_cost(latency_s=seconds, latency_target_s=self.settings.latency_target_s, tokens=tokens)
        await self.orchestrator.learn(decision, row.agent_id, reward, cost=cost)

    async def _failed(self, row: TaskRow, attempt: AttemptRow, failure: _AttemptFailed, seconds: float) -> None:
        now = utcnow()
        retry = failure.retryable and row.attempts_count < row.max_attempts
        async with self.db.session() as session:
            await session.execute(
                update(AttemptRow)
                .where(AttemptRow.id == attempt.id)
                .values(status="failed", finished_at=now, latency_ms=seconds * 1000, error=str(failure))
            )
            done = await session.execute(
                update(TaskRow)
                .where(TaskRow.id == row.id, TaskRow.status == "running")
                .values(
                    status="queued" if retry else "failed",
                    error=str(failure),
                    finished_at=None if retry else now,
                    lease_until=None,
                    updated_at=now,
                )
            )
            if done.rowcount != 1:
                return
            decision = reward = None
            if not retry and failure.agent_fault:
                decision, reward = await self.orchestrator.add_outcome_reward(session, row, success=False, latency_s=seconds)
        log.warning("attempt_failed", task_id=row.id, attempt=attempt.number, error=str(failure), retry=retry)
        if retry:
            delay = backoff_delay(row.attempts_count - 1, self.settings.retry_backoff_s, rng=self._rng)
            await asyncio.sleep(delay)
            if self.enqueue is not None:
                await self.enqueue(row.id)
            return
        await self._publish("task.failed", row, agent_id=row.agent_id, error=str(failure), reward=reward)
        if reward is not None:
            cost = outcome_cost(latency_s=seconds, latency_target_s=self.settings.latency_target_s)
            await self.orchestrator.learn(decision, row.agent_id, reward, cost=cost)

    async def _on_cancelled(self, event: Event) -> None:
        call = self._running.get(event.data.get("task_id", ""))
        if call is not None:
            call.cancel()

    async def _publish(self, event_type: str, row: TaskRow, **data) -> None:
        await self.bus.publish(
            Event(type=event_type, source="orchestrator", tenant_id=row.tenant_id, data={"task_id": row.id, **data})
        )
