"""The execution service's part of erasing a user: the executions of their tasks keep their status, agent,
model, tokens and timings, and lose the request, the answer, the errors, what was recalled, and every
step's arguments and output."""

from __future__ import annotations

from agent_lightning.core.db import Database
from agent_lightning.core.privacy import ERASED, ErasedRows, EraseTaskText, batches
from agent_lightning.core.tenancy import tenant_select
from agent_lightning.execution.tables import ExecutionRow, ExecutionStepRow

KEPT_REQUEST_FIELDS = ("task_id", "agent_id", "timeout")


class ExecutionTextEraser:
    """Implements `TaskTextOwner` for executions and their steps."""

    name = "execution"

    def __init__(self, db: Database) -> None:
        self.db = db

    async def erase_task_text(self, request: EraseTaskText) -> ErasedRows:
        counts = {"executions": 0, "execution_steps": 0}
        async with self.db.session() as session:
            for group in batches(request.task_ids):
                for row in await session.scalars(
                    tenant_select(ExecutionRow).where(ExecutionRow.task_id.in_(group))
                ):
                    kept = {k: v for k, v in (row.request or {}).items() if k in KEPT_REQUEST_FIELDS}
                    row.request = {**kept, "task": ERASED, "context": {}}
                    row.response = ERASED if row.response is not None else None
                    row.error = ERASED if row.error is not None else None
                    row.knowledge_used, row.memory_used = None, None
                    counts["executions"] += 1
                for step in await session.scalars(
                    tenant_select(ExecutionStepRow).where(ExecutionStepRow.task_id.in_(group))
                ):
                    step.arguments, step.tool_calls = None, None
                    step.output = ERASED if step.output else ""
                    step.error = ERASED if step.error is not None else None
                    counts["execution_steps"] += 1
        return ErasedRows(tables=counts, task_ids=list(request.task_ids))
