"""Work delivery through taskiq. The database row stays the source of truth; the queue only delivers."""

from __future__ import annotations

from taskiq import AsyncBroker, InMemoryBroker

from agent_lightning.core.config import Settings


def make_broker(settings: Settings) -> AsyncBroker:
    """The broker for this process: taskiq's in-memory broker (tasks run on this event loop)."""
    return InMemoryBroker(max_async_tasks=max(4, settings.local_concurrency * 8), propagate_exceptions=False)
