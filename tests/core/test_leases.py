"""Leases (core/leases.py): a heartbeat keeps a long task's lease, a task whose lease ran out is taken over,
and the outcome of a worker that lost its lease is never recorded (fencing token)."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select, update
from support import running_app, wait_for_status

from agent_lightning.core.db import utcnow
from agent_lightning.orchestrator.tables import RewardRow, TaskRow

TASK = {"description": "Deploy the API with docker", "force_execute": True}


async def _outcome_rewards(platform, task_id: str) -> int:
    async with platform.db.session() as session:
        return await session.scalar(
            select(func.count()).where(RewardRow.task_id == task_id, RewardRow.source == "outcome")
        )


async def _wait_attempts(client, task_id: str, n: int, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while len((await client.get(f"/tasks/{task_id}")).json()["attempts"]) < n:
        assert asyncio.get_running_loop().time() < deadline, f"no attempt {n}"
        await asyncio.sleep(0.02)


async def test_a_heartbeat_keeps_the_lease_of_a_task_longer_than_the_lease(settings, provider):
    settings = settings.model_copy(update={"heartbeat_s": 0.1, "lease_s": 0.4})
    provider.delay_s = 1.5  # almost four leases: renewed all along, never taken over by the sweep
    async with running_app(settings, provider) as client:
        task_id = (await client.post("/assign-task", json=TASK)).json()["task_id"]
        task = await wait_for_status(client, task_id)
        assert task["status"] == "succeeded" and len(task["attempts"]) == 1
        assert len(provider.calls) == 1


async def test_a_late_result_from_a_worker_whose_lease_was_taken_over_is_rejected(settings, provider):
    # Two processes on one database, sweeping every 2 s. Renewals every 4 s: the first worker answers (at 3 s)
    # before it could notice that it lost its lease to the other process's sweep.
    settings = settings.model_copy(update={"heartbeat_s": 4.0, "lease_s": 10.0})
    provider.delay_s = 3.0
    async with running_app(settings, provider) as first, running_app(settings, provider):
        platform = first.app.state.platform
        task_id = (await first.post("/assign-task", json=TASK)).json()["task_id"]
        await wait_for_status(first, task_id, {"running"})
        async with platform.db.session() as session:  # its worker stalls: the lease runs out
            await session.execute(update(TaskRow).where(TaskRow.id == task_id).values(lease_until=utcnow()))
        await _wait_attempts(first, task_id, 2)  # the second process took it over: a second attempt runs
        task = await wait_for_status(first, task_id)
        while len(provider.calls) < 2 or any(not a["finished_at"] for a in task["attempts"]):
            await asyncio.sleep(0.05)
            task = (await first.get(f"/tasks/{task_id}")).json()
        await asyncio.sleep(0.3)  # both answers are in
        task = (await first.get(f"/tasks/{task_id}")).json()
        statuses = [a["status"] for a in task["attempts"]]
        assert task["status"] == "succeeded" and statuses == ["failed", "succeeded"], task["attempts"]
        assert task["attempts"][0]["error"].startswith("abandoned"), "the late answer did not overwrite it"
        assert await _outcome_rewards(platform, task_id) == 1


async def test_a_worker_that_lost_its_lease_stops_and_the_task_is_run_once_more(settings, provider):
    settings = settings.model_copy(update={"heartbeat_s": 0.1, "lease_s": 0.5})
    provider.delay_s = 2.0
    async with running_app(settings, provider) as client:
        platform = client.app.state.platform
        task_id = (await client.post("/assign-task", json=TASK)).json()["task_id"]
        await wait_for_status(client, task_id, {"running"})
        async with platform.db.session() as session:  # another worker's claim: a newer generation
            await session.execute(
                update(TaskRow).where(TaskRow.id == task_id).values(lease_token=TaskRow.lease_token + 1)
            )
        task = await wait_for_status(client, task_id)
        first, second = task["attempts"]
        assert first["status"] == "failed" and first["error"].startswith("superseded"), first
        assert second["status"] == "succeeded" and task["status"] == "succeeded"
        assert first["model"] is None, "stopped at its next renewal rather than answering"
        assert await _outcome_rewards(platform, task_id) == 1
