"""Monitoring over the running app: /monitoring/summary's numbers against what the tests did, the alert
rules firing and resolving (with their bus events), the dashboard's files, and the routes' roles with
authentication on. Runs on SQLite and PostgreSQL (ALP_TEST_DB)."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr
from support import running_app, wait_for_status

from agent_lightning.app import create_app
from agent_lightning.core.db import Database, utcnow
from agent_lightning.core.tenancy import tenant_update
from agent_lightning.models.service import ModelService
from agent_lightning.monitoring.schemas import AlertList, Summary
from agent_lightning.monitoring.service import percentile
from agent_lightning.orchestrator.tables import TaskRow

WEB_TASK = "Build a responsive landing page with HTML, CSS and a JavaScript contact form"
SECRET = "monitoring-secret-" + "x" * 40


@pytest.fixture(autouse=True)
def quick_failures(monkeypatch):
    """A failing model call fails at once and never cools its deployment down, so later calls succeed."""
    monkeypatch.setenv("ALP_MODEL_RETRIES", "0")
    monkeypatch.setenv("ALP_MODEL_COOLDOWN_FAILURES", "1000")


@pytest.fixture
def monitored(settings):
    return settings.model_copy(
        update={
            "alert_interval_s": 0,
            "alert_min_tasks": 2,
            "alert_window": 4,
            "alert_failure_rate": 0.5,
            "alert_review_backlog": 1,
            "alert_reward_window": 2,
            "alert_reward_drop": 0.3,
            "max_attempts": 1,
        }
    )


async def run(client, description: str = WEB_TASK, **body) -> dict:
    response = await client.post("/assign-task", json={"description": description, **body})
    assert response.status_code == 200, response.text
    return await wait_for_status(client, response.json()["task_id"])


async def evaluate(client) -> AlertList:
    response = await client.post("/monitoring/alerts/evaluate")
    assert response.status_code == 200, response.text
    return AlertList.model_validate(response.json())


def test_percentile_interpolates_between_ranks():
    assert percentile([], 50) is None
    assert percentile([3.0], 95) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile(list(map(float, range(1, 101))), 95) == pytest.approx(95.05)


async def test_summary_counts_what_happened(monitored, provider):
    async with running_app(monitored, provider) as client:
        empty = Summary.model_validate((await client.get("/monitoring/summary")).json())
        assert empty.total_tasks == 0 and empty.success_rate is None and empty.latency_s.p50 is None
        assert empty.policy.name == "topics" and empty.policy.default is True

        first = await run(client, agent_id="full_stack_developer")
        second = await run(client, agent_id="full_stack_developer")
        provider.failures = 1
        failed = await run(client, "Audit the login form for XSS", agent_id="security_expert")
        assert [first["status"], second["status"], failed["status"]] == ["succeeded", "succeeded", "failed"]
        await client.post("/api/v2/agents/general_assistant/retire")  # nobody fits: the task waits for review
        held = (await client.post("/assign-task", json={"description": "Refactor the rust crate"})).json()
        assert held["status"] == "awaiting_review"
        feedback = await client.post(f"/tasks/{first['task_id']}/feedback", json={"score": 2})
        assert feedback.status_code == 200

        firing = [a.id for a in (await evaluate(client)).firing]
        assert firing == ["review_backlog"]  # one failure in three is below the failure rate's 50 %
        response = await client.get("/monitoring/summary")
        assert response.status_code == 200
        summary = Summary.model_validate(response.json())
        assert summary.total_tasks == 4
        assert summary.by_status == {
            "queued": 0,
            "assigned": 0,
            "awaiting_review": 1,
            "running": 0,
            "awaiting_approval": 0,
            "succeeded": 2,
            "failed": 1,
            "cancelled": 0,
        }
        assert summary.success_rate == pytest.approx(2 / 3, abs=1e-4)
        assert summary.recent_success_rate == pytest.approx(2 / 3, abs=1e-4)
        assert summary.throughput.created == 4 and summary.throughput.finished == 3
        assert summary.latency_s.count == 2
        assert 0 < summary.latency_s.p50 <= summary.latency_s.p95 <= summary.latency_s.p99
        agents = {a.agent_id: a for a in summary.agents}
        web = agents["full_stack_developer"]
        held_here = int(held["assigned_agent"] == "full_stack_developer")  # the agent proposed for review
        assert (web.tasks, web.succeeded, web.failed, web.success_rate) == (2 + held_here, 2, 0, 1.0)
        # Two outcome rewards (just under 1 for the latency) and one feedback of 2/10 = 0.2.
        assert web.rewards == 3 and web.feedback == 1
        assert web.mean_reward == pytest.approx(
            (first["rewards"][0]["reward"] + second["rewards"][0]["reward"] + 0.2) / 3, abs=1e-3
        )
        assert web.mean_latency_s is not None and web.mean_latency_s > 0
        security = agents["security_expert"]
        assert (security.tasks, security.succeeded, security.failed, security.success_rate) == (1, 0, 1, 0.0)
        assert (
            summary.policy.name == "topics" and summary.policy.version >= 3
        )  # two outcomes and one feedback
        health = {h.name: h for h in summary.health}
        assert health["database"].ok and health["queue"].ok and health["bus"].ok
        assert summary.alerts_firing == 1


async def test_failure_rate_alert_fires_and_resolves_with_events(monitored, provider):
    async with running_app(monitored, provider) as client:
        bus = client.app.state.platform.bus
        assert (await evaluate(client)).firing == []
        await run(client, agent_id="full_stack_developer")
        provider.failures = 2
        await run(client, agent_id="full_stack_developer")
        await run(client, agent_id="full_stack_developer")

        alerts = await evaluate(client)
        firing = {a.id: a for a in alerts.firing}
        assert "failure_rate" in firing
        alert = firing["failure_rate"]
        assert alert.state == "firing" and alert.severity == "critical"
        assert alert.value == pytest.approx(2 / 3, abs=1e-4) and alert.threshold == 0.5
        fired = [e for e in bus.recent() if e.type == "alert.firing" and e.data["id"] == "failure_rate"]
        assert len(fired) == 1 and fired[0].source == "monitoring"
        listed = AlertList.model_validate((await client.get("/monitoring/alerts?state=firing")).json())
        assert [a.id for a in listed.firing] == ["failure_rate"] and listed.resolved == []
        assert {r.name for r in listed.rules} >= {
            "failure_rate",
            "latency_p95",
            "reward_drop",
            "model_errors",
        }

        assert len((await evaluate(client)).firing) == 1  # still firing: no second event
        assert len([e for e in bus.recent() if e.type == "alert.firing"]) == 1

        for _ in range(3):  # the last four finished: one failure in four, 25 %
            await run(client, agent_id="full_stack_developer")
        alerts = await evaluate(client)
        assert "failure_rate" not in {a.id for a in alerts.firing}
        assert alerts.resolved[0].id == "failure_rate" and alerts.resolved[0].resolved_at is not None
        resolved = [e for e in bus.recent() if e.type == "alert.resolved"]
        assert [e.data["id"] for e in resolved] == ["failure_rate"]


async def test_alerts_are_evaluated_after_each_finished_task(monitored, provider):
    async with running_app(monitored, provider) as client:
        bus = client.app.state.platform.bus
        provider.failures = 2
        first = await run(client, agent_id="qa_tester")
        second = await run(client, agent_id="qa_tester")
        assert first["status"] == second["status"] == "failed"

        def fired(e) -> bool:
            return e.type == "alert.firing" and e.data["id"] == "failure_rate"

        # Nobody asked: the rules ran after the second failure (it may have happened already).
        event = next((e for e in bus.recent() if fired(e)), None) or await bus.wait_for(fired, timeout=10)
        assert event.data["id"] == "failure_rate" and event.tenant_id == "default"


async def test_review_backlog_and_reward_drop_alerts(monitored, provider):
    async with running_app(monitored, provider) as client:
        await client.post("/api/v2/agents/general_assistant/retire")
        held = (await client.post("/assign-task", json={"description": "Refactor the rust crate"})).json()
        assert held["status"] == "awaiting_review"
        ok1 = await run(client, agent_id="technical_writer")
        ok2 = await run(client, agent_id="technical_writer")
        alerts = {a.id: a for a in (await evaluate(client)).firing}
        assert alerts["review_backlog"].value == 1
        assert "reward_drop:technical_writer" not in alerts

        for task in (ok1, ok2):  # two thumbs down after two good outcomes
            assert (
                await client.post(f"/tasks/{task['task_id']}/feedback", json={"score": 0})
            ).status_code == 200
        await client.post(f"/tasks/{held['task_id']}/cancel")
        alerts = await evaluate(client)
        firing = {a.id: a for a in alerts.firing}
        drop = firing["reward_drop:technical_writer"]
        assert drop.subject == "technical_writer" and drop.value > 0.9
        assert "review_backlog" not in firing and alerts.resolved[0].id == "review_backlog"


async def test_stuck_tasks_alert(monitored, provider):
    async with running_app(monitored, provider) as client:
        task = await run(client, agent_id="full_stack_developer")
        assert "stuck_tasks" not in {a.id for a in (await evaluate(client)).firing}
        db = client.app.state.platform.db
        async with db.session() as session:  # as if its process died mid-run
            await session.execute(
                tenant_update(TaskRow)
                .where(TaskRow.id == task["task_id"])
                .values(status="running", lease_until=utcnow() - timedelta(seconds=5))
            )
        firing = {a.id: a for a in (await evaluate(client)).firing}
        assert firing["stuck_tasks"].value == 1


async def test_dashboard_files_and_openapi(client):
    page = await client.get("/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/dashboard/assets/dashboard.js" in page.text
    script = await client.get("/dashboard/assets/dashboard.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert "/ws/events" in script.text
    style = await client.get("/dashboard/assets/dashboard.css")
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    missing = await client.get("/dashboard/assets/..%2Fservice.py")
    assert missing.status_code == 404 and missing.json()["error"]["code"] in {
        "asset_not_found",
        "route_not_found",
    }
    unknown = await client.get("/dashboard/assets/nope.js")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "asset_not_found"
    config = (await client.get("/dashboard/config")).json()
    assert config == {
        "auth_enabled": False,
        "api_base": "",
        "agents_base": "",
        "auth_base": "",
        "version": config["version"],
    }
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path in ("/monitoring/summary", "/monitoring/alerts", "/monitoring/alerts/evaluate", "/dashboard"):
        assert path in paths
    assert paths["/monitoring/summary"]["get"]["responses"]["200"]["content"]["application/json"]["schema"][
        "$ref"
    ].endswith("/Summary")
    bad = await client.get("/monitoring/alerts?state=nope")
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_error"


async def test_roles_with_authentication_on(monitored, provider):
    secured = monitored.model_copy(update={"auth_enabled": True, "auth_secret": SecretStr(SECRET)})
    async with running_app(secured, provider) as client:
        assert (await client.get("/dashboard")).status_code == 200  # the page logs in itself
        assert (await client.get("/dashboard/config")).json()["auth_enabled"] is True
        anonymous = await client.get("/monitoring/summary")
        assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthenticated"
        await client.app.state.auth.create_user("watcher", "correct horse battery", "viewer")
        token = await client.post(
            "/auth/token", data={"username": "watcher", "password": "correct horse battery"}
        )
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        assert (await client.get("/monitoring/summary", headers=headers)).status_code == 200
        assert (await client.get("/monitoring/alerts", headers=headers)).status_code == 200
        refused = await client.post("/monitoring/alerts/evaluate", headers=headers)
        assert refused.status_code == 403 and refused.json()["error"]["details"]["required"] == "operator"


@asynccontextmanager
async def metered_app(settings, provider):
    """The platform with the scripted model behind a model service that writes its usage rows, as a real
    deployment's does (the tests' usual scripted service keeps no database)."""
    db = Database(settings.resolved_database_url())
    models = ModelService(default_model=settings.default_model, settings=settings, db=db)
    models.register_provider(provider)
    models.register_alias("local", provider=provider.name, provider_model="scripted-1")
    app = create_app(settings, model_service=models)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://alp") as client,
        ):
            client.app = app
            yield client
    finally:
        await db.close()


async def test_model_usage_and_model_errors_alert(monitored, provider):
    metered = monitored.model_copy(
        update={
            "usage_flush_s": 0.05,
            "alert_failure_rate": 0,
            "model_retries": 0,
            "model_cooldown_failures": 1000,
        }
    )
    async with metered_app(metered, provider) as client:
        for _ in range(2):
            assert (await run(client, agent_id="full_stack_developer"))["status"] == "succeeded"
        provider.failures = 1000
        for _ in range(3):
            assert (await run(client, agent_id="full_stack_developer"))["status"] == "failed"

        async def usage() -> Summary:
            for _ in range(200):  # rows are written in batches off the request path
                summary = Summary.model_validate((await client.get("/monitoring/summary")).json())
                if summary.models and summary.models[0].requests >= 5:
                    return summary
                await asyncio.sleep(0.05)
            raise AssertionError(f"usage rows were not written: {summary.models}")

        summary = await usage()
        [local] = summary.models
        assert (local.model, local.requests, local.errors) == ("local", 5, 3)
        ok_calls = provider.calls[:2]
        assert local.completion_tokens == 7 * 2  # the scripted answer's 7 tokens, twice
        assert local.prompt_tokens == sum(
            sum(len(m.content.split()) for m in call.messages) for call in ok_calls
        )
        firing = {a.id: a for a in (await evaluate(client)).firing}
        assert firing["model_errors:local"].value == pytest.approx(3 / 4)  # over the window: the last 4 calls
        assert firing["model_errors:local"].severity == "critical"
        assert "failure_rate" not in firing  # turned off by its threshold of 0


async def test_latency_and_queue_backlog_alerts(monitored, provider):
    quick = monitored.model_copy(update={"alert_latency_p95_s": 0.001, "alert_queue_backlog": 1})
    async with running_app(quick, provider) as client:
        first = await run(client, agent_id="data_scientist")
        await run(client, agent_id="data_scientist")
        alerts = await evaluate(client)
        latency = {a.id: a for a in alerts.firing}["latency_p95"]
        assert latency.value > 0.001 and latency.threshold == 0.001 and latency.severity == "warning"
        assert "queue_backlog" not in {a.id for a in alerts.firing}
        async with client.app.state.platform.db.session() as session:  # as if no worker had taken it yet
            await session.execute(
                tenant_update(TaskRow).where(TaskRow.id == first["task_id"]).values(status="assigned")
            )
        assert {a.id: a for a in (await evaluate(client)).firing}["queue_backlog"].value == 1
