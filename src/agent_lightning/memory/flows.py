"""Erasing a user everywhere: the memory service's own data, then the text of the user's tasks in every
service that stored some (`TaskTextOwner`s, in this process or over HTTP), then the database files.

The orchestrator goes first: it knows the user's tasks by their metadata and adds their subtasks, so the
others get the whole list. An owner that cannot be reached fails the erase (503); it is safe to repeat.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent_lightning.core.privacy import ErasedRows, EraseTaskText, TaskTextOwner
from agent_lightning.memory.schemas import EraseResult
from agent_lightning.memory.service import MemoryService


class UserErasure:
    def __init__(self, memory: MemoryService, owners: Sequence[TaskTextOwner] = ()) -> None:
        self.memory = memory
        self.owners = sorted(owners, key=lambda owner: owner.name != "orchestrator")

    async def erase(self, user_id: str) -> EraseResult:
        """Erase the user's memory and their tasks' text, compact the storage, and say what was erased."""
        result, task_ids = await self.memory.erase_user(user_id)
        total = ErasedRows(tables=dict(result.erased), task_ids=task_ids)
        for owner in self.owners:
            total = total.add(
                await owner.erase_task_text(EraseTaskText(user_id=user_id, task_ids=total.task_ids))
            )
        storage = await self.memory.db.compact(total.tables)
        return result.model_copy(
            update={"tasks": len(total.task_ids), "erased": total.tables, "storage": storage}
        )
