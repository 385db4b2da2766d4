"""Graceful shutdown over real processes: on SIGTERM a replica takes no new work, lets the work in flight
finish within ALP_SHUTDOWN_GRACE_S and exits; what does not finish in time is given up (its lease released)
and taken over by the other replica. Two replicas, each running every service, share the database and a Redis
Streams queue (a prefix of this test's own)."""

from __future__ import annotations

import asyncio
import signal
import uuid

import httpx
import pytest
from sqlalchemy import select
from support import REDIS_URL, free_port, remove_job_streams, task_count, until

from agent_lightning.app import SERVICES
from agent_lightning.core.db import Database, utcnow
from agent_lightning.orchestrator.tables import AttemptRow, TaskRow

TASKS = 24
FINISHED = ("succeeded", "failed", "cancelled")

pytestmark = pytest.mark.slow


async def _stop_one_replica_under_load(cluster, database_url: str, *, grace_s: float, delay_s: float):
    """Submit tasks, send SIGTERM to one replica while both run some; the attempts, the SIGTERM time and the
    stopped replica's exit code once every task has ended."""
    prefix = f"alp.test.shutdown.{uuid.uuid4().hex[:12]}"
    env = {
        "ALP_QUEUE_URL": REDIS_URL,
        "ALP_QUEUE_PREFIX": prefix,
        "ALP_HEARTBEAT_S": "1",
        "ALP_LEASE_S": "5",
        "SCRIPTED_DELAY_S": str(delay_s),
        "ALP_RATE_LIMIT": "0",
    }
    services = ",".join(SERVICES)
    survivor = cluster.start("survivor", services, free_port(), **env)
    cluster.start("stopped", services, free_port(), **env, ALP_SHUTDOWN_GRACE_S=str(grace_s))
    stopped = cluster.processes["stopped"]
    db = Database(database_url)
    try:
        async with httpx.AsyncClient(base_url=survivor, timeout=30) as client:
            answers = await asyncio.gather(
                *(
                    client.post(
                        "/assign-task",
                        json={"description": f"Deploy the API with docker #{i}", "force_execute": True},
                    )
                    for i in range(TASKS)
                )
            )
        assert all(a.status_code == 200 for a in answers)

        async def both_busy() -> bool:  # one process runs at most 8 at a time: more means both hold some
            return await task_count(db, TaskRow.status == "running") > 8

        await until(both_busy, 30, "the two replicas never ran tasks at the same time")
        signalled = utcnow()
        stopped.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(stopped.wait, grace_s + 30)

        async def all_finished() -> bool:
            return await task_count(db, TaskRow.status.in_(FINISHED)) == TASKS

        await until(all_finished, 90, "not every task ended")
        async with db.session() as session:
            tasks = list(await session.scalars(select(TaskRow)))
            attempts = list(await session.scalars(select(AttemptRow)))
        assert all(t.status == "succeeded" for t in tasks), [
            (t.id, t.error) for t in tasks if t.status != "succeeded"
        ]
        for task in tasks:
            assert [a.status for a in attempts if a.task_id == task.id].count("succeeded") == 1
        return attempts, signalled, code
    finally:
        await db.close()
        cluster.stop_all()
        await remove_job_streams(prefix)


async def test_sigterm_lets_the_work_in_flight_finish(cluster, database_url):
    attempts, _, code = await _stop_one_replica_under_load(cluster, database_url, grace_s=20, delay_s=2.0)
    assert code in (0, -signal.SIGTERM), code  # uvicorn ends by raising the signal it caught, once drained
    abandoned = [a for a in attempts if (a.error or "").startswith("abandoned")]
    assert abandoned == [], "the stopping replica dropped work it had started"
    assert len(attempts) == TASKS, "each task ran once"


async def test_work_that_outlasts_the_grace_is_taken_over_by_another_replica(cluster, database_url):
    attempts, signalled, code = await _stop_one_replica_under_load(
        cluster, database_url, grace_s=0.5, delay_s=3.0
    )
    assert code in (0, -signal.SIGTERM), code
    given_up = [a for a in attempts if (a.error or "").startswith("abandoned")]
    assert given_up, "the stopping replica had nothing left to give up"
    takeover = max((a.finished_at - signalled).total_seconds() for a in given_up)
    print(
        f"\nshutdown: {len(given_up)} tasks given up after the grace (0.5 s) and taken over within "
        f"{takeover:.2f} s of SIGTERM (lease 5 s)"
    )
