"""Monitoring in its own process (split mode): it reads the shared database, probes the other services'
/health, tells the dashboard where the orchestrator is, and the orchestrator lets the dashboard's origin
call it (CORS). Real server processes (tests/split_server.py)."""

from __future__ import annotations

import time

import httpx
import pytest
from support import free_port

from agent_lightning.monitoring.schemas import DashboardConfig, Summary

pytestmark = pytest.mark.slow


def wait_done(url: str, task_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = httpx.get(f"{url}/tasks/{task_id}").json()
        if task["status"] in {"succeeded", "failed", "cancelled"}:
            return task
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} did not finish")


def test_monitoring_process_sees_the_platform(cluster):
    monitoring_port = free_port()
    dashboard_origin = f"http://127.0.0.1:{monitoring_port}"
    core = cluster.start(
        "core", "orchestrator,execution,models", free_port(), ALP_CORS_ORIGINS=dashboard_origin
    )
    monitoring = cluster.start(
        "monitoring",
        "monitoring",
        monitoring_port,
        ALP_ORCHESTRATOR_URL=core,
        ALP_EXECUTION_URLS=core,
        ALP_MODELS_URL=core,
    )
    assert monitoring == dashboard_origin

    body = {
        "description": "Build a responsive landing page with HTML and CSS",
        "agent_id": "full_stack_developer",
    }
    task = wait_done(core, httpx.post(f"{core}/assign-task", json=body).json()["task_id"])
    assert task["status"] == "succeeded"

    summary = Summary.model_validate(httpx.get(f"{monitoring}/monitoring/summary", timeout=10).json())
    assert summary.by_status["succeeded"] == 1 and summary.total_tasks == 1
    assert [a.agent_id for a in summary.agents] == ["full_stack_developer"]
    health = {h.name: h for h in summary.health}
    assert health["orchestrator"].ok and health["orchestrator"].url == core
    assert health["database"].ok

    config = DashboardConfig.model_validate(httpx.get(f"{monitoring}/dashboard/config").json())
    assert config.api_base == core and config.agents_base == core
    # The browser's preflight from the dashboard's origin is allowed by the orchestrator, another origin is
    # not.
    preflight = httpx.options(
        f"{core}/assign-task",
        headers={
            "Origin": dashboard_origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,authorization",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == dashboard_origin
    listed = httpx.get(f"{core}/tasks", headers={"Origin": dashboard_origin})
    assert listed.headers["access-control-allow-origin"] == dashboard_origin
    other = httpx.get(f"{core}/tasks", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers

    cluster.stop("core")
    summary = Summary.model_validate(httpx.get(f"{monitoring}/monitoring/summary", timeout=10).json())
    assert not {h.name: h for h in summary.health}["orchestrator"].ok
