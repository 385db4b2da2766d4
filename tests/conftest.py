"""Shared fixtures. The database backend is chosen by ALP_TEST_DB: `sqlite` (default) or `postgres`
(a fresh database per test module on ALP_TEST_POSTGRES_URL, default the local server's `test` db)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from agent_lightning.core.config import Settings
from agent_lightning.core.db import Database

from scripted import ScriptedProvider
from support import Cluster, running_app

BACKEND = os.environ.get("ALP_TEST_DB", "sqlite")
POSTGRES_URL = os.environ.get("ALP_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


async def _create_pg_database() -> tuple[str, Callable]:
    name = f"alp_test_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()

    async def drop() -> None:
        engine = create_async_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await engine.dispose()

    return POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}", drop


@pytest.fixture
async def database_url(tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database on the backend under test."""
    if BACKEND == "postgres":
        url, drop = await _create_pg_database()
        yield url
        await drop()
    else:
        yield f"sqlite+aiosqlite:///{tmp_path / 'alp.db'}"


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
