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
from scripted import ScriptedProvider, scripted_models

from agent_lightning.app import create_app
from agent_lightning.core.config import Settings
from agent_lightning.orchestrator.schemas import TaskStatus

LAUNCHER = Path(__file__).with_name("split_server.py")
ALP = str(Path(sys.executable).with_name("alp"))
"""The console script a README install puts beside the interpreter."""


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
async def served(settings, provider=None, *, services=None):
    """The one-process platform under uvicorn: an HTTP client on its port, and its ws:// base URL.
    With `services`, only those, with the configured model service (no scripted model)."""
    if services is None:
        app = create_app(settings, model_service=scripted_models(settings, provider)[0])
    else:
        app = create_app(settings, services)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started or serving.done():
                break
            await asyncio.sleep(0.02)
        assert server.started, "uvicorn did not start"
        # 30 s, not httpx's 5: a loaded CI machine (two xdist workers, server processes) once kept a
        # request of tests/models/test_tenant_models.py past 5 s; a test asserts answers, not their speed.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            client.app = app
            client.ws = f"ws://127.0.0.1:{port}/ws/events"
            yield client
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 15)


async def wait_for_status(
    client: httpx.AsyncClient,
    task_id: str,
    statuses: set[TaskStatus] = frozenset({"succeeded", "failed", "cancelled"}),
    timeout: float = 10,
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


async def wait_for_learned(client: httpx.AsyncClient, task_id: str, timeout: float = 20) -> dict:
    """Poll until the knowledge learned from a rewarded task (in the background) is stored."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        page = (await client.get("/knowledge/items", params={"source": f"task:{task_id}"})).json()
        if page["items"]:
            return page["items"][0]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"nothing learned from task {task_id}")
        await asyncio.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, name: str, services: str, port: int, *, start_timeout_s: float = 90, **env: str) -> str:
        environ = {
            **os.environ,
            "ALP_DATABASE_URL": self.database_url,
            "ALP_LOG_LEVEL": "WARNING",
            "ALP_RETRY_BACKOFF_S": "0.05",
            "ALP_HTTP_RETRIES": "2",
            "ALP_Q_EPSILON": "0",
            "ALP_POLICY_PARAMS": '{"epsilon": 0}',
            "ALP_SHUTDOWN_GRACE_S": "0",
            # At most 10 PostgreSQL connections a process (the default is 32): a test of three replicas and
            # one beside it on another pytest-xdist worker stay under the server's 100.
            "ALP_DB_POOL_SIZE": "5",
            **env,
        }
        self.processes[name] = subprocess.Popen(
            [sys.executable, str(LAUNCHER), services, str(port)], env=environ
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + start_timeout_s
        while time.monotonic() < deadline:
            if (code := self.processes[name].poll()) is not None:
                raise RuntimeError(f"{name} exited with {code} at start")
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    return url
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"{name} did not start")

    def stop(self, name: str) -> None:
        process = self.processes.pop(name)
        process.terminate()
        process.wait(timeout=30)

    def kill(self, name: str) -> None:
        """SIGKILL: the process dies at once, as in a crash or an OOM kill."""
        process = self.processes.pop(name)
        process.kill()
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)


def start_alp(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    """`alp ARGS…` as a real process (output appended to `log`), with the test's environment plus `env`."""
    environ = {**os.environ, "HF_HUB_OFFLINE": "1", "ALP_LOG_LEVEL": "WARNING", **env}
    with log.open("ab") as out:
        return subprocess.Popen([ALP, *args], env=environ, stdout=out, stderr=subprocess.STDOUT)


def wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    """Wait until `url` answers /health, failing with the log's tail if the process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = process.poll()
        assert code is None, f"{url}: the process exited with {code}:\n{log.read_text()[-3000:]}"
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not start:\n{log.read_text()[-3000:]}")


async def until(condition, timeout: float, what: str) -> None:
    """Poll the async `condition` until it holds; fail with `what` after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.1)


REDIS_URL = os.environ.get("ALP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
JOBS = ("orchestrator.run_task", "execution.run", "workflows.run")


async def remove_job_streams(prefix: str) -> None:
    """Delete the Redis streams of a test's queue prefix."""
    import redis.asyncio as redis

    async with redis.from_url(REDIS_URL) as conn:
        await conn.delete(*(f"{prefix}.{job}" for job in JOBS))


async def task_count(db, *where) -> int:
    """How many task rows match `where`, read straight from the database."""
    from sqlalchemy import func, select

    from agent_lightning.orchestrator.tables import TaskRow

    async with db.session() as session:
        return await session.scalar(select(func.count()).select_from(TaskRow).where(*where))


def suite_conftest():
    """tests/conftest.py as a module. `from conftest import …` is not safe: every folder's conftest.py is
    imported under that same name, so which one it finds depends on the order pytest collected them."""
    import importlib.util

    loaded = sys.modules.get("_alp_suite_conftest")
    if loaded is None:
        spec = importlib.util.spec_from_file_location(
            "_alp_suite_conftest", Path(__file__).with_name("conftest.py")
        )
        loaded = importlib.util.module_from_spec(spec)
        sys.modules["_alp_suite_conftest"] = loaded
        spec.loader.exec_module(loaded)
    return loaded
