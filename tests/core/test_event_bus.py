"""The shared event buses over real brokers: Redis (ALP_TEST_REDIS_URL, default 127.0.0.1:6379) and
NATS (ALP_TEST_NATS_URL, default 127.0.0.1:4222). Two bus instances stand for two processes; each test
uses its own channel prefix so parallel runs do not see each other's events."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator

import pytest
from support import free_port, running_app, wait_for_status

from agent_lightning.core.brokers import NatsBus, RedisBus, make_bus
from agent_lightning.core.events import Event, InProcessBus

BROKERS = {
    "redis": os.environ.get("ALP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "nats": os.environ.get("ALP_TEST_NATS_URL", "nats://127.0.0.1:4222"),
}


def unique_prefix() -> str:
    return f"alp.test.{uuid.uuid4().hex}"


@pytest.fixture(params=sorted(BROKERS))
def broker_url(request) -> str:
    return BROKERS[request.param]


@pytest.fixture
async def buses(broker_url: str) -> AsyncIterator[tuple]:
    """Two started buses on one broker and one prefix: two processes sharing an event stream."""
    prefix = unique_prefix()
    first, second = make_bus(broker_url, prefix=prefix), make_bus(broker_url, prefix=prefix)
    await first.start()
    await second.start()
    yield first, second
    await first.close()
    await second.close()


def collector() -> tuple[list[Event], object]:
    received: list[Event] = []

    async def handler(event: Event) -> None:
        received.append(event)

    return received, handler


async def settle(condition, timeout: float = 5.0) -> None:
    """Wait until `condition()` holds, then a little longer so that duplicates would show up."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting for events")
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)


async def test_an_event_reaches_the_other_process_and_its_own_exactly_once(buses):
    publisher, other = buses
    own, own_handler = collector()
    remote, remote_handler = collector()
    publisher.subscribe("*", own_handler)
    other.subscribe("task.*", remote_handler)

    sent = Event(
        type="task.created",
        source="orchestrator",
        tenant_id="acme",
        correlation_id="corr-42",
        data={"task_id": "t-1", "score": 0.5, "tags": ["a", "b"], "nested": {"ok": True}},
    )
    await publisher.publish(sent)
    await settle(lambda: own and remote)

    assert len(own) == 1 and len(remote) == 1
    for event in (own[0], remote[0]):
        assert event == sent  # id, type, timestamp, source, tenant, correlation id and data survive
        assert event.correlation_id == "corr-42" and event.data["nested"] == {"ok": True}
    assert [e.id for e in publisher.recent()] == [sent.id]
    assert [e.id for e in other.recent()] == [sent.id]


async def test_patterns_filter_event_types(buses):
    publisher, other = buses
    tasks, task_handler = collector()
    policies, policy_handler = collector()
    everything, all_handler = collector()
    other.subscribe("task.*", task_handler)
    other.subscribe("policy.updated", policy_handler)
    other.subscribe("*", all_handler)

    await publisher.publish(Event(type="policy.updated", source="orchestrator"))
    await publisher.publish(Event(type="task.succeeded", source="worker"))
    await publisher.publish(Event(type="feedback.received", source="orchestrator"))
    await settle(lambda: len(everything) == 3)

    assert [e.type for e in tasks] == ["task.succeeded"]
    assert [e.type for e in policies] == ["policy.updated"]
    assert [e.type for e in everything] == ["policy.updated", "task.succeeded", "feedback.received"]


async def test_a_failing_handler_reaches_neither_the_publisher_nor_other_handlers(buses):
    publisher, other = buses

    async def boom(event: Event) -> None:
        raise RuntimeError("handler bug")

    own, own_handler = collector()
    remote, remote_handler = collector()
    publisher.subscribe("*", boom)
    publisher.subscribe("*", own_handler)
    other.subscribe("task.*", boom)
    other.subscribe("task.*", remote_handler)

    await publisher.publish(Event(type="task.failed", source="worker"))
    await publisher.publish(Event(type="task.started", source="worker"))  # the readers are still alive
    await settle(lambda: len(own) == 2 and len(remote) == 2)
    assert [e.type for e in remote] == ["task.failed", "task.started"]


async def test_wait_for_sees_events_from_another_process(buses):
    publisher, other = buses
    waiting = asyncio.create_task(other.wait_for(lambda e: e.data.get("task_id") == "t-9", timeout=5))
    await asyncio.sleep(0)
    await publisher.publish(Event(type="task.created", source="orchestrator", data={"task_id": "t-8"}))
    await publisher.publish(Event(type="task.created", source="orchestrator", data={"task_id": "t-9"}))
    assert (await waiting).data["task_id"] == "t-9"
    assert other._subscribers == []  # wait_for unsubscribes


async def test_close_is_clean(broker_url: str):
    prefix = unique_prefix()
    leaving, staying = make_bus(broker_url, prefix=prefix), make_bus(broker_url, prefix=prefix)
    before = asyncio.all_tasks()
    await leaving.start()
    await staying.start()
    assert (await leaving.ready())[0] and (await staying.ready())[0]
    received, handler = collector()
    leaving.subscribe("*", handler)

    await leaving.close()
    await leaving.close()  # twice is harmless
    assert (await leaving.ready())[0] is False
    with pytest.raises(RuntimeError, match="start"):
        await leaving.publish(Event(type="task.created", source="t"))
    await staying.publish(Event(type="task.created", source="t"))
    await settle(lambda: staying.recent())
    assert received == []  # a closed bus hears nothing more

    await staying.close()
    await asyncio.sleep(0.05)
    left = [t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()]
    assert left == [], left


async def test_buses_with_different_prefixes_do_not_hear_each_other(broker_url: str):
    one, two = make_bus(broker_url, prefix=unique_prefix()), make_bus(broker_url, prefix=unique_prefix())
    await one.start()
    await two.start()
    try:
        await one.publish(Event(type="task.created", source="t"))
        await settle(lambda: one.recent())
        assert two.recent() == []
    finally:
        await one.close()
        await two.close()


async def test_a_broker_that_is_not_there_fails_start():
    for url in ("redis://127.0.0.1:1/0", "nats://127.0.0.1:1"):
        with pytest.raises(Exception):  # noqa: B017 (each client library raises its own connection error)
            await make_bus(url, prefix=unique_prefix()).start()


def test_make_bus_picks_the_implementation_from_the_url():
    assert isinstance(make_bus(""), InProcessBus)
    assert isinstance(make_bus(None), InProcessBus)
    assert isinstance(make_bus("   "), InProcessBus)
    assert isinstance(make_bus("redis://127.0.0.1:6379/0"), RedisBus)
    assert isinstance(make_bus("rediss://cache.example:6380/1"), RedisBus)
    assert isinstance(make_bus("nats://127.0.0.1:4222"), NatsBus)
    with pytest.raises(ValueError, match="Unknown event bus URL scheme 'kafka'"):
        make_bus("kafka://127.0.0.1:9092")
    with pytest.raises(ValueError, match="ALP_EVENT_BUS_URL"):
        make_bus("127.0.0.1:6379")


async def test_the_platform_publishes_to_the_shared_bus(settings, provider, broker_url: str):
    """A platform configured with ALP_EVENT_BUS_URL: another process sees its task events, and the
    platform's own subscribers (the history here) get each of them once."""
    prefix = unique_prefix()
    settings = settings.model_copy(update={"event_bus_url": broker_url, "event_bus_prefix": prefix})
    observer = make_bus(broker_url, prefix=prefix)
    await observer.start()
    try:
        async with running_app(settings, provider) as client:
            bus = client.app.state.platform.bus
            assert isinstance(bus, (RedisBus, NatsBus))
            ready = (await client.get("/health/ready")).json()
            assert ready["checks"]["bus"]["ok"] is True, ready
            response = await client.post(
                "/assign-task",
                json={"description": "Summarise the release notes"},
                headers={"X-Correlation-ID": "corr-split"},
            )
            task_id = response.json()["task_id"]
            await wait_for_status(client, task_id)
            await settle(
                lambda: any(
                    e.type == "task.succeeded" and e.data.get("task_id") == task_id for e in observer.recent()
                )
            )
            seen = [e for e in observer.recent() if e.data.get("task_id") == task_id]
            lifecycle = [
                e.type for e in seen if e.type != "task.step"
            ]  # an agent run's steps come in between
            assert lifecycle[:4] == ["task.created", "task.assigned", "task.started", "task.succeeded"]
            assert {e.correlation_id for e in seen} == {"corr-split"}
            await settle(
                lambda: any(
                    e.type == "task.succeeded" and e.data.get("task_id") == task_id for e in bus.recent()
                )
            )
            own = [e.type for e in bus.recent() if e.data.get("task_id") == task_id]
            assert [t for t in own if t != "task.step"][:4] == [
                "task.created",
                "task.assigned",
                "task.started",
                "task.succeeded",
            ]
            assert len(own) == len({e.id for e in bus.recent() if e.data.get("task_id") == task_id})
        assert (await bus.ready())[0] is False  # closed at shutdown
    finally:
        await observer.close()


SERVERS = {
    "redis": lambda port: ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
    "nats": lambda port: ["nats-server", "-p", str(port)],
}


@pytest.mark.parametrize("kind", sorted(SERVERS))
async def test_the_bus_resumes_after_the_broker_restarts(kind: str):
    """Our own short-lived broker (skipped without the server binary), stopped and started again."""
    command = SERVERS[kind]
    if shutil.which(command(0)[0]) is None:
        pytest.skip(f"{command(0)[0]} is not installed")
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0" if kind == "redis" else f"nats://127.0.0.1:{port}"

    async def serve() -> subprocess.Popen:
        process = subprocess.Popen(command(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return process
            except OSError:
                await asyncio.sleep(0.05)
        process.kill()
        raise RuntimeError(f"{kind} did not start")

    server = await serve()
    prefix = unique_prefix()
    publisher, other = make_bus(url, prefix=prefix), make_bus(url, prefix=prefix)
    try:
        await publisher.start()
        await other.start()
        await publisher.publish(Event(type="task.created", source="t"))
        await settle(lambda: other.recent())

        server.terminate()
        server.wait(timeout=10)
        await settle(lambda: True)
        assert (await publisher.ready())[0] is False
        await publisher.publish(Event(type="task.started", source="t"))  # does not raise while it is down

        server = await serve()
        deadline = asyncio.get_running_loop().time() + 15
        while not any(e.type == "task.succeeded" for e in other.recent()):
            assert asyncio.get_running_loop().time() < deadline, "the bus did not resume"
            await publisher.publish(Event(type="task.succeeded", source="t"))
            await asyncio.sleep(0.2)
        assert (await publisher.ready())[0] and (await other.ready())[0]
    finally:
        await publisher.close()
        await other.close()
        server.terminate()
        server.wait(timeout=10)
