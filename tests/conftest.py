"""Shared fixtures. The database backend is chosen by ALP_TEST_DB: `sqlite` (default) or `postgres`
(a fresh database per test module on ALP_TEST_POSTGRES_URL, default the local server's `test` db)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from agent_lightning.app import create_app
from agent_lightning.core.config import Settings
from agent_lightning.orchestrator.schemas import TaskStatus

from scripted import ScriptedProvider, scripted_models

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


@asynccontextmanager
async def running_app(settings: Settings, provider: ScriptedProvider | None = None, **kwargs):
    """The one-process platform, started, with an HTTP client talking to it in-process."""
    models, _ = scripted_models(settings, provider)
    app = create_app(settings, model_service=models, **kwargs)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://alp") as client:
            client.app = app
            yield client


@pytest.fixture
async def client(settings: Settings, provider: ScriptedProvider) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(settings, provider) as client:
        yield client


async def wait_for_status(
    client: httpx.AsyncClient, task_id: str, statuses: set[TaskStatus] = frozenset({"succeeded", "failed", "cancelled"}), timeout: float = 10
) -> dict:
    """Poll a task until it reaches one of `statuses`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        task = (await client.get(f"/tasks/{task_id}")).json()
        if task["status"] in statuses:
            return task
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"task {task_id} still {task['status']}")
        await asyncio.sleep(0.02)
