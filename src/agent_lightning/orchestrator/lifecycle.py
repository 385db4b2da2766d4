"""A task's way after intake: claimed by a worker under a lease (core/leases.py), paused for a person's
approval of a tool call, finished, failed or queued again, cancelled, retried, and taken over when its worker
died. Every write of a task's status is here (the intake writes its first)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from agent_lightning.core.config import Settings
from agent_lightning.core.db import Database, utcnow
from agent_lightning.core.errors import AppError, Conflict
from agent_lightning.core.events import EventBus
from agent_lightning.core.leases import Lease, Leases
from agent_lightning.core.tenancy import all_tenants, set_tenant, tenant_select, tenant_update
from agent_lightning.execution.schemas import Executor, Step, StepStatus
from agent_lightning.orchestrator.events import publish
from agent_lightning.orchestrator.learning import Lesson
from agent_lightning.orchestrator.reads import task_out, task_row
from agent_lightning.orchestrator.rewards import Rewards
from agent_lightning.orchestrator.schemas import TASK_FINISHED, AttemptStatus, Task, TaskStatus
from agent_lightning.orchestrator.tables import AttemptRow, TaskRow


@dataclass(frozen=True)
class Claim:
    """A task claimed by a worker: the row, its new attempt and the lease that fences the outcome."""

    row: TaskRow
    attempt: AttemptRow
    lease: Lease


@dataclass(frozen=True)
class Recorded:
    """An attempt's outcome as written: its reward (None when it earned none) and the lesson the policy
    learns."""

    reward: float | None = None
    lesson: Lesson | None = None


class TaskLifecycle:
    """`dispatch` queues a task for the worker (it never raises). `execution` takes the decisions on tool
    calls that wait for a person."""

    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        bus: EventBus,
        rewards: Rewards,
        dispatch: Callable[[str], Awaitable[None]],
        execution: Executor | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.bus = bus
        self.rewards = rewards
        self.dispatch = dispatch
        self.execution = execution
        self.leases = Leases(
            db,
            TaskRow,
            lease_s=settings.lease_s,
            heartbeat_s=settings.heartbeat_s,
            waiting=(TaskStatus.QUEUED, TaskStatus.ASSIGNED),
        )

    async def cancel(self, task_id: str) -> Task:
        """Cancel a task that has not finished; a running attempt is abandoned."""
        async with self.db.session() as session:
            row = await task_row(session, task_id)
            if row.status in TASK_FINISHED:
                raise Conflict(f"Task '{task_id}' is already {row.status}.", code="task_finished")
            row.status, row.finished_at, row.lease_until = TaskStatus.CANCELLED, utcnow(), None
            task = task_out(row)
        await publish(self.bus, "task.cancelled", task_id)
        return task

    async def decide_step(self, task_id: str, number: int, *, approve: bool, by: str) -> Step:
        """Approve or deny a tool call the task waits on; when none waits any more, the run continues."""
        async with self.db.session() as session:
            row = await task_row(session, task_id)
            if row.status != TaskStatus.AWAITING_APPROVAL:
                raise Conflict(
                    f"Task '{task_id}' is {row.status}, not awaiting approval.",
                    code="task_not_awaiting_approval",
                )
        if self.execution is None:
            raise AppError("No execution service to pass the decision to.", code="execution_unavailable")
        step, waiting = await self.execution.decide_step(task_id, number, approve=approve, by=by)
        await publish(
            self.bus, "task.step_decided", task_id, number=number, approved=approve, by=by, waiting=waiting
        )
        if waiting == 0:
            await self._continue(task_id)
        return step

    async def _continue(self, task_id: str) -> None:
        """Queue a task whose waiting calls are all decided; its continuation is an attempt of its own."""
        now = utcnow()
        async with self.db.session() as session:
            resumed = await session.execute(
                tenant_update(TaskRow)
                .where(TaskRow.id == task_id, TaskRow.status == TaskStatus.AWAITING_APPROVAL)
                .values(status=TaskStatus.QUEUED, max_attempts=TaskRow.max_attempts + 1, updated_at=now)
            )
        if resumed.rowcount == 1:
            await self.dispatch(task_id)

    async def expire_approvals(self) -> int:
        """Apply the timeout policy to tasks that waited longer than `approval_timeout_s` for a decision: deny
        their waiting calls (the agent goes on without them), and with `approval_timeout_action=fail` fail
        them."""
        cutoff = utcnow() - timedelta(seconds=self.settings.approval_timeout_s)
        async with self.db.session() as session:
            rows = list(
                await session.execute(
                    all_tenants(
                        select(TaskRow.id, TaskRow.tenant_id).where(
                            TaskRow.status == TaskStatus.AWAITING_APPROVAL, TaskRow.updated_at < cutoff
                        ),
                        "the approval timeout applies to every tenant's waiting tasks",
                    )
                )
            )
        for task_id, tenant_id in rows:
            set_tenant(tenant_id)
            log_ = await self.execution.actions(task_id) if self.execution is not None else None
            for step in log_.steps if log_ else []:
                if step.status == StepStatus.AWAITING_APPROVAL:
                    await self.execution.decide_step(
                        task_id, step.number, approve=False, by="approval timeout"
                    )
            if self.settings.approval_timeout_action == "fail":
                now = utcnow()
                async with self.db.session() as session:
                    failed = await session.execute(
                        tenant_update(TaskRow)
                        .where(TaskRow.id == task_id, TaskRow.status == TaskStatus.AWAITING_APPROVAL)
                        .values(
                            status=TaskStatus.FAILED,
                            finished_at=now,
                            updated_at=now,
                            error="approval_timeout: no decision within "
                            f"{self.settings.approval_timeout_s:g} s",
                        )
                    )
                if failed.rowcount == 1:
                    await publish(self.bus, "task.failed", task_id, error="approval_timeout", reward=None)
            else:
                await self._continue(task_id)
        return len(rows)

    async def retry(self, task_id: str) -> Task:
        """Run a failed or cancelled task again, with a fresh allowance of attempts."""
        now = utcnow()
        async with self.db.session() as session:
            row = await task_row(session, task_id)
            if row.status not in (TaskStatus.FAILED, TaskStatus.CANCELLED):
                raise Conflict(
                    f"Task '{task_id}' is {row.status}; only failed or cancelled tasks can be retried.",
                    code="task_not_retryable",
                )
            row.status, row.error, row.result, row.finished_at = TaskStatus.QUEUED, None, None, None
            row.max_attempts = row.attempts_count + self.settings.max_attempts
            row.lease_until, row.updated_at = None, now
            task = task_out(row)
        await publish(self.bus, "task.retried", task_id, agent_id=task.assigned_agent)
        await self.dispatch(task_id)
        return task

    async def claim(self, task_id: str) -> Claim | None:
        """Atomically move an assigned/queued task to running under a new lease and open its attempt; None if
        another claim won or the task is not waiting."""
        now = utcnow()
        async with self.db.session() as session:
            lease = await self.leases.claim(
                session, task_id, attempts_count=TaskRow.attempts_count + 1, started_at=now, updated_at=now
            )
            if lease is None:
                return None
            row = await session.scalar(
                all_tenants(
                    select(TaskRow).where(TaskRow.id == task_id),
                    "a worker runs the task it claimed, of any tenant",
                )
            )
            attempt = AttemptRow(
                tenant_id=row.tenant_id,
                task_id=row.id,
                number=row.attempts_count,
                agent_id=row.agent_id,
                agent_version=row.agent_version,
                status=AttemptStatus.RUNNING,
            )
            session.add(attempt)
        return Claim(row=row, attempt=attempt, lease=lease)

    async def recoverable(self, *, sole_worker: bool, include_waiting: bool = True) -> list[str]:
        """Tasks to (re)queue: running ones whose lease ran out (a sole worker, at its start, knows every
        running task is orphaned), with their dangling attempt closed as abandoned, and waiting ones (without
        `include_waiting`, only those queued `requeue_waiting_s` ago: their message may have been lost). An
        orphan that has used all its attempts fails instead. A second message for a task is harmless."""
        now = utcnow()
        async with self.db.session() as session:
            waiting = await self.leases.stale(
                session, older_than_s=None if include_waiting else self.settings.requeue_waiting_s
            )
            requeued, failed = await self.leases.expire(
                session,
                sole_worker=sole_worker,
                exhausted=TaskRow.attempts_count >= TaskRow.max_attempts,
                failed={
                    "finished_at": now,
                    "updated_at": now,
                    "error": "abandoned: the worker stopped during the last attempt",
                },
                requeued={"updated_at": now},
            )
            if requeued or failed:
                await session.execute(
                    all_tenants(
                        update(AttemptRow)
                        .where(
                            AttemptRow.task_id.in_(requeued + failed),
                            AttemptRow.status == AttemptStatus.RUNNING,
                        )
                        .values(
                            status=AttemptStatus.FAILED,
                            finished_at=now,
                            error="abandoned: the worker stopped",
                        ),
                        "recovery closes the attempts of every tenant's abandoned tasks",
                    )
                )
        return [*waiting, *requeued]

    def hold(self, claim: Claim, on_lost: Callable[[], Any]) -> AbstractAsyncContextManager[None]:
        """Keep the claim's lease while the block runs (`on_lost` stops the work if it is lost)."""
        return self.leases.hold(claim.lease, on_lost)

    async def pause(self, claim: Claim, *, latency_ms: float) -> bool:
        """A tool call waits for a person: the task waits too, holding no lease (a decision resumes it). False
        when the lease was lost meanwhile (cancelled or taken over): then only the attempt is closed."""
        now = utcnow()
        async with self.db.session() as session:
            paused = await session.execute(
                tenant_update(TaskRow, claim.row.tenant_id)
                .where(self.leases.fenced(claim.lease))
                .values(status=TaskStatus.AWAITING_APPROVAL, lease_until=None, updated_at=now)
            )
            if paused.rowcount != 1:
                await self._close_attempt(
                    session,
                    claim,
                    status=AttemptStatus.FAILED,
                    finished_at=now,
                    latency_ms=latency_ms,
                    error=await self._why_lost(session, claim),
                )
                return False
            await self._close_attempt(
                session, claim, status=AttemptStatus.AWAITING_APPROVAL, finished_at=now, latency_ms=latency_ms
            )
        return True

    async def succeed(
        self,
        claim: Claim,
        *,
        result: str,
        answer: dict[str, Any],
        latency_s: float,
        factor: float,
        cost: float,
    ) -> Recorded | None:
        """The task succeeded with `result`; the attempt is closed with `answer` (its latency, model, tokens,
        knowledge and memory) and the outcome rewarded, in one transaction. None when the lease was lost
        meanwhile: the answer is kept on the attempt only."""
        now = utcnow()
        answer = {"finished_at": now, **answer}
        async with self.db.session() as session:
            done = await session.execute(
                tenant_update(TaskRow, claim.row.tenant_id)
                .where(self.leases.fenced(claim.lease))
                .values(
                    status=TaskStatus.SUCCEEDED,
                    result=result,
                    error=None,
                    finished_at=now,
                    lease_until=None,
                    updated_at=now,
                )
            )
            if done.rowcount != 1:
                await self._close_attempt(
                    session,
                    claim,
                    status=AttemptStatus.FAILED,
                    error=await self._why_lost(session, claim),
                    **answer,
                )
                return None
            await self._close_attempt(session, claim, status=AttemptStatus.SUCCEEDED, **answer)
            lesson, reward = await self.rewards.add_outcome(
                session, claim.row, success=True, latency_s=latency_s, factor=factor, cost=cost
            )
        return Recorded(reward=reward, lesson=lesson)

    async def fail(
        self, claim: Claim, *, error: str, retry: bool, latency_s: float, cost: float | None = None
    ) -> Recorded | None:
        """The attempt failed with `error`: the task is queued again for another (`retry`) or failed; a final
        failure with a `cost` (the agent's fault) is rewarded 0. None when the lease was lost meanwhile."""
        now = utcnow()
        async with self.db.session() as session:
            done = await session.execute(
                tenant_update(TaskRow, claim.row.tenant_id)
                .where(self.leases.fenced(claim.lease))
                .values(
                    status=TaskStatus.QUEUED if retry else TaskStatus.FAILED,
                    error=error,
                    finished_at=None if retry else now,
                    lease_until=None,
                    updated_at=now,
                )
            )
            failed = {"status": AttemptStatus.FAILED, "finished_at": now, "latency_ms": latency_s * 1000}
            if done.rowcount != 1:
                await self._close_attempt(
                    session, claim, **failed, error=await self._why_lost(session, claim)
                )
                return None
            await self._close_attempt(session, claim, **failed, error=error)
            if retry or cost is None:
                return Recorded()
            lesson, reward = await self.rewards.add_outcome(
                session, claim.row, success=False, latency_s=latency_s, cost=cost
            )
        return Recorded(reward=reward, lesson=lesson)

    @staticmethod
    async def _close_attempt(session: AsyncSession, claim: Claim, **values: Any) -> None:
        """Finish the attempt unless the sweep closed it already (as abandoned, when it took the task
        over)."""
        await session.execute(
            tenant_update(AttemptRow, claim.row.tenant_id)
            .where(AttemptRow.id == claim.attempt.id, AttemptRow.status == AttemptStatus.RUNNING)
            .values(**values)
        )

    @staticmethod
    async def _why_lost(session: AsyncSession, claim: Claim) -> str:
        status = await session.scalar(
            tenant_select(TaskRow.status, tenant=claim.row.tenant_id).where(TaskRow.id == claim.row.id)
        )
        if status == TaskStatus.CANCELLED:
            return "cancelled"
        return "superseded: the lease was lost and the task taken over"
