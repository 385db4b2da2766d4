"""Helpers shared by the tests: the running platform with a scripted model, and polling a task."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import uvicorn

from agent_lightning.app import create_app
from agent_lightning.core.config import Settings
from agent_lightning.orchestrator.schemas import TaskStatus

from scripted import ScriptedProvider, scripted_models

LAUNCHER = Path(__file__).with_name("split_server.py")


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



@asynccontextmanager
async def served(settings, provider=None):
    """The one-process platform under uvicorn: an HTTP client on its port, and its ws:// base URL."""
    models, _ = scripted_models(settings, provider)
    app = create_app(settings, model_service=models)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started or serving.done():
                break
            await asyncio.sleep(0.02)
        assert server.started, "uvicorn did not start"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            client.app = app
            client.ws = f"ws://127.0.0.1:{port}/ws/events"
            yield client
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 15)


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, name: str, services: str, port: int, **env: str) -> str:
        environ = {**os.environ, "ALP_DATABASE_URL": self.database_url, "ALP_LOG_LEVEL": "WARNING",
                   "ALP_RETRY_BACKOFF_S": "0.05", "ALP_HTTP_RETRIES": "2", "ALP_Q_EPSILON": "0",
                   "ALP_POLICY_PARAMS": '{"epsilon": 0}', **env}
        self.processes[name] = subprocess.Popen([sys.executable, str(LAUNCHER), services, str(port)], env=environ)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    return url
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"{name} did not start")

    def stop(self, name: str) -> None:
        process = self.processes.pop(name)
        process.terminate()
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)
