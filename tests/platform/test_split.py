"""Split mode with real processes: the orchestrator reaches execution replicas over HTTP."""

from __future__ import annotations

import time

import httpx
import pytest
from support import free_port

pytestmark = pytest.mark.slow


def wait_done(url: str, task_id: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = httpx.get(f"{url}/tasks/{task_id}").json()
        if task["status"] in ("succeeded", "failed", "cancelled"):
            return task
        time.sleep(0.05)
    raise AssertionError(f"{task_id} is still {task['status']}")


def test_tasks_complete_when_one_execution_replica_is_down(cluster):
    a = cluster.start("exec-a", "execution", free_port())
    b = cluster.start("exec-b", "execution", free_port())
    orchestrator = cluster.start(
        "orchestrator", "orchestrator", free_port(), ALP_EXECUTION_URLS=f"{a},{b}", ALP_AGENTS_URL=a
    )
    first = httpx.post(f"{orchestrator}/assign-task", json={"description": "Deploy with docker"}).json()
    assert wait_done(orchestrator, first["task_id"])["status"] == "succeeded"
    both_up = httpx.get(f"{a}/_hits").json().get("/api/v2/agents/execute", 0) + httpx.get(
        f"{b}/_hits"
    ).json().get("/api/v2/agents/execute", 0)
    assert both_up == 1

    cluster.stop("exec-b")
    ids = [
        httpx.post(
            f"{orchestrator}/assign-task", json={"description": f"Deploy service {i} with docker"}
        ).json()["task_id"]
        for i in range(6)
    ]
    tasks = [wait_done(orchestrator, task_id) for task_id in ids]
    assert [t["status"] for t in tasks] == ["succeeded"] * 6
    assert all(len(t["attempts"]) == 1 for t in tasks), "the replica switch happens inside one attempt"
    assert httpx.get(f"{a}/_hits").json()["/api/v2/agents/execute"] >= 6


def test_the_fallback_endpoint_is_used_when_v2_fails(cluster):
    a = cluster.start("exec-a", "execution", free_port(), BREAK_V2="1")
    orchestrator = cluster.start(
        "orchestrator", "orchestrator", free_port(), ALP_EXECUTION_URLS=a, ALP_AGENTS_URL=a
    )
    task_id = httpx.post(f"{orchestrator}/assign-task", json={"description": "Deploy with docker"}).json()[
        "task_id"
    ]
    task = wait_done(orchestrator, task_id)
    assert task["status"] == "succeeded" and task["result"].startswith("answer to: Deploy with docker")
    hits = httpx.get(f"{a}/_hits").json()
    assert hits["/api/v2/agents/execute"] >= 1 and hits["/agents/execute"] >= 1


def test_execution_routes_through_the_remote_orchestrator(cluster):
    orch_port, exec_port = free_port(), free_port()
    a_url = f"http://127.0.0.1:{exec_port}"
    orchestrator = cluster.start(
        "orchestrator", "orchestrator", orch_port, ALP_EXECUTION_URLS=a_url, ALP_AGENTS_URL=a_url
    )
    a = cluster.start("exec-a", "execution", exec_port, ALP_ORCHESTRATOR_URL=orchestrator)
    body = httpx.post(
        f"{a}/api/v2/agents/execute",
        json={"task": "Audit authentication for XSS vulnerabilities"},
        timeout=10,
    ).json()
    assert body["result"]["agent"] == "security_expert"


def test_knowledge_and_memory_served_from_their_own_process(cluster):
    km = cluster.start("knowledge-memory", "knowledge,memory", free_port(), SPLIT_MODELS="quoting")
    core = cluster.start(
        "core",
        "orchestrator,execution",
        free_port(),
        SPLIT_MODELS="quoting",
        ALP_KNOWLEDGE_URL=km,
        ALP_MEMORY_URL=km,
    )
    doc = (
        "# Pools\n\n## Sizing\nKeep the connection pool small: twice the number of CPU cores is a good "
        "start.\n"
    )
    assert (
        httpx.post(
            f"{km}/knowledge/upload", params={"filename": "pools.md"}, content=doc.encode(), timeout=60
        ).status_code
        < 300
    )

    def ask(description: str, session: str) -> dict:
        body = {
            "description": description,
            "agent_id": "full_stack_developer",
            "metadata": {"user_id": "ana", "session_id": session},
        }
        return wait_done(core, httpx.post(f"{core}/assign-task", json=body).json()["task_id"], timeout=60)

    assert (
        ask("My production database is PostgreSQL 16 on a 4-core machine.", "monday")["status"] == "succeeded"
    )
    answer = ask("How large should the connection pool of my database server be?", "tuesday")
    assert answer["status"] == "succeeded"
    assert "twice the number of CPU cores" in answer["result"]  # retrieved over HTTP from the other process
    assert (
        "PostgreSQL 16 on a 4-core machine" in answer["result"]
    )  # remembered over HTTP from the other process
    assert answer["attempts"][-1]["knowledge_used"] and answer["attempts"][-1]["memory_used"]["memories"]
