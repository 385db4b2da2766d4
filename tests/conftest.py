"""Shared fixtures. The database backend is chosen by ALP_TEST_DB: `sqlite` (default) or `postgres`
(a new database per test on ALP_TEST_POSTGRES_URL, default the local server's `test` db).

Every migration is applied once per session, to a template; a test's `database_url` is a copy of it (a file
copy on SQLite, `CREATE DATABASE … TEMPLATE` on PostgreSQL), on which the platform's start finds nothing left
to migrate. The tests of the migrations themselves take `fresh_database_url`, an empty database."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from scripted import ScriptedProvider
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from support import Cluster, running_app
from tenant_guard import install as guard_tenancy

from agent_lightning import app as app_module
from agent_lightning.core.config import Settings
from agent_lightning.core.db import Database

BACKEND = os.environ.get("ALP_TEST_DB", "sqlite")
# Every statement the platform makes on a tenant table constrains the tenant (tenant_guard.py).
guard_tenancy()
POSTGRES_URL = os.environ.get("ALP_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


async def _create_pg_database(template: str | None = None) -> tuple[str, Callable]:
    """A new database on the PostgreSQL under test (a copy of `template`'s, if given), and its drop."""
    name = f"alp_test_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        copy = f' TEMPLATE "{template}"' if template else ""
        await conn.execute(text(f'CREATE DATABASE "{name}"{copy}'))
    await admin.dispose()

    async def drop() -> None:
        engine = create_async_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await engine.dispose()

    return POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}", drop


# Modules that choose their backend themselves (not through the `database_url` fixture), under tests/.
_BACKEND_AWARE = {
    "docs/test_readme.py",
    "core/test_db_pool.py",
    "core/test_database_outage.py",
    "monitoring/test_monitoring.py",
}
TESTS = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The PostgreSQL pass runs the storage tests: those whose platform stands on the database under test
    (the `database_url` fixture, directly or through `settings`, `client`, `cluster`) and the modules that
    pick the backend themselves. A test that touches no database of ours proves nothing new there; it ran in
    the SQLite pass."""
    if BACKEND != "postgres":
        return
    elsewhere = pytest.mark.skip(reason="touches no database under test: runs in the SQLite pass")
    for item in items:
        uses_db = bool({"database_url", "fresh_database_url"} & set(getattr(item, "fixturenames", ())))
        aware = item.path.relative_to(TESTS).as_posix() in _BACKEND_AWARE
        if not uses_db and not aware and not item.get_closest_marker("postgres"):
            item.add_marker(elsewhere)


@pytest.fixture(scope="session")
async def _migrated_template(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A database with every migration applied, built once per session: on PostgreSQL the name of a
    template database, on SQLite the path of a file (its WAL checkpointed into it, so a copy is whole)."""
    if BACKEND == "postgres":
        url, drop = await _create_pg_database()
        db = Database(url)
        await db.upgrade()
        await db.close()  # a template must have no connection when it is copied
        yield url.rsplit("/", 1)[1]
        await drop()
        return
    path = tmp_path_factory.mktemp("template") / "alp.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.upgrade()
    await db.close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode=DELETE")  # one file, no WAL beside it
    conn.close()
    yield str(path)


@pytest.fixture
async def database_url(_migrated_template: str, tmp_path: Path) -> AsyncIterator[str]:
    """A new database on the backend under test, every migration applied (a copy of the session's
    template)."""
    if BACKEND == "postgres":
        url, drop = await _create_pg_database(template=_migrated_template)
        yield url
        await drop()
    else:
        shutil.copyfile(_migrated_template, tmp_path / "alp.db")
        yield f"sqlite+aiosqlite:///{tmp_path / 'alp.db'}"


@pytest.fixture
async def fresh_database_url(tmp_path: Path) -> AsyncIterator[str]:
    """A new, empty database on the backend under test: no migration applied (the tests of the migrations
    themselves, and of servers that migrate it as they start)."""
    if BACKEND == "postgres":
        url, drop = await _create_pg_database()
        yield url
        await drop()
    else:
        yield f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        database_url=database_url,
        data_dir=tmp_path,
        log_json=True,
        log_level="WARNING",
        policy_seed=7,
        q_epsilon=0.0,
        retry_backoff_s=0.01,
        task_timeout_s=10,
        # the fake upstreams of the tests (the guard itself: tests/models/test_egress.py)
        egress_allow=["127.0.0.1"],
        # a test's app stops at once (tests/platform/test_shutdown.py drains real processes)
        shutdown_grace_s=0,
    )


@pytest.fixture
def provider() -> ScriptedProvider:
    return ScriptedProvider()


@pytest.fixture
async def client(settings: Settings, provider: ScriptedProvider) -> AsyncIterator:
    async with running_app(settings, provider) as client:
        yield client


@pytest.fixture
async def cluster(database_url: str) -> AsyncIterator[Cluster]:
    """Real server processes on a migrated database; all stopped at the end."""
    db = Database(database_url)
    await db.upgrade()
    await db.close()
    processes = Cluster(database_url)
    yield processes
    processes.stop_all()


@pytest.fixture(scope="session", autouse=True)
def _no_heap_freeze_in_process() -> Iterator[None]:
    """The in-process apps of the tests do not freeze the heap as they start (`app.settle_heap`: a full
    collection, then `gc.freeze`). It tunes a server's garbage collector for its life; here hundreds of apps
    start and stop in one test process, and each start paid a full collection of that process's heap (0.4 to
    0.9 s, most of an ordinary API test). The servers the tests start as processes still do it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(app_module, "settle_heap", lambda: None)
        yield


@pytest.fixture(scope="session", autouse=True)
async def _settle_leftover_tasks() -> AsyncIterator[None]:
    """At the end of the session, the tasks still pending on the shared event loop are cancelled with a time
    limit. A pooled aiosqlite connection dropped by the garbage collector leaves SQLAlchemy's graceful close
    waiting on a connection thread that has already gone; pytest-asyncio's own shutdown would wait on it
    for ever (the suite passed, and then hung). Cancelled here, while the loop still runs, they end."""
    yield
    current = asyncio.current_task()
    leftover = [task for task in asyncio.all_tasks() if task is not current]
    for task in leftover:
        task.cancel()
    if leftover:
        await asyncio.wait(leftover, timeout=5)
