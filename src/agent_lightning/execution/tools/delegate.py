"""`delegate`: hand a subtask to another agent through the router, as a real orchestrator task linked to its
parent (`parent_task_id`), and wait for its answer. Limits: how deep delegations nest
(`ALP_DELEGATE_MAX_DEPTH`) and how many subtasks one run may start (`ALP_DELEGATE_MAX_FANOUT`)."""

from __future__ import annotations

import asyncio
from typing import Any

from agent_lightning.core.errors import AppError
from agent_lightning.execution.tools.base import ToolContext, ToolMisuse, ToolOutage, ToolSpec, object_schema
from agent_lightning.orchestrator.schemas import TASK_FINISHED, AssignTaskRequest, TaskGateway, TaskStatus

POLL_S = 0.2


class Delegate:
    def __init__(self, tasks: TaskGateway, *, max_depth: int, max_fanout: int, timeout_s: float) -> None:
        self.tasks = tasks
        self.max_depth = max_depth
        self.max_fanout = max_fanout
        self.timeout_s = timeout_s
        self.spec = ToolSpec(
            name="delegate",
            description="Hand a subtask to another agent of the fleet (the router picks one unless you name "
            "it) and get its answer.",
            parameters=object_schema(
                {
                    "task": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 10_000,
                        "description": "The subtask.",
                    },
                    "agent_id": {
                        "type": "string",
                        "maxLength": 64,
                        "description": "An agent to use (optional).",
                    },
                },
                ["task"],
            ),
            timeout_s=timeout_s + 5,
        )

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> str:
        if context.depth >= self.max_depth:
            raise ToolMisuse(f"Delegation is limited to {self.max_depth} level(s); do this subtask yourself.")
        started = context.extra.setdefault("delegations", 0)
        if started >= self.max_fanout:
            raise ToolMisuse(f"A run may hand out at most {self.max_fanout} subtask(s).")
        context.extra["delegations"] = started + 1
        request = AssignTaskRequest(
            description=arguments["task"],
            agent_id=arguments.get("agent_id") or None,
            force_execute=True,
            parent_task_id=context.task_id,
            metadata={"delegation_depth": context.depth + 1, "delegated_by": context.agent_id},
        )
        try:
            assigned = await self.tasks.assign(request)
        except AppError as exc:
            if exc.status < 500:
                raise ToolMisuse(f"The subtask was refused: {exc.message}") from exc
            raise ToolOutage(f"The orchestrator cannot take a subtask now ({exc.code}).") from exc
        try:
            async with asyncio.timeout(self.timeout_s):
                while True:
                    task = await self.tasks.get_task(assigned.task_id)
                    if task.status in TASK_FINISHED:
                        break
                    await asyncio.sleep(POLL_S)
        except TimeoutError:
            await self.tasks.cancel(assigned.task_id)
            raise ToolOutage(
                f"The subtask {assigned.task_id} did not finish within {self.timeout_s:g} s."
            ) from None
        who = f"{task.assigned_agent} (subtask {task.task_id})"
        if task.status != TaskStatus.SUCCEEDED:
            raise ToolOutage(f"{who} {task.status}: {task.error or 'no answer'}")
        return f"Answer from {who}:\n{task.result}"
