"""The knowledge service's part of erasing a user: items learned from their tasks (a learned item's title
and text come from the task and its answer; a merged one lists every task in its provenance) are deleted
with their chunks and index entries, and the records of which items their tasks used."""

from __future__ import annotations

from agent_lightning.core.privacy import ErasedRows, EraseTaskText, batches
from agent_lightning.core.tenancy import tenant_delete, tenant_select
from agent_lightning.knowledge.service import KnowledgeService
from agent_lightning.knowledge.tables import KnowledgeChunkRow, KnowledgeItemRow, KnowledgeUseRow


class KnowledgeTextEraser:
    """Implements `TaskTextOwner` for learned knowledge."""

    name = "knowledge"

    def __init__(self, knowledge: KnowledgeService) -> None:
        self.knowledge = knowledge

    async def erase_task_text(self, request: EraseTaskText) -> ErasedRows:
        tasks = set(request.task_ids)
        async with self.knowledge.db.session() as session:
            learned = list(
                await session.execute(
                    tenant_select(KnowledgeItemRow.id, KnowledgeItemRow.task_id, KnowledgeItemRow.meta).where(
                        KnowledgeItemRow.origin == "learned"
                    )
                )
            )
        doomed = [
            item_id
            for item_id, task_id, meta in learned
            if task_id in tasks or tasks & set((meta or {}).get("provenance") or [])
        ]
        chunks = 0
        for item_id in doomed:
            async with self.knowledge.db.session() as session:
                chunks += len(
                    list(
                        await session.scalars(
                            tenant_select(KnowledgeChunkRow.seq).where(KnowledgeChunkRow.item_id == item_id)
                        )
                    )
                )
            await self.knowledge.delete(item_id)
        uses = 0
        async with self.knowledge.db.session() as session:
            for group in batches(tasks):
                uses += (
                    await session.execute(
                        tenant_delete(KnowledgeUseRow).where(KnowledgeUseRow.task_id.in_(group))
                    )
                ).rowcount
        return ErasedRows(
            tables={"knowledge_items": len(doomed), "knowledge_chunks": chunks, "knowledge_uses": uses},
            task_ids=list(request.task_ids),
        )
