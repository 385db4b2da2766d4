"""The event bus: one envelope, one interface, an in-process implementation (Redis and NATS ones,
which processes share, are in `core/brokers.py`).

Event types published by the platform: task.created, task.assigned, task.started, task.succeeded,
task.failed, task.cancelled, feedback.received, policy.updated. Every event carries a correlation id.
"""

from __future__ import annotations

import asyncio
import fnmatch
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, Field

from agent_lightning.core.db import new_id, utcnow
from agent_lightning.core.logging import current_correlation_id, get_logger

log = get_logger(__name__)


class Event(BaseModel):
    """The envelope of every event."""

    id: str = Field(default_factory=new_id)
    type: str
    timestamp: datetime = Field(default_factory=utcnow)
    source: str
    tenant_id: str = "default"
    correlation_id: str = Field(default_factory=current_correlation_id)
    data: dict[str, Any] = Field(default_factory=dict)


Handler = Callable[[Event], Awaitable[None]]
Observer = Callable[[Event], None]


class EventBus(Protocol):
    async def publish(self, event: Event) -> None: ...

    def subscribe(self, pattern: str, handler: Handler) -> None: ...

    def recent(self, limit: int = 100) -> list[Event]: ...


class LocalSubscribers:
    """What every bus does in its own process: the subscribers, the history of delivered events and
    `wait_for`. Implementations call `_deliver` once for each event this process should see."""

    def __init__(self, history: int = 1000) -> None:
        self._subscribers: list[tuple[str, Handler]] = []
        self._observers: list[Observer] = []
        self._history: deque[Event] = deque(maxlen=history)

    def observe(self, observer: Observer) -> None:
        """Call `observer` with every event this process publishes, before it is delivered or sent.
        For counting (metrics): with a shared broker every process receives every event, so what is
        counted on receipt is counted once per process; what is counted where published, once."""
        self._observers.append(observer)

    def _published(self, event: Event) -> None:
        """Show a published event to the observers; an observer's failure is logged only."""
        for observer in self._observers:
            try:
                observer(event)
            except Exception:
                log.exception("event_observer_failed", event_type=event.type)

    async def _deliver(self, event: Event) -> None:
        """Record `event` and hand it to each matching subscriber; a handler's failure is logged only."""
        self._history.append(event)
        for pattern, handler in list(self._subscribers):
            if fnmatch.fnmatchcase(event.type, pattern):
                try:
                    await handler(event)
                except Exception:
                    log.exception("event_handler_failed", event_type=event.type)

    def subscribe(self, pattern: str, handler: Handler) -> None:
        """Call `handler` for every event whose type matches the glob `pattern` (e.g. ``task.*``)."""
        self._subscribers.append((pattern, handler))

    def unsubscribe(self, handler: Handler) -> None:
        """Stop calling `handler` (for every pattern it was subscribed with)."""
        self._subscribers = [
            (p, h) for p, h in self._subscribers if h != handler
        ]  # == also matches a bound method fetched again

    def recent(self, limit: int = 100) -> list[Event]:
        """The newest events, oldest first."""
        return list(self._history)[-limit:]

    async def wait_for(self, predicate: Callable[[Event], bool], timeout: float) -> Event:
        """Wait until an event matching `predicate` is delivered (handy in tests and the CLI)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Event] = loop.create_future()

        async def handler(event: Event) -> None:
            if not future.done() and predicate(event):
                future.set_result(event)

        self.subscribe("*", handler)
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self.unsubscribe(handler)


class InProcessBus(LocalSubscribers):
    """Delivers events to subscribers in the same process, before `publish` returns; a handler's
    failure never reaches the publisher. Redis and NATS implementations live in `core/brokers.py`."""

    async def publish(self, event: Event) -> None:
        self._published(event)
        await self._deliver(event)

    async def start(self) -> None:
        """Nothing to connect."""

    async def close(self) -> None:
        """Nothing to disconnect."""

    async def ready(self) -> tuple[bool, str]:
        return True, "in-process"
