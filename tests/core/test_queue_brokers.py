"""The work queue over real brokers: NATS JetStream (ALP_TEST_NATS_URL, default 127.0.0.1:4222) and
Redis Streams (ALP_TEST_REDIS_URL, default 127.0.0.1:6379/0).

Two platform instances share one database and one broker, as two replicas do: work submitted to one is
run exactly once across both, a job delivered twice does no harm, and every delivery is acknowledged.
Each test uses its own stream prefix (and removes its streams afterwards), so runs do not collide."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import nats
import pytest
import redis.asyncio as redis
from support import running_app, wait_for_status
from taskiq import BrokerMessage, InMemoryBroker

from agent_lightning.core import queue as job_queue
from agent_lightning.core.config import Settings
from agent_lightning.core.queue import JetStreamJobBroker, RedisStreamJobBroker, make_broker

BROKERS = {
    "nats": os.environ.get("ALP_TEST_NATS_URL", "nats://127.0.0.1:4222"),
    "redis": os.environ.get("ALP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
}
JOBS = ("orchestrator.run_task", "execution.run", "probe")
TASKS = [
    "Deploy the API with docker",
    "Build a React page with a form for the website",
    "Write a SQL query for monthly revenue",
    "Fix the failing unit test in the parser",
]


async def _remove_streams(url: str, prefix: str) -> None:
    if url.startswith("nats"):
        client = await nats.connect(url)
        try:
            js = client.jetstream()
            for job in JOBS:
                with contextlib.suppress(nats.js.errors.NotFoundError):
                    await js.delete_stream(f"{prefix}.{job}".replace(".", "_"))
        finally:
            await client.close()
    else:
        async with redis.from_url(url) as conn:
            await conn.delete(*(f"{prefix}.{job}" for job in JOBS))


async def _backlog(url: str, prefix: str, job: str) -> int:
    """Entries of `job` still on the broker: unacknowledged or not yet delivered."""
    if url.startswith("nats"):
        client = await nats.connect(url)
        try:
            info = await client.jetstream().stream_info(f"{prefix}.{job}".replace(".", "_"))
            return info.state.messages
        finally:
            await client.close()
    async with redis.from_url(url) as conn:
        pending = await conn.xpending(f"{prefix}.{job}", "workers")
        return await conn.xlen(f"{prefix}.{job}") + pending["pending"]


@pytest.fixture(params=sorted(BROKERS))
async def queued(request, settings: Settings) -> AsyncIterator[tuple[str, Settings]]:
    """Settings whose queue is a real broker under a prefix of this test's own."""
    url, prefix = BROKERS[request.param], f"alp.test.jobs.{uuid.uuid4().hex[:12]}"
    # Leases long enough that no heartbeat held up on a busy machine hands a job to the other replica
    # (takeover: tests/core/test_leases.py, tests/platform/test_chaos.py): each job here must run exactly
    # once.
    yield (
        url,
        settings.model_copy(
            update={"queue_url": url, "queue_prefix": prefix, "heartbeat_s": 1.0, "lease_s": 60.0}
        ),
    )
    await _remove_streams(url, prefix)


def _count_claims(platform, counts: Counter, name: str) -> None:
    """Count the tasks this replica's worker claimed (a claim that finds the task taken returns None)."""
    claim = platform.orchestrator.lifecycle.claim

    async def counted(task_id: str):
        row = await claim(task_id)
        counts[name, row is not None] += 1
        return row

    platform.orchestrator.lifecycle.claim = counted


async def _settle(condition, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def test_tasks_submitted_to_one_replica_run_exactly_once_across_both(queued, provider):
    url, settings = queued
    provider.delay_s = 0.3  # long enough that one replica cannot hold every task at once
    counts: Counter = Counter()
    async with running_app(settings, provider) as first, running_app(settings, provider) as second:
        _count_claims(first.app.state.platform, counts, "first")
        _count_claims(second.app.state.platform, counts, "second")
        bodies = [{"description": f"{TASKS[i % len(TASKS)]} #{i}", "force_execute": True} for i in range(24)]
        submitted = await asyncio.gather(*(first.post("/assign-task", json=body) for body in bodies))
        task_ids = [response.json()["task_id"] for response in submitted]
        for task_id in task_ids:
            task = await wait_for_status(first, task_id, timeout=30)
            assert task["status"] == "succeeded", task
            assert task["attempts_count"] == 1 and len(task["attempts"]) == 1
        assert counts["first", True] + counts["second", True] == len(task_ids)
        assert counts["first", True] > 0 and counts["second", True] > 0, "both replicas consume"

        async def drained() -> bool:
            return await _backlog(url, settings.queue_prefix, "orchestrator.run_task") == 0

        await _settle(drained)  # every delivery acknowledged


async def test_a_job_delivered_twice_runs_once(queued, provider):
    url, settings = queued
    provider.delay_s = 0.2
    counts: Counter = Counter()
    async with running_app(settings, provider) as first, running_app(settings, provider) as second:
        platforms = first.app.state.platform, second.app.state.platform
        _count_claims(platforms[0], counts, "first")
        _count_claims(platforms[1], counts, "second")
        body = {"description": TASKS[0], "force_execute": True}
        task_id = (await first.post("/assign-task", json=body)).json()["task_id"]
        # The same job again, twice, while the first delivery may still be running, and once after.
        await asyncio.gather(*(platform.orchestrator.enqueue(task_id) for platform in platforms))
        task = await wait_for_status(second, task_id, timeout=20)
        await platforms[1].orchestrator.enqueue(task_id)

        async def all_delivered() -> bool:
            backlog = await _backlog(url, settings.queue_prefix, "orchestrator.run_task")
            return sum(counts.values()) == 4 and backlog == 0

        await _settle(all_delivered)
        assert counts["first", True] + counts["second", True] == 1
        task = (await first.get(f"/tasks/{task_id}")).json()
        assert task["status"] == "succeeded" and task["attempts_count"] == 1 and len(task["attempts"]) == 1


async def test_async_executions_run_once_across_replicas(queued, provider):
    url, settings = queued
    provider.delay_s = 0.3
    runs: Counter = Counter()
    async with running_app(settings, provider) as first, running_app(settings, provider) as second:
        for name, client in (("first", first), ("second", second)):
            execution = client.app.state.platform.execution
            run = execution._run

            async def counted(*args, run=run, name=name, **kwargs):
                runs[name] += 1
                return await run(*args, **kwargs)

            execution._run = counted
        body = {"agent_id": "general_assistant", "async": True}
        accepted = await asyncio.gather(
            *(
                first.post("/api/v2/agents/execute", json={**body, "task": f"Say hello #{i}"})
                for i in range(20)
            )
        )
        assert all(response.status_code == 202 for response in accepted)
        for response in accepted:
            status_url = response.json()["status_url"]

            async def finished(status_url=status_url) -> bool:
                return (await second.get(status_url)).json()["status"] in ("succeeded", "failed")

            await _settle(finished, timeout=30)
            assert (await second.get(status_url)).json()["status"] == "succeeded"
        assert runs["first"] + runs["second"] == 20 and runs["first"] > 0 and runs["second"] > 0

        async def drained() -> bool:
            return await _backlog(url, settings.queue_prefix, "execution.run") == 0

        await _settle(drained)


async def test_readiness_names_the_broker(queued, provider):
    url, settings = queued
    async with running_app(settings, provider) as client:
        response = await client.get("/health/ready")
        assert response.status_code == 200, response.text
        queue = response.json()["checks"]["queue"]
        kind = "NATS JetStream" if url.startswith("nats") else "Redis Streams"
        assert queue["ok"] is True and kind in queue["detail"] and "connected" in queue["detail"]
        assert settings.queue_prefix in queue["detail"]
    if url.startswith("redis"):  # a replica that stops with nothing pending leaves the consumer group
        async with redis.from_url(url) as conn:
            for job in JOBS[:2]:
                assert await conn.xinfo_consumers(f"{settings.queue_prefix}.{job}", "workers") == []


async def test_a_running_job_is_kept_and_an_abandoned_one_goes_to_another_consumer(queued, monkeypatch):
    """Two consumers of one job: the one holding a delivery keeps it past the ack wait while it works;
    once it stops keeping it alive (its process died), the other consumer gets it."""
    url, settings = queued
    monkeypatch.setattr(job_queue, "ACK_WAIT_S", 1.0)
    monkeypatch.setattr(job_queue, "KEEPALIVE_S", 0.3)
    holder, other = make_broker(settings, "probe"), make_broker(settings, "probe")
    await holder.startup()
    await other.startup()
    try:
        await holder.kick(BrokerMessage(task_id="t1", task_name="probe", message=b"job-1", labels={}))
        held = await asyncio.wait_for(anext(holder.listen()), 10)
        assert held.data == b"job-1"
        with pytest.raises(TimeoutError):  # three ack waits: still kept by the holder
            await asyncio.wait_for(anext(other.listen()), 3)
        await holder.deliveries.close()  # the holder dies: no keep-alive, no ack
        taken_over = await asyncio.wait_for(anext(other.listen()), 10)
        assert taken_over.data == b"job-1"
        await taken_over.ack()
        assert await _backlog(url, settings.queue_prefix, "probe") == 0
    finally:
        await holder.shutdown()
        await other.shutdown()


def test_make_broker_follows_the_url(settings: Settings):
    assert isinstance(make_broker(settings), InMemoryBroker)
    assert isinstance(make_broker(settings.model_copy(update={"queue_url": "  "})), InMemoryBroker)
    nats_broker = make_broker(settings.model_copy(update={"queue_url": BROKERS["nats"]}), "execution.run")
    assert isinstance(nats_broker, JetStreamJobBroker)
    assert nats_broker.subject == "alp.jobs.execution.run"
    assert nats_broker.stream_name == "alp_jobs_execution_run"
    redis_broker = make_broker(settings.model_copy(update={"queue_url": BROKERS["redis"]}), "execution.run")
    assert isinstance(redis_broker, RedisStreamJobBroker)
    assert redis_broker.queue_name == "alp.jobs.execution.run"
    with pytest.raises(ValueError, match="unsupported scheme 'amqp'"):
        make_broker(settings.model_copy(update={"queue_url": "amqp://guest:secret@127.0.0.1:5672"}))
    with pytest.raises(ValueError) as error:
        make_broker(settings.model_copy(update={"queue_url": "amqp://guest:secret@127.0.0.1:5672"}))
    assert "secret" not in str(error.value)
