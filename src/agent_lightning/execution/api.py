"""HTTP routes of the execution service."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from agent_lightning.core.http import ERROR_RESPONSES
from agent_lightning.execution.schemas import ExecuteAccepted, ExecuteRequest, ExecuteResponse, ExecutionRecord
from agent_lightning.execution.service import ExecutionService


def router(execution: ExecutionService) -> APIRouter:
    api = APIRouter(tags=["execution"], responses=ERROR_RESPONSES)

    async def _execute(body: ExecuteRequest) -> ExecuteResponse | JSONResponse:
        if body.run_async:
            accepted = await execution.submit(body)
            return JSONResponse(status_code=202, content=accepted.model_dump(mode="json"))
        return await execution.execute(body)

    responses = {202: {"model": ExecuteAccepted, "description": "Queued (`async: true`)."}}

    @api.post("/api/v2/agents/execute", response_model=ExecuteResponse, responses=responses, summary="Run a task with an agent")
    async def execute_v2(body: ExecuteRequest) -> ExecuteResponse | JSONResponse:
        return await _execute(body)

    @api.post("/agents/execute", response_model=ExecuteResponse, responses=responses, summary="Run a task (fallback endpoint)")
    async def execute_v1(body: ExecuteRequest) -> ExecuteResponse | JSONResponse:
        return await _execute(body)

    @api.get("/api/v1/tasks/{task_id}", response_model=ExecutionRecord, summary="State of an execution")
    async def execution_status(task_id: str) -> ExecutionRecord:
        return await execution.get(task_id)

    return api
