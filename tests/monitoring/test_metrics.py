"""GET /metrics: HTTP requests by route template, tasks, routing decisions, rewards and model calls,
counted in a registry of each application's own."""

from __future__ import annotations

import asyncio

from prometheus_client.parser import text_string_to_metric_families
from support import running_app, wait_for_status

WEB_TASK = "Build a responsive landing page with HTML, CSS and a JavaScript contact form"


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples
    ]


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels` (0 when there is none)."""
    return sum(v for n, found, v in samples(text) if n == name and labels.items() <= found.items())


async def metrics_when(client, name: str, minimum: float, timeout: float = 10, **labels: str) -> str:
    """/metrics once `name` (with `labels`) reaches `minimum`: events are counted just after the commit
    that a task's status shows."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        response = await client.get("/metrics")
        assert response.status_code == 200
        if value(response.text, name, **labels) >= minimum:
            return response.text
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{name}{labels} never reached {minimum}:\n{response.text}")
        await asyncio.sleep(0.02)


async def test_a_finished_task_its_decision_and_rewards_are_counted(client):
    assigned = (await client.post("/assign-task", json={"description": WEB_TASK})).json()
    agent, policy = assigned["assigned_agent"], assigned["policy"]["name"]
    task = await wait_for_status(client, assigned["task_id"])
    assert task["status"] == "succeeded"
    text = await metrics_when(client, "alp_tasks_total", 1, outcome="succeeded", agent=agent)

    assert value(text, "alp_tasks_total") == 1
    assert value(text, "alp_task_run_seconds_count", agent=agent) == 1
    assert value(text, "alp_routing_decisions_total", policy=policy, agent=agent) == 1
    assert value(text, "alp_routing_decision_seconds_count", policy=policy) == 1
    assert 0 < value(text, "alp_routing_decision_seconds_sum", policy=policy) < 10
    assert value(text, "alp_reward_count", source="outcome", agent=agent) == 1
    [outcome_reward] = [r["reward"] for r in task["rewards"] if r["source"] == "outcome"]
    assert abs(value(text, "alp_reward_sum", source="outcome") - outcome_reward) < 1e-9
    assert value(text, "alp_reward_bucket", source="outcome", le="1.0") == 1

    # The model call behind the task: by provider and alias, with its tokens and latency.
    [attempt] = task["attempts"]
    assert (
        value(text, "alp_model_requests_total", provider="scripted", model="local", kind="chat", status="ok")
        >= 1
    )
    assert value(text, "alp_model_tokens_total", provider="scripted", model="local", type="completion") >= 7
    assert (
        value(text, "alp_model_tokens_total", provider="scripted", model="local", type="prompt")
        >= attempt["prompt_tokens"]
    )
    assert value(text, "alp_model_request_duration_seconds_count", provider="scripted", model="local") >= 1

    feedback = await client.post(f"/tasks/{task['task_id']}/feedback", json={"score": 8})
    assert feedback.status_code == 200, feedback.text
    text = (await client.get("/metrics")).text
    assert value(text, "alp_reward_count", source="feedback", agent=agent) == 1
    assert abs(value(text, "alp_reward_sum", source="feedback") - 0.8) < 1e-9
    assert value(text, "alp_reward_count", source="outcome") == 1


async def test_http_requests_are_labelled_by_route_template_and_status(client):
    assigned = (await client.post("/assign-task", json={"description": WEB_TASK})).json()
    task_id = assigned["task_id"]
    await wait_for_status(client, task_id)
    assert (await client.get("/tasks/no-such-task")).status_code == 404
    assert (await client.get(f"/no/such/route/{task_id}")).status_code == 404
    assert (await client.post("/assign-task", json={})).status_code == 422

    text = (await client.get("/metrics")).text
    assert value(text, "alp_http_requests_total", method="POST", route="/assign-task", status="200") == 1
    assert value(text, "alp_http_requests_total", method="POST", route="/assign-task", status="422") == 1
    assert value(text, "alp_http_requests_total", method="GET", route="/tasks/{task_id}", status="200") >= 1
    assert value(text, "alp_http_requests_total", method="GET", route="/tasks/{task_id}", status="404") == 1
    assert value(text, "alp_http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert value(text, "alp_http_request_duration_seconds_count", method="POST", route="/assign-task") == 2
    routes = {labels["route"] for name, labels, _ in samples(text) if name.startswith("alp_http_")}
    assert not any(task_id in route or "no-such-task" in route for route in routes), routes


async def test_an_idempotent_replay_is_not_a_new_decision(client):
    body = {"description": WEB_TASK, "idempotency_key": "metrics-1"}
    first = (await client.post("/assign-task", json=body)).json()
    again = (await client.post("/assign-task", json=body)).json()
    assert again["task_id"] == first["task_id"]
    text = (await client.get("/metrics")).text
    assert value(text, "alp_routing_decisions_total") == 1


async def test_each_application_counts_in_its_own_registry(settings, provider, tmp_path):
    other = settings.model_copy(update={"database_url": f"sqlite+aiosqlite:///{tmp_path / 'other.db'}"})
    async with running_app(settings, provider) as first, running_app(other) as second:
        assigned = (await first.post("/assign-task", json={"description": WEB_TASK})).json()
        await wait_for_status(first, assigned["task_id"])
        await metrics_when(first, "alp_tasks_total", 1)
        text = (await second.get("/metrics")).text
        assert value(text, "alp_tasks_total") == 0
        assert value(text, "alp_http_requests_total", route="/assign-task") == 0
        assert first.app.state.metrics.registry is not second.app.state.metrics.registry


async def test_metrics_are_prometheus_text_documented_in_openapi(client):
    response = await client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {
        "alp_http_requests",
        "alp_tasks",
        "alp_routing_decisions",
        "alp_reward",
        "alp_model_requests",
    } <= names
    assert "process_cpu_seconds" in names

    operation = (await client.get("/openapi.json")).json()["paths"]["/metrics"]["get"]
    schema = operation["responses"]["200"]["content"]["text/plain"]["schema"]
    assert schema["$ref"] == "#/components/schemas/PrometheusText"


async def test_queue_depth_and_tasks_in_flight_are_gauges_read_at_each_scrape(settings, provider):
    settings.confidence_threshold = 0.999  # a task not forced is held for review
    provider.delay_s = 30  # the first task runs until the test ends
    async with running_app(settings, provider) as client:
        await _gauges_follow_the_tasks(client)


async def _gauges_follow_the_tasks(client) -> None:
    running = (
        await client.post("/assign-task", json={"description": WEB_TASK, "force_execute": True})
    ).json()
    await wait_for_status(client, running["task_id"], {"running"})
    held = (await client.post("/assign-task", json={"description": WEB_TASK})).json()
    assert held["status"] == "awaiting_review", held

    text = (await client.get("/metrics")).text
    assert value(text, "alp_tasks_current", status="running") == 1
    assert value(text, "alp_tasks_current", status="awaiting_review") == 1
    assert (
        value(text, "alp_tasks_current", status="queued")
        + value(text, "alp_tasks_current", status="assigned")
        == 0
    )
    assert value(text, "alp_tasks_lease_expired") == 0

    assert (await client.post(f"/tasks/{held['task_id']}/cancel")).status_code == 200
    text = (await client.get("/metrics")).text
    assert value(text, "alp_tasks_current", status="awaiting_review") == 0
