"""HTTP routes of the execution service."""

from __future__ import annotations

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse

from agent_lightning.core.http import ERROR_RESPONSES
from agent_lightning.execution.schemas import (
    ActionLog,
    ExecuteAccepted,
    ExecuteRequest,
    ExecuteResponse,
    ExecutionRecord,
    StepDecided,
    StepDecision,
)
from agent_lightning.execution.service import ExecutionService


def router(execution: ExecutionService) -> APIRouter:
    api = APIRouter(tags=["execution"], responses=ERROR_RESPONSES)

    async def _execute(body: ExecuteRequest) -> ExecuteResponse | JSONResponse:
        body, warnings = await execution.screen(body)  # the intake scan of /assign-task: 422 task_rejected
        if body.run_async:
            accepted = (await execution.submit(body)).model_copy(update={"warnings": warnings})
            return JSONResponse(status_code=202, content=accepted.model_dump(mode="json"))
        return (await execution.execute(body)).model_copy(update={"warnings": warnings})

    responses = {202: {"model": ExecuteAccepted, "description": "Queued (`async: true`)."}}

    @api.post(
        "/api/v2/agents/execute",
        response_model=ExecuteResponse,
        responses=responses,
        summary="Run a task with an agent",
    )
    async def execute_v2(body: ExecuteRequest) -> ExecuteResponse | JSONResponse:
        return await _execute(body)

    @api.post(
        "/agents/execute",
        response_model=ExecuteResponse,
        responses=responses,
        summary="Run a task (fallback endpoint)",
    )
    async def execute_v1(body: ExecuteRequest) -> ExecuteResponse | JSONResponse:
        return await _execute(body)

    @api.get("/api/v1/tasks/{task_id}", response_model=ExecutionRecord, summary="State of an execution")
    async def execution_status(task_id: str) -> ExecutionRecord:
        return await execution.get(task_id)

    @api.get(
        "/api/v2/actions/{task_id}", response_model=ActionLog, summary="The steps of a task's agent runs"
    )
    async def actions(task_id: str) -> ActionLog:
        return await execution.actions(task_id)

    @api.post(
        "/api/v2/actions/{task_id}/steps/{number}/decision",
        response_model=StepDecided,
        summary="Approve or deny a tool call waiting for approval (the orchestrator's approve/deny call it)",
    )
    async def decide(task_id: str, body: StepDecision, number: int = Path(ge=1, le=1_000_000)) -> StepDecided:
        step, waiting = await execution.decide_step(task_id, number, approve=body.approve, by=body.by)
        return StepDecided(step=step, waiting=waiting)

    return api
