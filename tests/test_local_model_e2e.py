"""The one-process platform answers a real task with the local model shipped as a package (no key)."""

from __future__ import annotations

import httpx
import pytest

from agent_lightning.app import create_app

from support import wait_for_status

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
