"""Flows across services: one service's event starts work in another. Each flow knows the services it joins
only through their interfaces (schemas); the composition root (app.py) subscribes it where both ends are
reachable."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from agent_lightning.core.events import Event
from agent_lightning.core.logging import get_logger
from agent_lightning.core.tenancy import set_tenant
from agent_lightning.knowledge.schemas import KnowledgeBase, LearnRequest
from agent_lightning.orchestrator.schemas import AttemptStatus, TaskGateway, TaskStatus

log = get_logger(__name__)


def learn_from_feedback(
    tasks: TaskGateway, knowledge: KnowledgeBase, background: set[asyncio.Task]
) -> Callable[[Event], Awaitable[None]]:
    """The handler of `feedback.received`: a rewarded task that succeeded is handed to the knowledge service,
    in the background (it may ask the model), as a task of `background` until it is done."""

    async def learn(event: Event) -> None:
        set_tenant(event.tenant_id)
        task = await tasks.get_task(event.data["task_id"])
        if task.status != TaskStatus.SUCCEEDED:
            return
        answer = next((a for a in reversed(task.attempts) if a.status == AttemptStatus.SUCCEEDED), None)
        request = LearnRequest(
            task_id=task.task_id,
            task=task.description,
            answer=task.result or "",
            reward=float(event.data["reward"]),
            agent_id=answer.agent_id if answer else task.assigned_agent,
        )
        result = await knowledge.learn(request)
        log.info("knowledge_learned", task_id=task.task_id, action=result.action, item_id=result.item_id)

    def done(job: asyncio.Task) -> None:
        background.discard(job)
        if not job.cancelled() and job.exception() is not None:
            log.error("knowledge_learning_failed", error=repr(job.exception()))

    async def handler(event: Event) -> None:
        job = asyncio.create_task(learn(event))
        background.add(job)
        job.add_done_callback(done)

    return handler
