"""The PostgreSQL pool: a connection the server closed is replaced before use (no request fails for it), and a
connection in use is not pinged before every session (a round trip each time), only one idle for long."""

from __future__ import annotations

import asyncio
import os

import pytest
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection

from agent_lightning.core import db as db_module
from agent_lightning.core.db import Database

pytestmark = pytest.mark.skipif(
    os.environ.get("ALP_TEST_DB", "sqlite") != "postgres", reason="the pool checks are PostgreSQL's"
)


async def _pids(database: Database) -> set[int]:
    """The server pids of the pool's connections (each checked out at once, so that all are distinct)."""
    sessions = [database.sessions() for _ in range(3)]
    try:
        return {int((await s.execute(text("SELECT pg_backend_pid()"))).scalar_one()) for s in sessions}
    finally:
        for session in sessions:
            await session.close()


async def test_a_connection_the_server_closed_is_replaced_without_an_error(database_url: str) -> None:
    database = Database(database_url, pool_size=3)
    try:
        before = await _pids(database)
        admin = Database(database_url)
        async with admin.session() as session:
            for pid in before:
                await session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        await admin.engine.dispose()
        await asyncio.sleep(0.2)  # the driver reads the server's goodbye
        async with database.session() as session:
            assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
        assert not (await _pids(database)) & before
    finally:
        await database.engine.dispose()


async def test_only_a_connection_idle_for_long_is_pinged(database_url: str, monkeypatch) -> None:
    database = Database(database_url, pool_size=2)
    pings = 0
    real_ping = AsyncAdapt_asyncpg_connection.ping

    def counting_ping(self):
        nonlocal pings
        pings += 1
        return real_ping(self)

    monkeypatch.setattr(AsyncAdapt_asyncpg_connection, "ping", counting_ping)
    try:
        for _ in range(5):
            async with database.session() as session:
                await session.execute(text("SELECT 1"))
        assert pings == 0  # in use: no round trip before each session
        monkeypatch.setattr(db_module, "PING_IDLE_S", 0.0)
        async with database.session() as session:
            await session.execute(text("SELECT 1"))
        assert pings == 1
    finally:
        await database.engine.dispose()
