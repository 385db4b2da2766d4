"""Workflows in their own process (split mode): runs submit their agent tasks to the orchestrator's process
over HTTP; the `alp workflows` commands and an exported script work against them."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest
from support import free_port
from test_workflows_api import branching_workflow
from typer.testing import CliRunner

from agent_lightning.cli import app

pytestmark = pytest.mark.slow
runner = CliRunner()


def alp(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), terminal_width=200)
    return result.exit_code, result.output


def test_workflows_process_runs_tasks_through_the_orchestrator_process(cluster, tmp_path):
    platform = cluster.start("platform", "orchestrator,execution,models", free_port())
    workflows = cluster.start("workflows", "workflows", free_port(), ALP_ORCHESTRATOR_URL=platform)
    assert httpx.get(f"{workflows}/health").json()["services"] == ["workflows"]
    assert httpx.get(f"{platform}/workflows").status_code == 404, "only the workflows process serves them"
    created = httpx.post(f"{workflows}/workflows", json=branching_workflow()).json()

    code, output = alp("workflows", "list", "--url", workflows)
    assert code == 0 and created["id"] in output and "Review a draft" in output

    code, output = alp("workflows", "run", created["id"], "--input", "topic=bees", "--url", workflows)
    assert code == 0, output
    assert (
        "succeeded" in output and '"verdict": "APPROVED: answer to: Write a README guide about bees' in output
    )
    [run] = httpx.get(f"{workflows}/workflows/{created['id']}/runs").json()["items"]
    draft = next(n for n in run["nodes"] if n["node_id"] == "draft")
    task = httpx.get(f"{platform}/tasks/{draft['task_id']}").json()
    assert task["status"] == "succeeded" and task["metadata"]["workflow_run_id"] == run["run_id"]

    code, output = alp("workflows", "run", created["id"], "--input", "nope=1", "--url", workflows)
    assert code == 1 and "422 invalid_inputs" in output

    script = tmp_path / "flow.py"
    code, output = alp("workflows", "export", created["id"], "-o", str(script), "--url", workflows)
    assert code == 0 and script.exists()
    done = subprocess.run(
        [sys.executable, str(script), "--url", platform, "--input", "topic=bees"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == run["outputs"]
