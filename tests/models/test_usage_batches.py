"""Usage rows are written in batches off the request path: none may be left behind by a batch."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import func, select

from agent_lightning.core.db import Database, utcnow
from agent_lightning.models.tables import UsageRow
from agent_lightning.models.usage import FLUSH_CHUNK, Usage, UsageRecorder


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


async def test_every_field_of_a_large_batch_is_written_as_recorded(model_settings):
    db = Database(model_settings.resolved_database_url())
    await db.upgrade()
    recorder = UsageRecorder(db, flush_s=3600)
    try:
        before = utcnow()
        for n in range(FLUSH_CHUNK * 2 + 37):  # several statements
            recorder.record(
                Usage(
                    model=f"m{n % 3}",
                    status="ok" if n % 5 else "error",
                    kind="chat",
                    provider="openai",
                    provider_model="gpt-x",
                    deployment="d1",
                    error_code=None if n % 5 else "upstream_5xx",
                    prompt_tokens=n,
                    completion_tokens=2 * n,
                    cost_usd=n / 1e6,
                    latency_ms=n / 10,
                    attempts=1 + n % 2,
                    stream=n % 2 == 0,
                    cached=n % 7 == 0,
                    metadata={"task_id": f"t{n}", "agent_id": "a1", "tenant_id": "acme" if n % 4 else ""},
                )
            )
        await recorder.flush()
        async with db.session() as session:
            rows = {row.task_id: row for row in await session.scalars(select(UsageRow))}
        assert len(rows) == FLUSH_CHUNK * 2 + 37
        for n in (0, 1, 4, FLUSH_CHUNK + 3, FLUSH_CHUNK * 2 + 36):
            row = rows[f"t{n}"]
            assert (row.model, row.status, row.kind, row.provider, row.provider_model, row.deployment) == (
                f"m{n % 3}",
                "ok" if n % 5 else "error",
                "chat",
                "openai",
                "gpt-x",
                "d1",
            )
            assert row.error_code == (None if n % 5 else "upstream_5xx")
            assert (row.prompt_tokens, row.completion_tokens, row.attempts) == (n, 2 * n, 1 + n % 2)
            assert row.cost_usd == pytest.approx(n / 1e6) and row.latency_ms == pytest.approx(n / 10)
            assert (row.stream, row.cached) == (n % 2 == 0, n % 7 == 0)
            assert row.agent_id == "a1" and row.tenant_id == ("acme" if n % 4 else "default")
            assert before <= row.created_at <= utcnow() and row.created_at.tzinfo is not None
        summary = await recorder.summary("tenant")
        assert {r["tenant"]: r["requests"] for r in summary} == {"acme": 177, "default": 60}
    finally:
        await db.close()


class FailingSessions:
    """The real database, refusing the first `failures` sessions (an outage)."""

    def __init__(self, db: Database, failures: int) -> None:
        self.db = db
        self.failures = failures

    @asynccontextmanager
    async def session(self):
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionRefusedError("the database is away")
        async with self.db.session() as session:
            yield session


async def test_a_batch_the_database_refused_is_written_with_the_next_one(model_settings, tmp_path):
    db = Database(model_settings.resolved_database_url())
    await db.upgrade()
    journal = tmp_path / "journal"
    recorder = UsageRecorder(FailingSessions(db, failures=2), flush_s=0.01, journal_dir=journal)
    try:
        recorder.record(Usage(model="local", status="ok", metadata={"task_id": "t1"}))
        recorder.record(Usage(model="local", status="ok", metadata={"task_id": "t2"}))
        for _ in range(100):
            async with db.session() as session:
                rows = list(await session.scalars(select(UsageRow.task_id).order_by(UsageRow.task_id)))
            if rows:
                break
            await asyncio.sleep(0.05)
        assert rows == ["t1", "t2"], "each row once, after the outage"
        await asyncio.sleep(0.05)
        assert list(journal.glob("*.jsonl")) == [], "the journal is emptied once the rows are stored"
    finally:
        await recorder.close()
        await db.close()
