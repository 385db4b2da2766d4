"""One client's stream of bus events: the events of its tenant that match its filters, in a bounded
queue that drops its oldest events rather than slow the bus down. No HTTP here."""

from __future__ import annotations

import asyncio
import fnmatch
from collections import deque

from agent_lightning.core.events import Event

DROPPED = "events.dropped"
"""Type of the notice that takes the place of events dropped for a client that read too slowly."""

MAX_QUEUED = 1000
"""Events held for one client before its oldest are dropped."""

_ALL_HISTORY = 1_000_000


class EventStream:
    """Subscribes to the bus on `open`, unsubscribes on `close`. The bus's handler only appends to the
    queue, so a client that reads slowly never holds up a publisher."""

    def __init__(
        self,
        bus,
        *,
        tenant_id: str,
        types: list[str] | None = None,
        task_id: str | None = None,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        if max_queued < 1:
            raise ValueError("max_queued must be at least 1")
        self.bus = bus
        self.tenant_id = tenant_id
        self.types = types or ["*"]
        self.task_id = task_id
        self.max_queued = max_queued
        self.dropped = 0
        self._queue: deque[Event] = deque()
        self._ready = asyncio.Event()
        self._open = False
        # One bound method, kept: the bus unsubscribes by identity, and each `self._on_event` is a new object.
        self._handler = self._on_event

    def matches(self, event: Event) -> bool:
        """The event belongs to this tenant, has one of the wanted types and, if asked, the task."""
        if event.tenant_id != self.tenant_id:
            return False
        if self.task_id is not None and event.data.get("task_id") != self.task_id:
            return False
        return any(fnmatch.fnmatchcase(event.type, pattern) for pattern in self.types)

    async def _on_event(self, event: Event) -> None:
        if not self.matches(event):
            return
        if len(self._queue) >= self.max_queued:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(event)
        self._ready.set()

    def open(self, replay: int = 0, after: str | None = None) -> list[Event]:
        """Subscribe, and return the matching events the bus remembers that came after the event `after`
        (a client resuming), or else up to `replay` of the newest, oldest first. Nothing is awaited
        between the two, so no event falls between history and stream."""
        self.bus.subscribe("*", self._handler)
        self._open = True
        if replay <= 0 and after is None:
            return []
        history = [event for event in self.bus.recent(_ALL_HISTORY) if self.matches(event)]
        if after is not None:
            position = next((i for i, event in enumerate(history) if event.id == after), None)
            if position is not None:
                return history[position + 1 :]
        return history[-replay:] if replay > 0 else []

    def close(self) -> None:
        """Unsubscribe from the bus."""
        if self._open:
            self.bus.unsubscribe(self._handler)
            self._open = False

    async def next(self) -> Event:
        """The next event to send; when events were dropped since the last one, a notice of how many
        comes first (in the place of the dropped events)."""
        while not self._queue:
            self._ready.clear()
            await self._ready.wait()
        if self.dropped:
            count, self.dropped = self.dropped, 0
            return Event(
                type=DROPPED,
                source="realtime",
                tenant_id=self.tenant_id,
                data={"dropped": count, "max_queued": self.max_queued},
            )
        return self._queue.popleft()
