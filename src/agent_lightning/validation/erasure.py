"""The validation service's part of erasing a user: the reports on their tasks (findings point into the
task's text, the sanitised task is a copy of it) are deleted."""

from __future__ import annotations

from agent_lightning.core.db import Database
from agent_lightning.core.privacy import ErasedRows, EraseTaskText, batches
from agent_lightning.core.tenancy import tenant_delete
from agent_lightning.validation.tables import ValidationRow


class ValidationTextEraser:
    """Implements `TaskTextOwner` for validation reports."""

    name = "validation"

    def __init__(self, db: Database) -> None:
        self.db = db

    async def erase_task_text(self, request: EraseTaskText) -> ErasedRows:
        deleted = 0
        async with self.db.session() as session:
            for group in batches(request.task_ids):
                deleted += (
                    await session.execute(
                        tenant_delete(ValidationRow).where(ValidationRow.task_id.in_(group))
                    )
                ).rowcount
        return ErasedRows(tables={"validation_reports": deleted}, task_ids=list(request.task_ids))
