"""The orchestrator's task intake over HTTP: what a workflows process uses in split mode (`TaskGateway`)."""

from __future__ import annotations

from agent_lightning.core.resilience import ServiceCaller
from agent_lightning.orchestrator.schemas import AssignTaskRequest, AssignTaskResponse, Task, TaskDetail


class OrchestratorTasksClient:
    """Implements `TaskGateway` against a remote orchestrator."""

    def __init__(self, caller: ServiceCaller) -> None:
        self.caller = caller

    async def assign(self, request: AssignTaskRequest) -> AssignTaskResponse:
        body = request.model_dump(mode="json", exclude_none=True)
        response = await self.caller.request("POST", ["/assign-task"], json=body)
        return AssignTaskResponse.model_validate(response.json())

    async def get_task(self, task_id: str) -> TaskDetail:
        response = await self.caller.request("GET", [f"/tasks/{task_id}"])
        return TaskDetail.model_validate(response.json())

    async def cancel(self, task_id: str) -> Task:
        response = await self.caller.request("POST", [f"/tasks/{task_id}/cancel"])
        return Task.model_validate(response.json())
