"""The worker: runs an assigned task's attempts through the execution service.

Safe to run twice for the same task: only the call that atomically claims the task does any work, and only
while it holds the task's lease (core/leases.py) is its outcome written. A failed attempt is retried with
backoff up to the task's maximum; the outcome becomes a reward.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

from agent_lightning.core import stages, tracing
from agent_lightning.core.errors import AppError
from agent_lightning.core.events import Event, EventBus
from agent_lightning.core.logging import correlation_id, get_logger
from agent_lightning.core.resilience import backoff_delay
from agent_lightning.core.tenancy import set_tenant
from agent_lightning.execution.schemas import (
    ExecuteRequest,
    ExecuteResponse,
    ExecutionStatus,
    Executor,
    StepCounts,
)
from agent_lightning.orchestrator.events import publish
from agent_lightning.orchestrator.lifecycle import Claim
from agent_lightning.orchestrator.rewards import outcome_cost
from agent_lightning.orchestrator.service import OrchestratorService
from agent_lightning.orchestrator.tables import AttemptRow, TaskRow

log = get_logger(__name__)


AGENT_FAULTS = {"tool_misuse"}
"""Error codes of the execution service that are the agent's fault: the run ended without an answer after its
own tool calls failed. A tool's outage (`tool_unavailable`) is not."""
MISUSE_COST = 0.1


def tool_use_factor(steps: StepCounts) -> float:
    """The share of an answer's outcome reward the agent keeps after misusing tools: 0.1 less per misused
    call, at least half. Calls that failed because a tool was down cost nothing."""
    return max(0.5, 1.0 - MISUSE_COST * steps.misuse)


class _AttemptFailed(Exception):
    def __init__(
        self, message: str, *, retryable: bool, agent_fault: bool, retry_after_s: float = 0.0
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.agent_fault = agent_fault
        self.retry_after_s = (
            retry_after_s  # the busy dependency's advice (503 model_overloaded + Retry-After)
        )


def _retry_after(exc: AppError) -> float:
    try:
        return min(float(exc.headers.get("Retry-After", 0)), 300.0)
    except ValueError:
        return 0.0


def _attempt_attributes(row: TaskRow, attempt: AttemptRow) -> dict[str, object] | None:
    if not tracing.enabled():
        return None
    return {
        "alp.task.id": row.id,
        "alp.attempt.number": attempt.number,
        "alp.agent.id": row.agent_id,
        "alp.agent.version": row.agent_version,
        "alp.correlation_id": row.correlation_id or "",
    }


class TaskWorker:
    """Runs the job `orchestrator.run_task`; `enqueue` queues a task again for its next attempt."""

    def __init__(
        self,
        orchestrator: OrchestratorService,
        executor: Executor,
        bus: EventBus,
        *,
        enqueue: Callable[[str], Awaitable[None]],
    ) -> None:
        self.orchestrator = orchestrator
        self.executor = executor
        self.bus = bus
        self.settings = orchestrator.settings
        self.enqueue = enqueue
        self._running: dict[str, asyncio.Task] = {}
        self._rng = random.Random()
        bus.subscribe("task.cancelled", self._on_cancelled)

    async def run(self, task_id: str) -> None:
        """Claim the task and run one attempt under its lease; requeue it after a backoff if it may be
        retried. The outcome is written only while this worker still holds the lease (its token fences the
        write)."""
        claiming = time.perf_counter()
        claim = await self.orchestrator.lifecycle.claim(task_id)
        if claim is None:
            return
        row, attempt = claim.row, claim.attempt
        if row.attempts_count == 1 and row.started_at is not None:
            stages.observe("queue_wait", (row.started_at - row.created_at).total_seconds())
        set_tenant(row.tenant_id)
        correlation_id.set(row.correlation_id or None)
        stages.observe("persistence", time.perf_counter() - claiming)
        await self._publish("task.started", row, attempt=attempt.number)
        started = time.perf_counter()
        async with self.orchestrator.lifecycle.hold(claim, on_lost=lambda: self._stop(row.id)):
            with tracing.span("attempt", attributes=_attempt_attributes(row, attempt)) as span:
                try:
                    response = await self._execute(row)
                except _AttemptFailed as failure:
                    tracing.record_error(str(failure), span)
                    failed = failure
                else:
                    failed = None
            seconds = time.perf_counter() - started
            stages.observe("execution", seconds)
            if failed is None and response.status == ExecutionStatus.AWAITING_APPROVAL:
                await self._paused(claim, response, seconds)
                return
            if failed is None:
                await self._succeeded(claim, response, seconds)
                return
            retry = await self._failed(claim, failed, seconds)
        if retry:
            delay = max(
                backoff_delay(row.attempts_count - 1, self.settings.retry_backoff_s, rng=self._rng),
                failed.retry_after_s,
            )  # the busy dependency's advice, when it gave one
            await asyncio.sleep(delay)
            await self.enqueue(row.id)

    def _stop(self, task_id: str) -> None:
        """Stop the attempt in flight (the task was cancelled, or its lease lost)."""
        call = self._running.get(task_id)
        if call is not None:
            call.cancel()

    async def _paused(self, claim: Claim, response: ExecuteResponse, seconds: float) -> None:
        """A tool call waits for a person: so does the task, holding no lease (approve/deny resumes it)."""
        if await self.orchestrator.lifecycle.pause(claim, latency_ms=seconds * 1000):
            row = claim.row
            await self._publish(
                "task.awaiting_approval", row, agent_id=row.agent_id, steps=response.pending_steps
            )

    async def _execute(self, row: TaskRow) -> ExecuteResponse:
        request = ExecuteRequest(
            task=row.description,
            agent_id=row.agent_id,
            task_id=row.id,
            context=row.meta,
            timeout=row.timeout_s,
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
            raise _AttemptFailed(
                f"timed out after {row.timeout_s} s", retryable=True, agent_fault=True
            ) from None
        except AppError as exc:
            retryable = exc.status >= 500 or exc.status == 429
            raise _AttemptFailed(
                f"{exc.code}: {exc.message}",
                retryable=retryable,
                agent_fault=exc.code in AGENT_FAULTS,
                retry_after_s=_retry_after(exc),
            ) from None
        except Exception as exc:  # a bug or a broken connection: retry, but do not blame the agent
            log.exception("attempt_crashed", task_id=row.id)
            raise _AttemptFailed(f"{type(exc).__name__}: {exc}", retryable=True, agent_fault=False) from None
        finally:
            self._running.pop(row.id, None)

    async def _succeeded(self, claim: Claim, response: ExecuteResponse, seconds: float) -> None:
        row, result = claim.row, response.result
        with stages.timed("execution"):  # the validator's checks of the answer
            factor = await self.orchestrator.rewards.result_factor(row, result.response)
            factor *= tool_use_factor(
                result.steps
            )  # the agent's misuse of its tools costs it; outages do not
        tokens = result.prompt_tokens + result.completion_tokens
        cost = outcome_cost(latency_s=seconds, latency_target_s=self.settings.latency_target_s, tokens=tokens)
        answer = {
            "latency_ms": seconds * 1000,
            "model": result.model,
            "agent_version": result.agent_version,
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "knowledge_used": [c.model_dump(mode="json") for c in result.knowledge_used] or None,
            "memory_used": result.memory_used,
        }
        storing = time.perf_counter()
        recorded = await self.orchestrator.lifecycle.succeed(
            claim, result=result.response, answer=answer, latency_s=seconds, factor=factor, cost=cost
        )
        if recorded is None:  # cancelled meanwhile, or taken over: the answer is kept on the attempt only
            return
        stages.observe("persistence", time.perf_counter() - storing)
        await self._publish(
            "task.succeeded",
            row,
            agent_id=row.agent_id,
            latency_ms=round(seconds * 1000, 1),
            reward=recorded.reward,
        )
        with stages.timed("learning"):  # the job ends now; the lesson is folded at once or with the next read
            await self.orchestrator.policies.learn(recorded.lesson, wait=False)

    async def _failed(self, claim: Claim, failure: _AttemptFailed, seconds: float) -> bool:
        """Record a failed attempt; True when the task was queued again for another one."""
        row = claim.row
        retry = failure.retryable and row.attempts_count < row.max_attempts
        cost = None
        if not retry and failure.agent_fault:
            cost = outcome_cost(latency_s=seconds, latency_target_s=self.settings.latency_target_s)
        recorded = await self.orchestrator.lifecycle.fail(
            claim, error=str(failure), retry=retry, latency_s=seconds, cost=cost
        )
        if recorded is None:  # cancelled meanwhile, or taken over
            return False
        log.warning(
            "attempt_failed", task_id=row.id, attempt=claim.attempt.number, error=str(failure), retry=retry
        )
        if retry:
            return True
        await self._publish(
            "task.failed", row, agent_id=row.agent_id, error=str(failure), reward=recorded.reward
        )
        await self.orchestrator.policies.learn(recorded.lesson)
        return False

    async def _on_cancelled(self, event: Event) -> None:
        self._stop(event.data.get("task_id", ""))

    async def _publish(self, event_type: str, row: TaskRow, **data) -> None:
        await publish(self.bus, event_type, row.id, tenant_id=row.tenant_id, **data)
