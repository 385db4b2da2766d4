"""Calls between services (core/resilience.py) over real sockets: a replica that stopped answering (its link
cut: connections accepted, never answered) and one that answers. Once the dead replica's breaker is half-open,
one trial call goes to it and the calls made meanwhile go to the live one: every call let through while
half-open used to wait out its timeout on the dead replica (tests/deploy/test_multihost.py: half the calls of
each reset window hung while a worker's link was down)."""

from __future__ import annotations

import asyncio

from agent_lightning.core.resilience import ServiceCaller

ANSWER = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


async def _server(answer: bool) -> tuple[asyncio.Server, str, list[int]]:
    """A loopback server that answers every request with 200 `{}` (or never answers); and the count of the
    connections it accepted."""
    accepted = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted[0] += 1
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                if answer:
                    writer.write(ANSWER)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}", accepted


async def test_a_half_open_breaker_lets_one_trial_through_and_the_other_calls_go_elsewhere() -> None:
    dead, dead_url, dead_calls = await _server(answer=False)
    live, live_url, _ = await _server(answer=True)
    caller = ServiceCaller(
        "execution", [dead_url, live_url], timeout_s=1.0, retries=0, breaker_failures=1, breaker_reset_s=0.3
    )
    try:
        first = await caller.request("GET", ["/work"])  # the dead one first: its timeout opens its breaker
        assert first.status_code == 200 and dead_calls == [1]
        assert caller.breakers[dead_url].state == "open"

        await asyncio.sleep(0.35)  # half-open
        answers = await asyncio.gather(*(caller.request("GET", ["/work"]) for _ in range(10)))
        assert [a.status_code for a in answers] == [200] * 10
        assert dead_calls == [2], "more than one trial call went to the half-open replica"
        assert caller.breakers[dead_url].state == "open"  # the trial failed: open again
    finally:
        await caller.close()
        for server in (dead, live):
            server.close()


async def test_a_call_given_up_by_its_deadline_counts_against_the_replica() -> None:
    """A replica cut off mid-call never answers; the task's deadline (shorter than the call's own timeout)
    gives up on it. Such calls count as its failures: once its breaker opens, calls go to the live replica.
    They counted for nothing, so the dead replica kept its turn and every other call waited out a deadline."""
    dead, dead_url, dead_calls = await _server(answer=False)
    live, live_url, _ = await _server(answer=True)
    caller = ServiceCaller(
        "execution", [dead_url, live_url], timeout_s=30.0, retries=0, breaker_failures=2, breaker_reset_s=60
    )
    try:
        outcomes = []
        for _ in range(8):
            try:
                outcomes.append((await asyncio.wait_for(caller.request("GET", ["/work"]), 0.3)).status_code)
            except TimeoutError:
                outcomes.append("deadline")
        assert outcomes == ["deadline", 200, "deadline", 200, 200, 200, 200, 200]
        assert dead_calls == [2] and caller.breakers[dead_url].state == "open"
    finally:
        await caller.close()
        for server in (dead, live):
            server.close()
