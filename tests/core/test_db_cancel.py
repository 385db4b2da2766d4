"""A statement cancelled on SQLite lets its event loop end: a process whose shutdown cancels a background loop
in the middle of a query, twice (`begin_stop`, then `stop`), used to hang at its exit for ever (the pool's
graceful close of that connection waited on aiosqlite's thread after it had stopped; `_stop_aiosqlite` in
core/db.py)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from sqlalchemy import text

from agent_lightning.core.db import Database

# About a second of SQLite's work, on the connection's thread.
SLOW = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) SELECT count(*) FROM c"
)


def _aiosqlite_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if "_connection_worker_thread" in t.name}


def test_a_statement_cancelled_twice_lets_the_event_loop_end(tmp_path: Path) -> None:
    before = _aiosqlite_threads()

    async def main() -> set[asyncio.Task]:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'alp.db'}")

        async def slow() -> None:
            async with db.session() as session:
                await session.execute(text(SLOW))

        statement = asyncio.create_task(slow())
        await asyncio.sleep(0.3)  # in the middle of the statement
        statement.cancel()
        await asyncio.sleep(0)
        statement.cancel()
        await asyncio.gather(statement, return_exceptions=True)
        await db.close()
        # What asyncio.run does as it ends, with a time limit: the tasks left are cancelled and waited for.
        left = asyncio.all_tasks() - {asyncio.current_task()}
        for task in left:
            task.cancel()
        stuck = (await asyncio.wait(left, timeout=10))[1] if left else set()
        # The connection's thread ends once the statement is done.
        for _ in range(200):  # 10 s at most
            if not _aiosqlite_threads() - before:
                break
            await asyncio.sleep(0.05)
        return stuck

    stuck = asyncio.run(main())
    assert not stuck, f"tasks that never end (the process would hang at its exit): {stuck}"
    assert not _aiosqlite_threads() - before, "the connection's thread is still running"
