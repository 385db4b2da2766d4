"""The policy API: current policy and statistics, switching, the decision log, offline evaluation."""

from __future__ import annotations

import asyncio

from support import running_app, wait_for_status

from agent_lightning.core.tenancy import set_tenant
from agent_lightning.orchestrator.schemas import PolicySwitchRequest

WEB_TASK = "Build a React page with a form for the website"
DEPLOY_TASK = "Deploy the API with docker"


async def _finished_task(client, description: str) -> str:
    """Submit a task (run even when an exploring policy is unsure) and wait for it to finish."""
    body = {"description": description, "force_execute": True}
    task_id = (await client.post("/assign-task", json=body)).json()["task_id"]
    await wait_for_status(client, task_id)
    return task_id


async def test_the_default_policy_is_topics_and_reports_per_agent_statistics(client):
    info = (await client.get("/policy")).json()
    assert info["name"] == "topics" and info["default"] is True and info["version"] == 0
    assert set(info["available"]) == {"seed-q", "capability", "thompson", "linucb", "shared", "topics"}
    assert info["agents"] == []

    await _finished_task(client, WEB_TASK)
    info = (await client.get("/policy")).json()
    assert info["version"] == 1
    [stats] = info["agents"]
    assert stats["agent_id"] == "full_stack_developer" and stats["decisions"] == 1 and stats["rewards"] == 1


async def test_switching_policy_at_run_time_and_back_resumes_the_saved_state(client):
    await _finished_task(client, WEB_TASK)
    switched = await client.put("/policy", json={"name": "thompson", "params": {"prior_weight": 3}})
    assert switched.status_code == 200, switched.text
    assert switched.json()["name"] == "thompson" and switched.json()["default"] is False
    assert switched.json()["params"] == {"prior_weight": 3}

    task_id = await _finished_task(client, DEPLOY_TASK)
    task = (await client.get(f"/tasks/{task_id}")).json()
    assert task["decisions"][0]["policy"] == "thompson"
    assert (await client.get("/policy")).json()["version"] == 1, "thompson learned from its own decision"

    back = (await client.put("/policy", json={"name": "topics"})).json()
    assert back["name"] == "topics" and back["version"] == 1, "the saved state of topics is resumed"


async def test_switching_refuses_unknown_policies_and_parameters(client):
    unknown = await client.put("/policy", json={"name": "oracle"})
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "invalid_policy"
    bad = await client.put("/policy", json={"name": "thompson", "params": {"learning_rate": 1}})
    assert bad.status_code == 422
    assert (await client.get("/policy")).json()["name"] == "topics", "nothing was stored"


async def test_switching_can_be_turned_off(settings, provider):
    async with running_app(settings.model_copy(update={"policy_switch_enabled": False}), provider) as client:
        response = await client.put("/policy", json={"name": "seed-q"})
        assert response.status_code == 403 and response.json()["error"]["code"] == "policy_switch_disabled"
        assert (await client.get("/policy")).json()["switch_enabled"] is False


async def test_the_decision_log_pages_and_joins_late_feedback(client):
    ids = [
        await _finished_task(client, text) for text in (WEB_TASK, DEPLOY_TASK, "Write a README for the CLI")
    ]
    await client.post(f"/tasks/{ids[0]}/feedback", json={"score": 8})

    first = (await client.get("/policy/decisions", params={"limit": 2})).json()
    assert [d["task_id"] for d in first["items"]] == [ids[2], ids[1]] and first["next_cursor"]
    second = (
        await client.get("/policy/decisions", params={"limit": 2, "cursor": first["next_cursor"]})
    ).json()
    assert [d["task_id"] for d in second["items"]] == [ids[0]] and second["next_cursor"] is None
    [oldest] = second["items"]
    assert [r["source"] for r in oldest["rewards"]] == ["outcome", "feedback"]
    assert oldest["rewards"][1]["reward"] == 0.8
    assert oldest["policy"] == "topics" and 0 < oldest["probability"] <= 1 and len(oldest["candidates"]) >= 7

    none = (await client.get("/policy/decisions", params={"policy": "seed-q"})).json()
    assert none["items"] == []
    assert (await client.get("/policy/decisions", params={"cursor": "abc"})).status_code == 400


async def test_offline_evaluation_of_another_policy_on_the_log(client):
    for text in (WEB_TASK, DEPLOY_TASK, WEB_TASK, DEPLOY_TASK):
        await _finished_task(client, text)
    report = (await client.post("/policy/evaluate", json={"policy": "capability"})).json()
    assert report["decisions"] == 4 and report["state"] == "fresh"
    assert report["agreement"] == 1.0, "the capability policy makes the same choices on these tasks"
    logged = report["logged_reward"]["value"]
    assert report["ips"]["low"] <= report["ips"]["value"] <= report["ips"]["high"]
    assert abs(report["doubly_robust"]["value"] - logged) < 0.2

    mine = (await client.post("/policy/evaluate", json={"policy": "topics"})).json()
    assert mine["state"] == "learned"
    empty = (await client.post("/policy/evaluate", json={"policy": "seed-q", "logged_by": "thompson"})).json()
    assert empty["decisions"] == 0 and empty["ips"] is None
    assert (await client.post("/policy/evaluate", json={"policy": "nope"})).status_code == 422


async def test_learned_state_survives_a_restart(settings, provider):
    async with running_app(settings, provider) as client:
        task_id = await _finished_task(client, DEPLOY_TASK)
        await client.post(f"/tasks/{task_id}/feedback", json={"score": 2})
        before = (await client.post("/route", json={"description": DEPLOY_TASK})).json()
    assert before["policy"] == {"name": "topics", "version": 2}

    async with running_app(settings, provider) as client:
        assert (await client.post("/route", json={"description": DEPLOY_TASK})).json() == before


async def test_each_tenant_has_its_own_policy(client):
    orchestrator = client.app.state.platform.orchestrator

    async def as_tenant() -> tuple[str, str]:
        set_tenant("acme")
        info = await orchestrator.admin.switch_policy(PolicySwitchRequest(name="seed-q"))
        return info.tenant_id, (await orchestrator.policies.active()).name

    assert await asyncio.create_task(as_tenant()) == ("acme", "seed-q")
    info = (await client.get("/policy")).json()
    assert info["tenant_id"] == "default" and info["name"] == "topics"


async def test_two_replicas_sharing_a_database_never_lose_each_others_updates(settings, provider):
    async with running_app(settings, provider) as first, running_app(settings, provider) as second:
        task_id = await _finished_task(first, DEPLOY_TASK)  # the outcome reward: learned by the first
        # The second replica still holds version 0 in memory; the feedback it takes must land on version 1.
        assert (await second.post(f"/tasks/{task_id}/feedback", json={"score": 2})).status_code == 200
        other = await _finished_task(second, WEB_TASK)
        await first.post(f"/tasks/{other}/feedback", json={"score": 9})
        assert (await first.get("/policy")).json()["version"] == 4
        assert (await second.get("/policy")).json()["version"] == 4, "a replica folds in the other's rewards"
        first_route = (await first.post("/route", json={"description": DEPLOY_TASK})).json()
        assert (await second.post("/route", json={"description": DEPLOY_TASK})).json() == first_route, (
            "the same state"
        )

    async with running_app(settings, provider) as restarted:
        assert (await restarted.post("/route", json={"description": DEPLOY_TASK})).json() == first_route
