"""The orchestrator over HTTP: intake, routing, review, idempotency, listing, feedback, cancel, errors."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select
from support import wait_for_status

from agent_lightning.orchestrator.tables import DecisionRow, TaskRow

WEB_TASK = "Build a responsive landing page with HTML, CSS and a JavaScript contact form"


async def test_task_travels_from_submission_to_stored_result(client, provider):
    response = await client.post("/assign-task", json={"description": WEB_TASK, "priority": 6})
    assert response.status_code == 200, response.text
    assigned = response.json()
    assert assigned["assigned_agent"] == "full_stack_developer"
    assert assigned["status"] == "assigned" and assigned["validation_passed"] is True
    assert assigned["confidence"] >= 0.6
    assert assigned["policy"] == {"name": (await client.get("/policy")).json()["name"], "version": 0}
    assert assigned["candidates"][0]["agent_id"] == "full_stack_developer"
    assert 0 < assigned["probability"] <= 1

    task = await wait_for_status(client, assigned["task_id"])
    assert task["status"] == "succeeded"
    assert task["result"].startswith("answer to: " + WEB_TASK)
    assert "full-stack" in task["result"].lower(), "the agent's own system prompt was used"
    [attempt] = task["attempts"]
    assert attempt["agent_id"] == "full_stack_developer" and attempt["agent_version"] == 1
    assert attempt["model"] == "local" and attempt["status"] == "succeeded"
    assert attempt["prompt_tokens"] > 0 and attempt["completion_tokens"] == 7
    assert attempt["finished_at"] >= attempt["started_at"]
    [decision] = task["decisions"]
    assert decision["state"] == "web_development" and decision["chosen_agent"] == "full_stack_developer"
    assert len(decision["candidates"]) >= 7
    [reward] = task["rewards"]
    assert reward["source"] == "outcome" and 0.7 <= reward["reward"] <= 1.0

    policy = (await client.get("/policy")).json()
    assert policy["version"] == 1, "the outcome updated the policy"
    [stats] = [a for a in policy["agents"] if a["agent_id"] == "full_stack_developer"]
    assert stats["decisions"] == 1 and stats["rewards"] == 1 and stats["mean_reward"] == reward["reward"]


async def test_routing_picks_specialists_by_task(client):
    expected = {
        "Audit our login flow for SQL injection and XSS vulnerabilities": "security_expert",
        "Deploy the service to Kubernetes with a CI pipeline": "devops_engineer",
        "Train a regression model on this sales dataset and report statistics": "data_scientist",
        "Write pytest regression tests that reproduce the checkout bug": "qa_tester",
        "Write a README guide and tutorial documentation for the CLI": "technical_writer",
        "Design a PostgreSQL schema and index for the orders table": "database_specialist",
        "What is the capital of France?": "general_assistant",
    }
    for description, agent in expected.items():
        preview = (await client.post("/route", json={"description": description})).json()
        assert preview["agent_id"] == agent, (description, preview)


async def test_low_confidence_waits_for_review_and_approve_releases_it(client):
    await client.post("/api/v2/agents/general_assistant/retire")  # no one fits a Rust task now
    response = await client.post("/assign-task", json={"description": "Refactor the rust crate"})
    held = response.json()
    assert held["status"] == "awaiting_review" and held["validation_passed"] is False
    assert "below 0.6" in held["reason"]
    await asyncio.sleep(0.1)
    assert (await client.get(f"/tasks/{held['task_id']}")).json()["status"] == "awaiting_review"

    approved = await client.post(
        f"/tasks/{held['task_id']}/approve", json={"agent_id": "full_stack_developer"}
    )
    assert approved.status_code == 200 and approved.json()["assigned_agent"] == "full_stack_developer"
    task = await wait_for_status(client, held["task_id"])
    assert task["status"] == "succeeded" and task["assigned_agent"] == "full_stack_developer"
    assert [d["policy"] for d in task["decisions"]] == [
        (await client.get("/policy")).json()["name"],
        "review",
    ]

    again = await client.post(f"/tasks/{held['task_id']}/approve")
    assert again.status_code == 409


async def test_force_execute_and_explicit_agent_skip_review(client):
    await client.post("/api/v2/agents/general_assistant/retire")
    forced = (
        await client.post(
            "/assign-task", json={"description": "Refactor the rust crate", "force_execute": True}
        )
    ).json()
    assert forced["status"] == "assigned"
    explicit = (
        await client.post(
            "/assign-task", json={"description": "Refactor the rust crate", "agent_id": "qa_tester"}
        )
    ).json()
    assert explicit["status"] == "assigned" and explicit["assigned_agent"] == "qa_tester"
    assert explicit["policy"]["name"] == "explicit" and explicit["probability"] == 1.0
    for task_id in (forced["task_id"], explicit["task_id"]):
        assert (await wait_for_status(client, task_id))["status"] == "succeeded"


async def test_idempotency_returns_first_response_and_rejects_a_different_body(client):
    body = {"description": WEB_TASK, "idempotency_key": "order-42"}
    first = (await client.post("/assign-task", json=body)).json()
    await wait_for_status(client, first["task_id"])
    second = await client.post("/assign-task", json=body)
    assert second.status_code == 200 and second.json() == first
    conflict = await client.post("/assign-task", json={**body, "priority": 9})
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "idempotency_conflict"
    page = (await client.get("/tasks")).json()
    assert len(page["items"]) == 1


async def test_list_filters_and_cursor_pagination(client):
    ids = []
    for i in range(5):
        body = {"description": f"Write documentation guide number {i}", "priority": i + 1}
        ids.append((await client.post("/assign-task", json=body)).json()["task_id"])
    await client.post(
        "/assign-task", json={"description": "Deploy with docker and kubernetes", "priority": 9}
    )
    for task_id in ids:
        await wait_for_status(client, task_id)

    seen, cursor = [], None
    while True:
        params = {"limit": 2, "text": "documentation"} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/tasks", params=params)).json()
        seen += [t["task_id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 5

    high = (await client.get("/tasks", params={"priority_min": 4, "priority_max": 5})).json()["items"]
    assert {t["priority"] for t in high} == {4, 5}
    by_agent = (await client.get("/tasks", params={"agent_id": "devops_engineer"})).json()["items"]
    assert [t["priority"] for t in by_agent] == [9]
    done = (await client.get("/tasks", params={"status": ["succeeded"]})).json()["items"]
    assert {t["task_id"] for t in done} >= set(ids)
    future = (await client.get("/tasks", params={"created_after": "2100-01-01T00:00:00Z"})).json()
    assert future["items"] == []
    bad = await client.get("/tasks", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_cursor"


async def test_feedback_updates_the_policy(client):
    assert (await client.put("/policy", json={"name": "seed-q", "params": {"epsilon": 0}})).status_code == 200
    task_id = (await client.post("/assign-task", json={"description": WEB_TASK})).json()["task_id"]
    await wait_for_status(client, task_id)
    before = (await client.get("/q-table")).json()["q_table"]["web_development"]["full_stack_developer"]

    response = await client.post(f"/tasks/{task_id}/feedback", json={"score": 0, "comment": "wrong language"})
    assert response.status_code == 200
    assert response.json()["reward"] == 0.0
    after = (await client.get("/q-table")).json()
    assert after["q_table"]["web_development"]["full_stack_developer"] < before
    task = (await client.get(f"/tasks/{task_id}")).json()
    assert [r["source"] for r in task["rewards"]] == ["outcome", "feedback"]
    assert task["rewards"][1]["comment"] == "wrong language"

    bad = await client.post(f"/tasks/{task_id}/feedback", json={"score": 11})
    assert bad.status_code == 422


async def test_cancel(client, provider):
    provider.delay_s = 5
    task_id = (await client.post("/assign-task", json={"description": WEB_TASK})).json()["task_id"]
    await wait_for_status(client, task_id, {"running"})
    cancelled = await client.post(f"/tasks/{task_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    await asyncio.sleep(0.1)
    task = (await client.get(f"/tasks/{task_id}")).json()
    assert task["status"] == "cancelled" and task["result"] is None
    assert (await client.post(f"/tasks/{task_id}/cancel")).status_code == 409
    assert (await client.post(f"/tasks/{task_id}/feedback", json={"score": 5})).status_code == 409


async def test_bad_input_gets_a_clear_error_and_writes_nothing(client):
    app = client.app
    cases = [
        ({"json": {"description": ""}}, 422, "validation_error"),
        ({"json": {"description": "   "}}, 422, "validation_error"),
        ({"json": {"description": "x", "priority": 11}}, 422, "validation_error"),
        ({"json": {"description": "x", "unknown_field": 1}}, 422, "validation_error"),
        (
            {"content": b'{"description": ', "headers": {"content-type": "application/json"}},
            400,
            "malformed_json",
        ),
        ({"json": {"description": "x" * 300_000}}, 413, "payload_too_large"),
        ({"json": {"description": "Deploy it", "agent_id": "nobody"}}, 404, "agent_not_found"),
        ({"json": {"description": "Deploy it", "required_capabilities": ["fly"]}}, 422, "no_eligible_agent"),
    ]
    for kwargs, status, code in cases:
        response = await client.post("/assign-task", **kwargs)
        assert response.status_code == status, (kwargs, response.text)
        body = response.json()
        assert set(body) == {"error"} and body["error"]["code"] == code
        assert "Traceback" not in response.text

    assert (await client.get("/tasks/nope")).status_code == 404
    assert (await client.get("/tasks/nope")).json()["error"]["code"] == "task_not_found"
    assert (await client.post("/tasks/nope/feedback", json={"score": 1})).status_code == 404
    assert (await client.get("/no/such/route")).status_code == 404

    platform = app.state.platform
    async with platform.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(TaskRow)) == 0
        assert await session.scalar(select(func.count()).select_from(DecisionRow)) == 0


async def test_duplicate_task_id_is_a_conflict(client):
    body = {"description": WEB_TASK, "task_id": "t-123"}
    assert (await client.post("/assign-task", json=body)).status_code == 200
    again = await client.post("/assign-task", json=body)
    assert again.status_code == 409 and again.json()["error"]["code"] == "task_exists"


async def test_retired_agents_are_never_assigned(client):
    await client.post("/api/v2/agents/security_expert/retire")
    assigned = (
        await client.post(
            "/assign-task",
            json={"description": "Audit the authentication for vulnerabilities", "force_execute": True},
        )
    ).json()
    assert assigned["assigned_agent"] != "security_expert"
    assert "security_expert" not in {c["agent_id"] for c in assigned["candidates"]}
    explicit = await client.post(
        "/assign-task", json={"description": "Audit it", "agent_id": "security_expert"}
    )
    assert explicit.status_code == 409 and explicit.json()["error"]["code"] == "agent_not_active"


async def test_events_are_published_with_a_correlation_id(client):
    bus = client.app.state.platform.bus
    response = await client.post(
        "/assign-task", json={"description": WEB_TASK}, headers={"X-Correlation-ID": "corr-1"}
    )
    assert response.headers["X-Correlation-ID"] == "corr-1"
    task_id = response.json()["task_id"]
    await wait_for_status(client, task_id)
    # The task is visible as succeeded once its outcome reward is committed; the policy learns from it
    # right after, so wait for that before sending feedback (or the two updates may interleave).
    for _ in range(500):
        if any(e.type == "policy.updated" and e.data.get("task_id") == task_id for e in bus.recent()):
            break
        await asyncio.sleep(0.01)
    await client.post(f"/tasks/{task_id}/feedback", json={"score": 9}, headers={"X-Correlation-ID": "corr-2"})
    events = [e for e in bus.recent() if e.data.get("task_id") == task_id]
    types = [e.type for e in events]
    assert types == [
        "task.created",
        "task.assigned",
        "task.started",
        "task.step",
        "task.succeeded",
        "policy.updated",
        "feedback.received",
        "policy.updated",
    ]  # task.step: the agent run's one model call
    assert [e.correlation_id for e in events] == ["corr-1"] * 6 + ["corr-2"] * 2


async def test_health_and_readiness(client, provider):
    assert (await client.get("/health")).json()["status"] == "ok"
    ready = (await client.get("/health/ready")).json()
    assert ready["status"] == "ready" and {"database", "queue", "model"} <= set(ready["checks"])
    provider.up = False
    down = await client.get("/health/ready")
    assert down.status_code == 503
    assert down.json()["error"]["details"]["model"]["ok"] is False


async def test_every_endpoint_is_in_the_openapi_schema_with_typed_models(client):
    schema = (await client.get("/openapi.json")).json()
    paths = schema["paths"]
    for path in (
        "/assign-task",
        "/tasks",
        "/tasks/{task_id}",
        "/tasks/{task_id}/feedback",
        "/tasks/{task_id}/cancel",
        "/tasks/{task_id}/approve",
        "/q-table",
        "/route",
        "/api/v2/agents/execute",
        "/agents/execute",
        "/api/v1/tasks/{task_id}",
        "/api/v2/agents",
        "/health",
        "/health/ready",
    ):
        assert path in paths, path
    for path, operations in paths.items():
        for method, operation in operations.items():
            ok = (
                operation["responses"].get("200")
                or operation["responses"].get("201")
                or operation["responses"].get("202")
            )
            assert ok and "$ref" in str(ok), (method, path)
