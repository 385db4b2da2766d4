"""The step log of agent runs: every model call and tool call stored, served and announced as `task.step`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from agent_lightning.core.db import Database, utcnow
from agent_lightning.core.errors import Conflict, NotFound
from agent_lightning.core.events import Event, EventBus
from agent_lightning.core.tenancy import current_tenant, tenant_is, tenant_select, tenant_update
from agent_lightning.execution.schemas import ActionLog, Step, StepCounts, StepStatus
from agent_lightning.execution.tables import ExecutionRow, ExecutionStepRow

SUMMARY_CHARS = 300


class StepLog:
    """Stores the steps of executions (numbered per task) and publishes each one on the bus."""

    def __init__(self, db: Database, bus: EventBus | None) -> None:
        self.db = db
        self.bus = bus

    async def next_number(self, task_id: str) -> int:
        """The number the task's next step gets."""
        async with self.db.session() as session:
            last = await session.scalar(
                select(func.max(ExecutionStepRow.number)).where(
                    tenant_is(ExecutionStepRow), ExecutionStepRow.task_id == task_id
                )
            )
        return (last or 0) + 1

    async def add(self, **fields: Any) -> Step:
        """Store one step and announce it."""
        row = ExecutionStepRow(tenant_id=current_tenant(), **fields)
        async with self.db.session() as session:
            session.add(row)
        step = Step.model_validate(row)
        await self._announce(row.task_id, step)
        return step

    async def finish(self, execution_id: str, number: int, **fields: Any) -> Step:
        """Complete a step stored earlier (an approved call that has now run, or a denied one)."""
        async with self.db.session() as session:
            row = await session.scalar(
                tenant_select(ExecutionStepRow).where(
                    ExecutionStepRow.execution_id == execution_id, ExecutionStepRow.number == number
                )
            )
            for key, value in fields.items():
                setattr(row, key, value)
            row.finished_at = utcnow()
            step = Step.model_validate(row)
            task_id = row.task_id
        await self._announce(task_id, step)
        return step

    async def of_execution(self, execution_id: str) -> list[Step]:
        async with self.db.session() as session:
            rows = await session.scalars(
                tenant_select(ExecutionStepRow)
                .where(ExecutionStepRow.execution_id == execution_id)
                .order_by(ExecutionStepRow.number)
            )
            return [Step.model_validate(r) for r in rows]

    async def counts(self, execution_id: str) -> StepCounts:
        """What an execution's steps add up to (as the loop counted them while it ran)."""
        counts = StepCounts()
        for step in await self.of_execution(execution_id):
            if step.kind == "model":
                counts.model_calls += step.status == StepStatus.SUCCEEDED
            elif step.status not in (StepStatus.AWAITING_APPROVAL, StepStatus.APPROVED):
                counts.tool_calls += 1
                if step.name not in counts.tools and step.error_kind != "denied":
                    counts.tools.append(step.name)
                counts.misuse += step.error_kind == "misuse"
                counts.outage += step.error_kind in ("outage", "timeout")
        return counts

    async def of_task(self, task_id: str) -> ActionLog:
        """Every step of a task, oldest first; 404 when the task never ran here."""
        async with self.db.session() as session:
            rows = list(
                await session.scalars(
                    tenant_select(ExecutionStepRow)
                    .where(ExecutionStepRow.task_id == task_id)
                    .order_by(ExecutionStepRow.number, ExecutionStepRow.id)
                )
            )
            if not rows:
                known = await session.scalar(
                    tenant_select(ExecutionRow.id).where(ExecutionRow.task_id == task_id).limit(1)
                )
                if known is None:
                    raise NotFound(f"Unknown task '{task_id}'.", code="task_not_found")
            return ActionLog(task_id=task_id, steps=[Step.model_validate(r) for r in rows])

    async def decide(self, task_id: str, number: int, *, approve: bool, by: str) -> tuple[Step, int]:
        """Approve or deny a step awaiting approval; the step and how many of the task's steps still wait."""
        status = StepStatus.APPROVED if approve else StepStatus.DENIED
        async with self.db.session() as session:
            row = await session.scalar(
                tenant_select(ExecutionStepRow)
                .where(
                    ExecutionStepRow.task_id == task_id,
                    ExecutionStepRow.number == number,
                )
                .order_by(ExecutionStepRow.id.desc())
                .limit(1)
            )
            if row is None:
                raise NotFound(f"Task '{task_id}' has no step {number}.", code="step_not_found")
            decided = await session.execute(
                tenant_update(ExecutionStepRow)
                .where(ExecutionStepRow.id == row.id, ExecutionStepRow.status == StepStatus.AWAITING_APPROVAL)
                .values(status=status, decided_by=by)
            )
            if decided.rowcount != 1:
                raise Conflict(
                    f"Step {number} of task '{task_id}' is {row.status}, not awaiting approval.",
                    code="step_not_awaiting_approval",
                )
            await session.refresh(row)
            step = Step.model_validate(row)
            waiting = await session.scalar(
                select(func.count())
                .select_from(ExecutionStepRow)
                .where(
                    tenant_is(ExecutionStepRow),
                    ExecutionStepRow.execution_id == row.execution_id,
                    ExecutionStepRow.status == StepStatus.AWAITING_APPROVAL,
                )
            )
        await self._announce(task_id, step)
        return step, waiting or 0

    async def _announce(self, task_id: str, step: Step) -> None:
        if self.bus is None:
            return
        data = {
            "task_id": task_id,
            "number": step.number,
            "execution_id": step.execution_id,
            "kind": step.kind,
            "name": step.name,
            "status": step.status,
            "error_kind": step.error_kind,
            "latency_ms": None if step.latency_ms is None else round(step.latency_ms, 1),
            "summary": step.output[:SUMMARY_CHARS],
        }
        if step.kind == "tool":
            data["arguments"] = step.arguments
        else:
            data["tool_calls"] = [c.get("function", {}).get("name") for c in step.tool_calls or []]
        await self.bus.publish(
            Event(type="task.step", source="execution", tenant_id=current_tenant(), data=data)
        )
