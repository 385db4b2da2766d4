"""The events the orchestrator publishes about a task (`task.*`, `feedback.received`)."""

from __future__ import annotations

from typing import Any

from agent_lightning.core.events import Event, EventBus
from agent_lightning.core.tenancy import current_tenant


async def publish(
    bus: EventBus, event_type: str, task_id: str, *, tenant_id: str | None = None, **data: Any
) -> None:
    """Say on the bus that `event_type` happened to the task (of the current tenant unless `tenant_id`)."""
    await bus.publish(
        Event(
            type=event_type,
            source="orchestrator",
            tenant_id=tenant_id or current_tenant(),
            data={"task_id": task_id, **data},
        )
    )
