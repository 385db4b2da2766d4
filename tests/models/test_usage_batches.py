"""Usage rows are written in batches off the request path: none may be left behind by a batch."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

from sqlalchemy import func, select

from agent_lightning.core.db import Database
from agent_lightning.models.tables import UsageRow
from agent_lightning.models.usage import Usage, UsageRecorder


class SlowSessions:
    """The real database, whose sessions take a while to open: a request can arrive mid-batch."""

    def __init__(self, db: Database, delay_s: float) -> None:
        self.db = db
        self.delay_s = delay_s

    @asynccontextmanager
    async def session(self):
        await asyncio.sleep(self.delay_s)
        async with self.db.session() as session:
            yield session


async def test_a_row_recorded_while_a_batch_is_written_is_written_too(model_settings):
    db = Database(model_settings.resolved_database_url())
    await db.upgrade()
    recorder = UsageRecorder(SlowSessions(db, delay_s=0.2), flush_s=0.01)
    try:
        recorder.record(Usage(model="local", status="ok"))
        await asyncio.sleep(0.1)  # the first batch is being written
        recorder.record(Usage(model="local", status="error"))
        for _ in range(100):
            async with db.session() as session:
                rows = await session.scalar(select(func.count()).select_from(UsageRow))
            if rows == 2:
                break
            await asyncio.sleep(0.05)
        assert rows == 2, "the row recorded mid-batch was left behind"
    finally:
        await db.close()
