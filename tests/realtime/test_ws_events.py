"""WS /ws/events: live bus events over a real WebSocket (the app under uvicorn on a free port), filtered
by type, task and tenant, with replay, a drop notice for slow readers, and unsubscription on disconnect."""

from __future__ import annotations

import asyncio
import json

import pytest
from support import served, wait_for_status
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from agent_lightning.core.events import Event, InProcessBus
from agent_lightning.realtime.service import DROPPED, EventStream

WEB_TASK = "Build a responsive landing page with HTML, CSS and a JavaScript contact form"
LIFECYCLE = [
    "task.created",
    "task.assigned",
    "task.started",
    "task.step",
    "task.succeeded",
]  # step: the model call


@pytest.fixture
async def live(settings, provider):
    async with served(settings, provider) as client:
        yield client


def subscribers(client) -> int:
    return len(client.app.state.platform.bus._subscribers)


async def until(condition, timeout: float = 5) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def published(client, event_type: str, task_id: str) -> None:
    """Wait until the bus has delivered `event_type` for `task_id`."""
    bus = client.app.state.platform.bus
    await until(
        lambda: any(e.type == event_type and e.data.get("task_id") == task_id for e in bus.recent()), 10
    )


async def receive_until(ws, last_type: str, timeout: float = 10, task_id: str | None = None) -> list[dict]:
    """Messages up to and including the first of type `last_type` (of `task_id`, if given)."""
    received = []
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            received.append(message)
            if message["type"] == last_type and (
                task_id is None or message["data"].get("task_id") == task_id
            ):
                return received


async def connected(client, ws_url: str, before: int):
    """Open a websocket and wait until the server has subscribed it to the bus."""
    ws = await connect(ws_url)
    await until(lambda: subscribers(client) == before + 1)
    return ws


async def test_a_task_streams_its_lifecycle_in_order(live):
    before = subscribers(live)
    task_id = "ws-lifecycle-1"
    async with await connected(live, f"{live.ws}?task_id={task_id}", before) as ws:
        response = await live.post("/assign-task", json={"description": WEB_TASK, "task_id": task_id})
        assert response.status_code == 200, response.text
        messages = await receive_until(ws, "task.succeeded")
        assert [m["type"] for m in messages] == LIFECYCLE
        for message in messages:
            assert set(message) == {
                "id",
                "type",
                "timestamp",
                "source",
                "tenant_id",
                "correlation_id",
                "data",
            }
            assert message["data"]["task_id"] == task_id and message["tenant_id"] == "default"
        assert messages[1]["data"]["agent_id"] == response.json()["assigned_agent"]
        assert len({m["correlation_id"] for m in messages}) == 1
        # After the outcome, the policy learns from it: the same stream carries that too.
        assert (await receive_until(ws, "policy.updated"))[-1]["data"]["task_id"] == task_id


async def test_types_and_task_id_filter_the_stream(live):
    before = subscribers(live)
    first, second = "ws-filter-1", "ws-filter-2"
    async with (
        await connected(live, f"{live.ws}?types=task.s*,feedback.*", before) as by_type,
        await connected(live, f"{live.ws}?task_id={second}", before + 1) as by_task,
    ):
        for task_id in (first, second):
            response = await live.post("/assign-task", json={"description": WEB_TASK, "task_id": task_id})
            assert response.status_code == 200, response.text
            await published(live, "policy.updated", task_id)  # one task after the other
        await live.post(f"/tasks/{first}/feedback", json={"score": 9})

        typed = await receive_until(by_type, "feedback.received")
        assert [(m["type"], m["data"]["task_id"]) for m in typed] == [
            ("task.started", first),
            ("task.step", first),
            ("task.succeeded", first),
            ("task.started", second),
            ("task.step", second),
            ("task.succeeded", second),
            ("feedback.received", first),
        ]
        tasked = await receive_until(by_task, "policy.updated")
        assert {m["data"]["task_id"] for m in tasked} == {second}
        assert [m["type"] for m in tasked] == [*LIFECYCLE, "policy.updated"]


async def test_replay_sends_recent_matching_events_first(live):
    task_id = "ws-replay-1"
    await live.post("/assign-task", json={"description": WEB_TASK, "task_id": task_id})
    await published(live, "policy.updated", task_id)
    bus = live.app.state.platform.bus

    async with connect(f"{live.ws}?task_id={task_id}&types=task.*&replay=2") as ws:
        replayed = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(2)]
        assert [m["type"] for m in replayed] == ["task.step", "task.succeeded"]
        # Then live events follow.
        await bus.publish(Event(type="task.noted", source="test", data={"task_id": task_id}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "task.noted"


async def test_only_the_connections_tenant_is_streamed(live):
    before = subscribers(live)
    bus = live.app.state.platform.bus
    async with await connected(live, live.ws, before) as ws:
        await bus.publish(
            Event(type="task.created", source="test", tenant_id="other", data={"task_id": "theirs"})
        )
        await bus.publish(Event(type="task.created", source="test", data={"task_id": "ours"}))
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert message["data"]["task_id"] == "ours" and message["tenant_id"] == "default"


async def test_disconnect_unsubscribes(live):
    before = subscribers(live)
    ws = await connected(live, f"{live.ws}?types=task.*", before)
    other = await connected(live, live.ws, before + 1)
    await ws.close()
    await until(lambda: subscribers(live) == before + 1)
    await other.close()
    await until(lambda: subscribers(live) == before)
    # The bus still works for everyone else.
    response = await live.post("/assign-task", json={"description": WEB_TASK})
    assert (await wait_for_status(live, response.json()["task_id"]))["status"] == "succeeded"


async def test_invalid_parameters_are_refused(live):
    for query in ("replay=-1", "replay=100000", "types="):
        with pytest.raises(InvalidStatus):
            async with connect(f"{live.ws}?{query}"):
                pass


async def test_a_slow_reader_loses_its_oldest_events_with_a_notice_and_never_blocks_the_bus():
    bus = InProcessBus()
    stream = EventStream(bus, tenant_id="default", types=["task.*"], max_queued=3)
    stream.open()
    for number in range(10):  # nobody reads: every publish still returns at once
        await asyncio.wait_for(bus.publish(Event(type="task.noted", source="test", data={"n": number})), 1)
    await bus.publish(Event(type="policy.updated", source="test", data={"n": 99}))  # not wanted: not queued

    notice = await asyncio.wait_for(stream.next(), 1)
    assert notice.type == DROPPED and notice.data == {"dropped": 7, "max_queued": 3}
    assert [(await stream.next()).data["n"] for _ in range(3)] == [7, 8, 9]
    await bus.publish(Event(type="task.noted", source="test", data={"n": 10}))
    assert (await asyncio.wait_for(stream.next(), 1)).data["n"] == 10  # no second notice

    stream.close()
    assert bus._subscribers == []


async def server_sent(response, last_type: str, timeout: float = 10) -> list[dict]:
    """SSE messages (id, event, data) up to and including the first of type `last_type`."""
    messages, current = [], {}
    async with asyncio.timeout(timeout):
        async for line in response.aiter_lines():
            if line.startswith(":"):
                continue  # a keep-alive comment
            if not line:
                messages.append(current)
                if current.get("event") == last_type:
                    return messages
                current = {}
                continue
            field, _, value = line.partition(": ")
            current[field] = json.loads(value) if field == "data" else value


async def test_server_sent_events_stream_a_task_and_resume_after_the_last_event_id(live):
    before = subscribers(live)
    task_id = "sse-lifecycle-1"
    async with live.stream("GET", "/events", params={"types": "task.*", "task_id": task_id}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        await until(lambda: subscribers(live) == before + 1)
        await live.post("/assign-task", json={"description": WEB_TASK, "task_id": task_id})
        messages = await server_sent(response, "task.succeeded")
    assert [m["event"] for m in messages] == LIFECYCLE
    assert all(m["id"] == m["data"]["id"] and m["data"]["data"]["task_id"] == task_id for m in messages)
    await until(lambda: subscribers(live) == before)  # the client went away: unsubscribed

    # A client that reconnects with the id of the last event it saw gets what came after it.
    resume = {"Last-Event-ID": messages[1]["id"]}
    async with live.stream(
        "GET", "/events", params={"types": "task.*", "task_id": task_id}, headers=resume
    ) as again:
        replayed = await server_sent(again, "task.succeeded")
    assert [m["event"] for m in replayed] == LIFECYCLE[2:]


async def test_sse_parameters_are_validated_and_ws_is_an_alias(live):
    response = await live.get("/events", params={"replay": -1})
    assert response.status_code == 422 and response.json()["error"]["code"] == "validation_error"
    async with connect(live.ws.removesuffix("/events") + "?types=task.*") as ws:
        await live.post("/assign-task", json={"description": WEB_TASK, "task_id": "ws-alias-1"})
        assert (await receive_until(ws, "task.succeeded", task_id="ws-alias-1"))[-1]["data"][
            "task_id"
        ] == "ws-alias-1"
