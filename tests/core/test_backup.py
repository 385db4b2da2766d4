"""`alp db backup` / `alp db restore` round-trip the platform's state (tasks with their rewards, the learned
policy, knowledge with its index, memory) as real CLI processes, on the backend under test (SQLite,
PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

from embedded import embedded_app
from support import wait_for_learned, wait_for_status

SECRET_FACT = "The staging cluster runs in the Falkenstein data centre"


def alp(settings, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "ALP_DATABASE_URL": settings.resolved_database_url(),
        "ALP_DATA_DIR": str(settings.data_dir),
        "ALP_LOG_LEVEL": "WARNING",
    }
    return subprocess.run(
        [sys.executable, "-m", "agent_lightning.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


async def _state(client) -> dict:
    tasks = (await client.get("/tasks", params={"limit": 100})).json()["items"]
    details = [(await client.get(f"/tasks/{t['task_id']}")).json() for t in tasks]
    search = (
        await client.post("/knowledge/search", json={"query": "Where does staging run?", "mode": "vector"})
    ).json()
    return {
        "tasks": sorted((d["task_id"], d["status"], len(d["rewards"])) for d in details),
        "policy": (await client.get("/policy")).json(),
        "route": (await client.post("/route", json={"description": "Deploy the API with docker"})).json(),
        "knowledge": [(hit["title"], hit["text"]) for hit in search["hits"]][:3],
        "memory": sorted(
            m["content"] for m in (await client.get("/memory/memories", params={"user_id": "ada"})).json()
        ),
    }


async def test_backup_and_restore_round_trip(settings, provider, tmp_path: Path):
    async with embedded_app(settings, provider) as client:
        task_id = (
            await client.post(
                "/assign-task", json={"description": "Deploy the API with docker", "force_execute": True}
            )
        ).json()["task_id"]
        await wait_for_status(client, task_id)
        assert (await client.post(f"/tasks/{task_id}/feedback", json={"score": 9})).status_code == 200
        await wait_for_learned(client, task_id)  # the feedback's knowledge is learned in the background
        item = await client.post("/knowledge/items", json={"title": "Staging", "content": SECRET_FACT + "."})
        assert item.status_code == 201, item.text
        memory = await client.post(
            "/memory/memories", json={"user_id": "ada", "content": "Ada prefers Rust."}
        )
        assert memory.status_code == 201, memory.text
        before = await _state(client)
    assert (
        before["knowledge"] and before["memory"] == ["Ada prefers Rust."] and before["policy"]["version"] >= 2
    )

    archive = tmp_path / "backups" / "alp.tar"
    made = alp(settings, "db", "backup", str(archive))
    assert made.returncode == 0, made.stderr
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "manifest.json" in names
    assert (
        "database.pgdump" if settings.resolved_database_url().startswith("postgresql") else "database.sqlite"
    ) in names

    # Life goes on after the backup: another task, the knowledge item deleted, the user's memory erased.
    async with embedded_app(settings, provider) as client:
        later = (
            await client.post(
                "/assign-task", json={"description": "Write a SQL query", "force_execute": True}
            )
        ).json()
        await wait_for_status(client, later["task_id"])
        await client.delete(f"/knowledge/items/{item.json()['item']['id']}")
        await client.delete("/memory/users/ada")
        changed = await _state(client)
    assert changed != before

    refused = alp(settings, "db", "restore", str(archive))  # asks first; no answer means no
    assert refused.returncode != 0
    restored = alp(settings, "db", "restore", str(archive), "--yes")
    assert restored.returncode == 0, restored.stderr

    async with embedded_app(settings, provider) as client:
        after = await _state(client)
        answer = (
            await client.post("/knowledge/search", json={"query": "Falkenstein", "mode": "hybrid"})
        ).json()
    assert after == before
    assert answer["hits"] and SECRET_FACT in answer["hits"][0]["text"]


def test_restore_refuses_what_is_not_a_backup(settings, tmp_path: Path):
    bogus = tmp_path / "notes.tar"
    bogus.write_text("not a tar file")
    result = alp(settings, "db", "restore", str(bogus), "--yes")
    assert result.returncode == 1
    assert "not an Agent Lightning backup" in result.stderr
