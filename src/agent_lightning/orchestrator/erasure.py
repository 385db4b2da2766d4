"""The orchestrator's part of erasing a user: their tasks keep their status, timings and routing records
(the policy's statistics count on them) but lose every word: description, reason, result, error, metadata,
idempotency key, attempt errors and feedback comments."""

from __future__ import annotations

from sqlalchemy import select

from agent_lightning.core.db import Database
from agent_lightning.core.privacy import ERASED, ErasedRows, EraseTaskText, batches
from agent_lightning.core.tenancy import current_tenant, tenant_is, tenant_select
from agent_lightning.orchestrator.tables import AttemptRow, RewardRow, TaskRow


class TaskTextEraser:
    """Implements `TaskTextOwner` for tasks, attempts and rewards."""

    name = "orchestrator"

    def __init__(self, db: Database) -> None:
        self.db = db

    async def erase_task_text(self, request: EraseTaskText) -> ErasedRows:
        """Pseudonymise the user's tasks: those named, those whose metadata names the user, and their
        subtasks (a delegated subtask restates its parent's words)."""
        tenant = current_tenant()
        counts = {"tasks": 0, "attempts": 0, "rewards": 0}
        async with self.db.session() as session:
            ids = set(
                await session.scalars(
                    select(TaskRow.id).where(
                        tenant_is(TaskRow, tenant), TaskRow.meta["user_id"].as_string() == request.user_id
                    )
                )
            )
            for group in batches(request.task_ids):
                ids |= set(
                    await session.scalars(
                        select(TaskRow.id).where(tenant_is(TaskRow, tenant), TaskRow.id.in_(group))
                    )
                )
            frontier = set(ids)
            while frontier:
                children = set()
                for group in batches(frontier):
                    children |= set(
                        await session.scalars(
                            select(TaskRow.id).where(
                                tenant_is(TaskRow, tenant), TaskRow.parent_task_id.in_(group)
                            )
                        )
                    )
                frontier = children - ids
                ids |= frontier
            for group in batches(ids):
                for task in await session.scalars(
                    tenant_select(TaskRow, tenant=tenant).where(TaskRow.id.in_(group))
                ):
                    task.description, task.reason, task.warnings = ERASED, ERASED, []
                    task.result = ERASED if task.result is not None else None
                    task.error = ERASED if task.error is not None else None
                    task.meta, task.idempotency_key, task.request_hash = {"erased": True}, None, None
                    task.assignment = (
                        {**task.assignment, "reason": ERASED, "warnings": []} if task.assignment else {}
                    )
                    counts["tasks"] += 1
                for attempt in await session.scalars(
                    tenant_select(AttemptRow, tenant=tenant).where(AttemptRow.task_id.in_(group))
                ):
                    attempt.error = ERASED if attempt.error is not None else None
                    attempt.knowledge_used, attempt.memory_used = None, None
                    counts["attempts"] += 1
                for reward in await session.scalars(
                    tenant_select(RewardRow, tenant=tenant).where(RewardRow.task_id.in_(group))
                ):
                    reward.comment = ""
                    counts["rewards"] += 1
        return ErasedRows(tables=counts, task_ids=sorted(ids))
