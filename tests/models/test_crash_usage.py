"""A killed process loses no usage row: `alp up` (the real command) answers tasks through a model whose usage
rows wait for their batch (ALP_USAGE_FLUSH_S far away), is killed (SIGKILL), and started again on the same
data: every model call that answered has its row, once (models/usage.py, core/journal.py)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from models.upstream import FakeUpstream
from sqlalchemy import func, select
from support import free_port, start_alp, wait_healthy

from agent_lightning.core.db import Database
from agent_lightning.models.tables import UsageRow

pytestmark = pytest.mark.slow
TASKS = 6


def _start(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    process = start_alp("up", "--port", str(port), env=env, log=log)
    wait_healthy(f"http://127.0.0.1:{port}", process, log)
    return process


def _wait_succeeded(url: str, task_ids: list[str]) -> None:
    deadline = time.monotonic() + 60
    for task_id in task_ids:
        while (task := httpx.get(f"{url}/tasks/{task_id}").json())["status"] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, f"task {task_id} is {task['status']}"
            time.sleep(0.1)
        assert task["status"] == "succeeded", task


async def test_usage_rows_of_answered_calls_survive_a_kill(database_url: str, tmp_path: Path):
    upstream = FakeUpstream("openai-crash").start()
    models_file = tmp_path / "models.json"
    models_file.write_text(
        json.dumps(
            [
                {
                    "id": "local",
                    "deployments": [
                        {
                            "provider": "openai-compatible",
                            "model": "crash-model",
                            "base_url": f"{upstream.url}/v1",
                            "api_key": "sk-test",
                        }
                    ],
                }
            ]
        )
    )
    env = {
        "ALP_DATABASE_URL": database_url,
        "ALP_DATA_DIR": str(tmp_path / "data"),
        "ALP_MODELS_FILE": str(models_file),
        "ALP_USAGE_FLUSH_S": "600",
        "ALP_POLICY_EMBEDDINGS": "false",
        "ALP_KNOWLEDGE_BUDGET_TOKENS": "0",
        "ALP_VALIDATION_RESULT_CHECKS": "false",
        "ALP_LOG_LEVEL": "WARNING",
        "ALP_ALERT_INTERVAL_S": "0",
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = _start(env, port, tmp_path / "alp.log")
    try:
        bodies = [
            {"description": f"Deploy the API with docker #{i}", "force_execute": True} for i in range(TASKS)
        ]
        task_ids = [httpx.post(f"{url}/assign-task", json=body).json()["task_id"] for body in bodies]
        _wait_succeeded(url, task_ids)  # every answer reached its task: every call's row was accepted
        process.kill()
        process.wait()
        calls = len(upstream.requests)
        assert calls == TASKS
        process = _start(
            env, port, tmp_path / "alp.log"
        )  # writes what the killed process left in its journal
        db = Database(database_url)
        try:
            async with db.session() as session:
                rows = (
                    await session.execute(
                        select(UsageRow.task_id, func.count())
                        .where(UsageRow.kind == "chat")
                        .group_by(UsageRow.task_id)
                    )
                ).all()
        finally:
            await db.close()
        assert dict(rows) == {task_id: 1 for task_id in task_ids}, "a usage row was lost or written twice"
    finally:
        process.terminate()
        process.wait(30)
        upstream.stop()
