"""Chaos over real processes: a worker killed mid-run (SIGKILL) loses nothing and duplicates nothing.

Two replicas, each running every service, share the database and a Redis Streams queue (a prefix of this
test's own). Tasks are submitted to one; the other is killed while it holds tasks in flight. Its tasks are
taken over once their lease runs out (core/leases.py): every task ends, none twice, each with one succeeded
attempt and one outcome reward. The takeover time is printed (`pytest -s`), not asserted: benchmarks/recovery
measures it."""

from __future__ import annotations

import asyncio
import statistics
import uuid

import httpx
import pytest
from sqlalchemy import func, select
from support import REDIS_URL, free_port, remove_job_streams, task_count, until

from agent_lightning.app import SERVICES
from agent_lightning.core.db import Database, utcnow
from agent_lightning.orchestrator.tables import AttemptRow, RewardRow, TaskRow

HEARTBEAT_S, LEASE_S = 0.5, 2.0
TASKS = 48
FINISHED = ("succeeded", "failed", "cancelled")

pytestmark = pytest.mark.slow


async def test_killing_a_worker_mid_run_loses_nothing_and_records_each_task_once(cluster, database_url):
    prefix = f"alp.test.chaos.{uuid.uuid4().hex[:12]}"
    env = {
        "ALP_QUEUE_URL": REDIS_URL,
        "ALP_QUEUE_PREFIX": prefix,
        "ALP_HEARTBEAT_S": str(HEARTBEAT_S),
        "ALP_LEASE_S": str(LEASE_S),
        "SCRIPTED_DELAY_S": "1.0",
        "ALP_RATE_LIMIT": "0",
    }
    services = ",".join(SERVICES)
    survivor = cluster.start("survivor", services, free_port(), **env)
    cluster.start("victim", services, free_port(), **env)
    db = Database(database_url)
    try:
        async with httpx.AsyncClient(base_url=survivor, timeout=30) as client:
            bodies = [
                {"description": f"Deploy the API with docker #{i}", "force_execute": True}
                for i in range(TASKS)
            ]
            answers = await asyncio.gather(*(client.post("/assign-task", json=body) for body in bodies))
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200]
        task_ids = {a.json()["task_id"] for a in answers}

        async def both_busy() -> bool:  # one process runs at most 8 at a time: more means both hold some
            return await task_count(db, TaskRow.status == "running") > 8

        await until(both_busy, 30, "the two replicas never ran tasks at the same time")
        killed_at = utcnow()
        cluster.kill("victim")

        async def all_finished() -> bool:
            return await task_count(db, TaskRow.status.in_(FINISHED)) == TASKS

        await until(all_finished, 90, "tasks of the killed worker were not finished by the survivor")

        async with db.session() as session:
            tasks = {t.id: t for t in await session.scalars(select(TaskRow))}
            attempts = list(
                await session.scalars(select(AttemptRow).order_by(AttemptRow.task_id, AttemptRow.number))
            )
            rewards = dict(
                (
                    await session.execute(
                        select(RewardRow.task_id, func.count())
                        .where(RewardRow.source == "outcome")
                        .group_by(RewardRow.task_id)
                    )
                ).all()
            )
        assert set(tasks) == task_ids, "a task was lost"
        assert all(t.status == "succeeded" for t in tasks.values()), {t.id: t.error for t in tasks.values()}
        for task_id in task_ids:
            mine = [a for a in attempts if a.task_id == task_id]
            assert [a.status for a in mine].count("succeeded") == 1, [(a.status, a.error) for a in mine]
            assert all(a.status in ("succeeded", "failed") for a in mine)
            assert rewards.get(task_id) == 1, f"{task_id}: {rewards.get(task_id)} outcome rewards"
        abandoned = [a for a in attempts if a.status == "failed" and (a.error or "").startswith("abandoned")]
        assert abandoned, "the killed worker held no task: nothing was recovered"
        takeover = [(a.finished_at - killed_at).total_seconds() for a in abandoned]
        rerun = [
            (
                next(b.started_at for b in attempts if b.task_id == a.task_id and b.number == a.number + 1)
                - killed_at
            ).total_seconds()
            for a in abandoned
        ]
        print(
            f"\nchaos: {len(abandoned)} tasks of the killed worker taken over after "
            f"{statistics.median(takeover):.2f} s median, {max(takeover):.2f} s at most, running again after "
            f"{max(rerun):.2f} s at most (heartbeat {HEARTBEAT_S} s, lease {LEASE_S} s)"
        )
    finally:
        await db.close()
        cluster.stop_all()
        await remove_job_streams(prefix)
