"""Helpers shared by the tests: the running platform with a scripted model, and polling a task."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import httpx

from agent_lightning.app import create_app
from agent_lightning.core.config import Settings
from agent_lightning.orchestrator.schemas import TaskStatus

from scripted import ScriptedProvider, scripted_models


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
