"""State survives a restart: tasks, the learned policy state, and work left running by a dead process."""

from __future__ import annotations

from datetime import timedelta

import pytest
from support import running_app, wait_for_status

from agent_lightning.core.db import utcnow
from agent_lightning.execution.tables import ExecutionRow
from agent_lightning.orchestrator.tables import TaskRow


@pytest.mark.parametrize("policy", ["seed-q", "linucb", "thompson"])
async def test_tasks_and_learned_state_survive_a_restart(settings, provider, policy):
    settings.policy = policy
    probe = {"description": "Deploy the API with docker and kubernetes"}
    async with running_app(settings, provider) as client:
        body = {
            "description": "Deploy the API with docker",
            "force_execute": True,
        }  # exploration may be unsure
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
        assert (await client.post("/route", json=probe)).json() == preview_before, (
            "same learned state, same scores"
        )
        agents = (await client.get("/api/v2/agents")).json()["items"]
        assert len(agents) == 9, "the fleet is not seeded twice"


async def test_a_task_left_running_by_a_dead_process_is_requeued_at_start_up(settings, provider):
    provider.delay_s = 30
    async with running_app(settings, provider) as client:
        task_id = (
            await client.post("/assign-task", json={"description": "Deploy the API with docker"})
        ).json()["task_id"]
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


async def test_with_replicas_only_executions_whose_lease_ran_out_are_orphans(settings, provider):
    async with running_app(settings, provider) as client:
        platform = client.app.state.platform
        now = utcnow()
        alive, expired = now + timedelta(seconds=settings.lease_s), now - timedelta(seconds=1)
        # Held by another replica, dead (queued or with a caller waiting), and one still queued.
        rows = [
            ExecutionRow(
                id="alive",
                task_id="t1",
                status="running",
                request={"task": "x"},
                run_async=True,
                lease_until=alive,
                lease_token=1,
            ),
            ExecutionRow(
                id="dead",
                task_id="t2",
                status="running",
                request={"task": "x"},
                run_async=True,
                lease_until=expired,
                lease_token=1,
            ),
            ExecutionRow(
                id="dead-sync",
                task_id="t3",
                status="running",
                request={"task": "x"},
                lease_until=expired,
                lease_token=1,
            ),
            ExecutionRow(id="waiting", task_id="t4", status="queued", request={"task": "x"}, run_async=True),
        ]
        async with platform.db.session() as session:
            session.add_all(rows)
        execution = platform.execution
        assert await execution.recoverable(sole_worker=False, include_waiting=False) == ["dead"]
        async with platform.db.session() as session:
            orphan = await session.get(ExecutionRow, "dead-sync")
            assert orphan.status == "failed" and orphan.error.startswith("abandoned"), (
                "its caller got an error"
            )
        assert sorted(await execution.recoverable(sole_worker=False)) == ["dead", "waiting"], "queued, both"
        # A sole worker (one process, its own queue) knows at start-up that nothing else is running.
        assert sorted(await execution.recoverable(sole_worker=True)) == ["alive", "dead", "waiting"]


async def test_a_task_the_queue_could_not_take_is_assigned_and_queued_again_after_a_lease(settings, provider):
    async with running_app(settings, provider) as client:
        orchestrator = client.app.state.platform.orchestrator
        dispatch = orchestrator.enqueue

        async def broker_down(task_id: str) -> None:
            raise ConnectionError("broker unreachable")

        orchestrator.enqueue = broker_down
        assigned = await client.post(
            "/assign-task", json={"description": "Deploy the API with docker", "force_execute": True}
        )
        assert assigned.status_code == 200 and assigned.json()["status"] == "assigned"
        task_id = assigned.json()["task_id"]
        assert await orchestrator.recoverable(sole_worker=False, include_waiting=False) == [], (
            "not before a lease"
        )
        async with client.app.state.platform.db.session() as session:
            row = await session.get(TaskRow, task_id)
            row.updated_at = utcnow() - timedelta(seconds=settings.requeue_waiting_s + 1)
        assert await orchestrator.recoverable(sole_worker=False, include_waiting=False) == [task_id]
        assert await orchestrator.recoverable(sole_worker=False, include_waiting=False) == [], (
            "once per lease"
        )
        orchestrator.enqueue = dispatch
        await dispatch(task_id)  # what the sweep does with it
        assert (await wait_for_status(client, task_id))["status"] == "succeeded"


async def test_an_execution_the_queue_could_not_take_fails_at_once_with_503(settings, provider):
    async with running_app(settings, provider) as client:
        execution = client.app.state.platform.execution

        async def broker_down(execution_id: str) -> None:
            raise ConnectionError("broker unreachable")

        execution.enqueue = broker_down
        body = {
            "task": "Explain CAP",
            "agent_id": "general_assistant",
            "async": True,
            "task_id": "queue-down",
        }
        refused = await client.post("/api/v2/agents/execute", json=body)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "queue_unavailable"
        status = (await client.get("/api/v1/tasks/queue-down")).json()
        assert status["status"] == "failed" and status["error"].startswith("queue_unavailable")
