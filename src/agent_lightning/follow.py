"""Waiting for a task from outside the server: over its live event stream (`GET /events`, Server-Sent Events),
not by polling. A wait costs one stream, one read of the task when the stream opens (it may have finished
already) and one when the stream says it ended, however long the task runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
from httpx_sse import connect_sse

from agent_lightning.orchestrator.schemas import TASK_FINISHED

ENDING_EVENTS = frozenset({"task.succeeded", "task.failed", "task.cancelled", "events.dropped"})
"""After these the task is read again (`events.dropped`: the stream skipped events, one of them may
be its end)."""
RECONNECT_S = 1.0


class StreamUnavailable(Exception):
    """The server has no event stream (an older or trimmed deployment): poll instead."""


class StreamRefused(Exception):
    """The server refused the stream (401, 403, 429 …); `response` says why."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"{response.status_code} from GET /events")
        self.response = response


def follow_task(
    client: httpx.Client,
    task_id: str,
    *,
    fetch: Callable[[], dict],
    deadline: float,
    progress: Callable[[str], None] = lambda _status: None,
) -> dict | None:
    """The task once it is finished, or None at `deadline` (monotonic). `fetch` reads the task; `client` has
    the server's base URL and credentials. A dropped stream is opened again, resuming after the last event."""
    last_event: str | None = None
    while (remaining := deadline - time.monotonic()) > 0:
        headers = {"Last-Event-ID": last_event} if last_event else {}
        try:
            with connect_sse(
                client,
                "GET",
                "/events",
                params={"task_id": task_id, "types": "task.*"},
                headers=headers,
                # No read outlasts the deadline: closing the response from another thread does not wake a
                # read blocked on a quiet stream, which waited for the next keep-alive (15 s) past a 2 s
                # --timeout.
                timeout=httpx.Timeout(10.0, read=remaining),
            ) as source:
                _check(source.response)
                # Nothing arrives on an idle stream but keep-alive comments: end it at the deadline.
                closer = threading.Timer(remaining, source.response.close)
                closer.start()
                try:
                    task = fetch()  # subscribed: whatever happens from now on is on the stream
                    if task["status"] in TASK_FINISHED:
                        return task
                    progress(task["status"])
                    for event in source.iter_sse():
                        last_event = event.id or last_event
                        if event.event in ENDING_EVENTS:
                            task = fetch()
                            if task["status"] in TASK_FINISHED:
                                return task
                        progress(event.event.removeprefix("task."))
                finally:
                    closer.cancel()
        except (httpx.TransportError, httpx.StreamError, RuntimeError):
            pass  # the connection dropped (or was closed at the deadline)
        if deadline - time.monotonic() > RECONNECT_S:
            time.sleep(RECONNECT_S)
    return None


def _check(response: httpx.Response) -> None:
    if response.status_code in (404, 405):
        raise StreamUnavailable
    if response.status_code >= 400:
        response.read()
        raise StreamRefused(response)
