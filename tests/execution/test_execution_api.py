"""The execution service over HTTP, and the worker's retries, timeouts and failures."""

from __future__ import annotations

import asyncio

from support import running_app, wait_for_status


async def test_execute_sync_on_both_endpoints(client, provider):
    for path in ("/api/v2/agents/execute", "/agents/execute"):
        response = await client.post(
            path,
            json={"task": "Summarise the plan", "agent_id": "technical_writer", "context": {"team": "core"}},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "succeeded"
        assert body["result"]["agent"] == "technical_writer" and body["result"]["agent_version"] == 1
        assert body["result"]["response"].startswith("answer to: Summarise the plan")
        status = (await client.get(f"/api/v1/tasks/{body['task_id']}")).json()
        assert status["status"] == "succeeded" and status["result"]["response"] == body["result"]["response"]
    assert '"team": "core"' in provider.calls[0].messages[-1].content


async def test_execute_without_agent_routes_to_the_best_fit(client):
    body = (
        await client.post("/api/v2/agents/execute", json={"task": "Find XSS vulnerabilities in this form"})
    ).json()
    assert body["result"]["agent"] == "security_expert"


async def test_execute_async_returns_202_and_runs_queued(client, provider):
    provider.delay_s = 0.2
    response = await client.post(
        "/api/v2/agents/execute", json={"task": "Explain CAP", "agent_id": "general_assistant", "async": True}
    )
    assert response.status_code == 202
    accepted = response.json()
    assert accepted["status"] == "queued" and accepted["status_url"] == f"/api/v1/tasks/{accepted['task_id']}"
    for _ in range(200):
        status = (await client.get(accepted["status_url"])).json()
        if status["status"] == "succeeded":
            break
        await asyncio.sleep(0.02)
    assert status["status"] == "succeeded" and status["result"]["agent"] == "general_assistant"


async def test_unknown_ids_are_404_never_a_fabricated_result(client):
    response = await client.get("/api/v1/tasks/never-submitted")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "task_not_found"
    unknown_agent = await client.post("/api/v2/agents/execute", json={"task": "x", "agent_id": "nobody"})
    assert unknown_agent.status_code == 404


async def test_no_model_available_is_a_clear_503(client, provider):
    provider.up = False
    response = await client.post(
        "/api/v2/agents/execute", json={"task": "Hello", "agent_id": "general_assistant"}
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "model_unavailable"
    assert "answer" not in response.text


async def test_failed_attempts_are_retried_with_backoff(client, provider):
    provider.failures = 2
    task_id = (await client.post("/assign-task", json={"description": "Deploy with docker"})).json()[
        "task_id"
    ]
    task = await wait_for_status(client, task_id)
    assert task["status"] == "succeeded"
    assert [a["status"] for a in task["attempts"]] == ["failed", "failed", "succeeded"]
    assert "scripted failure" in task["attempts"][0]["error"]
    assert task["attempts_count"] == 3


async def test_task_fails_after_max_attempts_and_the_agent_is_not_blamed_for_an_outage(client, provider):
    provider.up = False
    task_id = (
        await client.post("/assign-task", json={"description": "Deploy with docker", "max_attempts": 2})
    ).json()["task_id"]
    task = await wait_for_status(client, task_id)
    assert task["status"] == "failed" and "model_unavailable" in task["error"]
    assert len(task["attempts"]) == 2
    assert task["rewards"] == []


async def test_timeout_fails_the_attempt_and_is_a_zero_reward(settings, provider):
    settings.task_timeout_s = 0.2
    provider.delay_s = 2
    async with running_app(settings, provider) as client:
        task_id = (
            await client.post("/assign-task", json={"description": "Deploy with docker", "max_attempts": 1})
        ).json()["task_id"]
        task = await wait_for_status(client, task_id)
    assert task["status"] == "failed" and "timed out" in task["error"]
    assert [r["reward"] for r in task["rewards"]] == [0.0]
