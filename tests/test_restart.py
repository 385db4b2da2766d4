"""State survives a restart: tasks, the learned policy state, and work left running by a dead process."""

from __future__ import annotations

import pytest

from support import running_app, wait_for_status


@pytest.mark.parametrize("policy", ["seed-q", "linucb", "thompson"])
async def test_tasks_and_learned_state_survive_a_restart(settings, provider, policy):
    settings.policy = policy
    probe = {"description": "Deploy the API with docker and kubernetes"}
    async with running_app(settings, provider) as client:
        body = {"description": "Deploy the API with docker", "force_execute": True}  # exploration may be unsure
        task_id = (await client.post("/assign-task", json=body)).json()["task_id"]
        await wait_for_status(client, task_id)
        await client.post(f"/tasks/{task_id}/feedback", json={"score": 10})
        q_before = (await client.get("/q-table")).json()
        policy_before = (await client.get("/policy")).json()
        preview_before = (await client.post("/route", json=probe)).json()
    assert policy_before["name"] == policy and policy_before["version"] == 2
    if policy == "seed-q":
        assert q_before["q_table"]["deployment_task"]["devops_engineer"] > 0.7

    async with running_app(settings, provider) as client:
        task = (await client.get(f"/tasks/{task_id}")).json()
        assert task["status"] == "succeeded" and len(task["rewards"]) == 2
        assert (await client.get("/q-table")).json() == q_before
        assert (await client.get("/policy")).json() == policy_before
        assert (await client.post("/route", json=probe)).json() == preview_before, "same learned state, same scores"
        agents = (await client.get("/api/v2/agents")).json()["items"]
        assert len(agents) == 8, "the fleet is not seeded twice"


async def test_a_task_left_running_by_a_dead_process_is_requeued_at_start_up(settings, provider):
    provider.delay_s = 30
    async with running_app(settings, provider) as client:
        task_id = (await client.post("/assign-task", json={"description": "Deploy the API with docker"})).json()["task_id"]
        await wait_for_status(client, task_id, {"running"})
        # Stopping the server now leaves the task `running`, as a process that died would.

    provider.delay_s = 0
    async with running_app(settings, provider) as client:
        task = await wait_for_status(client, task_id)
        assert task["status"] == "succeeded"
        assert len(task["attempts"]) == 2


async def test_an_orphan_that_used_its_last_attempt_fails_instead(settings, provider):
    provider.delay_s = 30
    async with running_app(settings, provider) as client:
        body = {"description": "Deploy the API with docker", "max_attempts": 1}
        task_id = (await client.post("/assign-task", json=body)).json()["task_id"]
        await wait_for_status(client, task_id, {"running"})

    async with running_app(settings, provider) as client:
        task = (await client.get(f"/tasks/{task_id}")).json()
    assert task["status"] == "failed" and task["error"].startswith("abandoned")
    assert [a["status"] for a in task["attempts"]] == ["failed"]
