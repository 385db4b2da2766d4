"""A data dir with knowledge survives restarts of `alp up` (real processes, the real local model and
embeddings).

The vector index beside SQLite once came from a library whose wheel carries its own libstdc++ and exports its
locale ids; loaded before onnxruntime, it made the first embedding of a restarted server die with SIGSEGV.
"""

from __future__ import annotations

import signal
import time

import httpx
import pytest
from platform_process import AlpUp, alp_cli

pytestmark = pytest.mark.slow

DOCS = {
    "deploy.md": "# Deploying\n\nThe platform deploys with docker compose; the kustomize overlay targets "
    "Kubernetes.",
    "rollback.md": "# Rollback\n\nA failed release rolls back with `kubectl rollout undo`; the old image "
    "stays cached.",
    "backup.md": "# Backups\n\nThe SQLite file is copied nightly with the online backup API; PostgreSQL uses "
    "pg_dump.",
}
MODES = ("hybrid", "vector", "fulltext")


def _add_knowledge(tmp_path, url: str) -> None:
    folder = tmp_path / "docs"
    folder.mkdir(exist_ok=True)
    for name, text in DOCS.items():
        (folder / name).write_text(text)
    added = alp_cli("knowledge", "add", str(folder), "--url", url)
    assert added.returncode == 0, added.stdout + added.stderr


def _short_answers(url: str) -> None:
    patched = httpx.patch(
        f"{url}/api/v2/agents/general_assistant", json={"max_tokens": 12, "temperature": 0}, timeout=30
    )
    assert patched.status_code == 200, patched.text


def _search_every_mode(url: str) -> None:
    for mode in MODES:
        found = httpx.post(
            f"{url}/knowledge/search",
            json={"query": "how do I roll back a release", "mode": mode},
            timeout=60,
        )
        assert found.status_code == 200, (mode, found.text)
        assert any("rollout undo" in hit["text"] for hit in found.json()["hits"]), (mode, found.json())


def test_a_restarted_server_with_knowledge_serves_tasks_and_every_search_mode(tmp_path):
    server = AlpUp(tmp_path / "data")
    url = server.start()
    _short_answers(url)
    _add_knowledge(tmp_path, url)
    assert server.stop() in (0, -signal.SIGTERM), (
        server.tail()
    )  # uvicorn re-raises SIGTERM after its shutdown

    url = server.start()
    try:
        _search_every_mode(url)  # the first embedding after the index was opened from disk
        submitted = alp_cli(
            "task",
            "submit",
            "Say hi",
            "--agent",
            "general_assistant",
            "--wait",
            "--timeout",
            "240",
            "--url",
            url,
        )
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr + server.tail()
        assert "succeeded" in submitted.stdout
        _search_every_mode(url)
        server.assert_alive()
    finally:
        server.stop()


def test_jobs_left_queued_by_a_killed_server_run_after_a_restart(tmp_path):
    server = AlpUp(tmp_path / "data")
    url = server.start()
    _short_answers(url)
    _add_knowledge(tmp_path, url)
    task_ids = []
    for text in ("Say hi", "Name a colour", "Count to three"):
        body = {"description": text, "agent_id": "general_assistant"}
        assigned = httpx.post(f"{url}/assign-task", json=body, timeout=30)
        assert assigned.status_code == 200, assigned.text
        task_ids.append(assigned.json()["task_id"])
    assert server.stop(signal.SIGKILL) == -signal.SIGKILL

    url = server.start()
    try:
        for task_id in task_ids:
            task = _finished(url, task_id, server)
            assert task["status"] == "succeeded", task
        _search_every_mode(url)
        server.assert_alive()
    finally:
        server.stop()


def _finished(url: str, task_id: str, server: AlpUp, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server.assert_alive()
        task = httpx.get(f"{url}/tasks/{task_id}", timeout=30).json()
        if task["status"] in ("succeeded", "failed", "cancelled"):
            return task
        time.sleep(0.5)
    raise AssertionError(f"task {task_id} still {task['status']}")
