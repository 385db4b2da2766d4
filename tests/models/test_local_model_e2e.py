"""The one-process platform answers a real task with the local model shipped as a package (no key)."""

from __future__ import annotations

import json
import shutil

import httpx
import pytest
from support import wait_for_status

from agent_lightning.app import create_app

pytestmark = pytest.mark.slow


async def test_a_task_is_answered_by_the_local_model(settings):
    app = create_app(settings)  # the configured model service: the local llama.cpp provider
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://alp") as client:
            ready = (await client.get("/health/ready")).json()
            assert ready["checks"]["model"]["ok"], ready
            await client.patch("/api/v2/agents/general_assistant", json={"max_tokens": 24, "temperature": 0})
            body = {"description": "What is the capital of France?", "agent_id": "general_assistant"}
            task_id = (await client.post("/assign-task", json=body)).json()["task_id"]
            task = await wait_for_status(client, task_id, timeout=120)
    assert task["status"] == "succeeded", task
    assert "paris" in task["result"].lower()
    [attempt] = task["attempts"]
    assert attempt["agent_version"] == 2 and attempt["model"] == "local"
    assert 0 < attempt["completion_tokens"] <= 24


async def test_a_task_that_needs_a_calculation_is_answered_by_an_agent_that_used_a_tool(settings):
    """The fresh install's fleet: the router sends an arithmetic task to the analyst, whose first turn must be
    a tool call; SmolLM2 writes it under a JSON-schema grammar (which tool it picks is its own choice: python
    or knowledge_search), and the call runs."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (apt-get install bubblewrap) is missing")
    app = create_app(
        settings.model_copy(update={"task_timeout_s": 600, "rate_limit": ""})
    )  # polled for minutes
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://alp") as client:
            assigned = (
                await client.post("/assign-task", json={"description": "What is 1234 * 5678?"})
            ).json()
            assert assigned["assigned_agent"] == "analyst" and assigned["status"] == "assigned", assigned
            task = await wait_for_status(client, assigned["task_id"], timeout=900)
            steps = (await client.get(f"/api/v2/actions/{assigned['task_id']}")).json()["steps"]
    assert task["status"] == "succeeded", task
    first_call = steps[0]["tool_calls"][0]["function"]
    assert first_call["name"] in ("python", "knowledge_search")
    arguments = json.loads(first_call["arguments"])
    tool = next(s for s in steps if s["kind"] == "tool")
    assert tool["name"] == first_call["name"] and tool["arguments"] == arguments
    assert tool["status"] in ("succeeded", "failed") and tool["error_kind"] in (None, "misuse")  # it ran
