"""HTTP routes of the orchestrator."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Path, Query

from agent_lightning.core.auth import Principal, authenticate, read_only, require
from agent_lightning.core.http import ERROR_RESPONSES
from agent_lightning.execution.schemas import Step
from agent_lightning.orchestrator.schemas import (
    ApproveRequest,
    AssignTaskRequest,
    AssignTaskResponse,
    DecisionPage,
    EvaluationReport,
    EvaluationRequest,
    FeedbackRequest,
    FeedbackResponse,
    PolicyInfo,
    PolicySwitchRequest,
    QTable,
    RoutePreview,
    RoutePreviewRequest,
    Task,
    TaskDetail,
    TaskFilters,
    TaskPage,
    TaskStatus,
)
from agent_lightning.orchestrator.service import OrchestratorService


def router(orchestrator: OrchestratorService) -> APIRouter:
    api = APIRouter(tags=["orchestrator"], responses=ERROR_RESPONSES)

    @api.post(
        "/assign-task", response_model=AssignTaskResponse, summary="Submit a task; the policy picks the agent"
    )
    async def assign_task(body: AssignTaskRequest) -> AssignTaskResponse:
        return await orchestrator.assign(body)

    @api.post("/route", response_model=RoutePreview, summary="Preview which agent would get a task")
    @read_only
    async def route(body: RoutePreviewRequest) -> RoutePreview:
        return await orchestrator.preview(body)

    @api.get("/tasks", response_model=TaskPage, summary="List tasks (newest first, cursor-paged)")
    async def list_tasks(
        status: list[TaskStatus] | None = Query(default=None),
        agent_id: str | None = Query(default=None, max_length=64),
        parent_task_id: str | None = Query(
            default=None, max_length=64, description="Subtasks delegated by this task."
        ),
        priority_min: int | None = Query(default=None, ge=1, le=10),
        priority_max: int | None = Query(default=None, ge=1, le=10),
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        text: str | None = Query(default=None, max_length=200, description="Substring of the description."),
        limit: int = Query(default=50, ge=1, le=500),
        cursor: str | None = Query(default=None, max_length=200),
    ) -> TaskPage:
        filters = TaskFilters(
            status=status,
            agent_id=agent_id,
            parent_task_id=parent_task_id,
            priority_min=priority_min,
            priority_max=priority_max,
            created_after=created_after,
            created_before=created_before,
            text=text,
        )
        return await orchestrator.reads.list_tasks(filters, limit=limit, cursor=cursor)

    @api.get(
        "/tasks/{task_id}", response_model=TaskDetail, summary="A task with attempts, decisions and rewards"
    )
    async def get_task(task_id: str) -> TaskDetail:
        return await orchestrator.get_task(task_id)

    @api.post("/tasks/{task_id}/feedback", response_model=FeedbackResponse, summary="Score a finished task")
    async def feedback(task_id: str, body: FeedbackRequest) -> FeedbackResponse:
        return await orchestrator.rewards.feedback(task_id, body)

    @api.post("/tasks/{task_id}/cancel", response_model=Task, summary="Cancel an unfinished task")
    async def cancel(task_id: str) -> Task:
        return await orchestrator.cancel(task_id)

    @api.post(
        "/tasks/{task_id}/approve",
        response_model=AssignTaskResponse,
        summary="Release a task held for review",
    )
    async def approve(task_id: str, body: ApproveRequest | None = None) -> AssignTaskResponse:
        return await orchestrator.intake.approve(task_id, body.agent_id if body else None)

    @api.post("/tasks/{task_id}/retry", response_model=Task, summary="Run a failed or cancelled task again")
    async def retry(task_id: str) -> Task:
        return await orchestrator.lifecycle.retry(task_id)

    @api.post(
        "/tasks/{task_id}/steps/{number}/approve",
        response_model=Step,
        summary="Approve a tool call the task waits on (operator); the run goes on when none waits",
    )
    async def approve_step(
        task_id: str, number: int = Path(ge=1, le=1_000_000), principal: Principal = Depends(authenticate)
    ) -> Step:
        return await orchestrator.lifecycle.decide_step(
            task_id, number, approve=True, by=f"{principal.kind}:{principal.name}"
        )

    @api.post(
        "/tasks/{task_id}/steps/{number}/deny",
        response_model=Step,
        summary="Deny a tool call the task waits on (operator); the agent is told and goes on without it",
    )
    async def deny_step(
        task_id: str, number: int = Path(ge=1, le=1_000_000), principal: Principal = Depends(authenticate)
    ) -> Step:
        return await orchestrator.lifecycle.decide_step(
            task_id, number, approve=False, by=f"{principal.kind}:{principal.name}"
        )

    @api.get("/q-table", response_model=QTable, summary="Q-values of the seed routing policy")
    async def q_table() -> QTable:
        return await orchestrator.admin.q_table()

    @api.get(
        "/policy", response_model=PolicyInfo, summary="The routing policy in use, with per-agent statistics"
    )
    async def get_policy() -> PolicyInfo:
        return await orchestrator.admin.policy_info()

    @api.put(
        "/policy",
        response_model=PolicyInfo,
        summary="Switch the routing policy (admin when auth is on; ALP_POLICY_SWITCH_ENABLED=false turns it "
        "off)",
        dependencies=[Depends(require("admin"))],
    )
    async def put_policy(body: PolicySwitchRequest) -> PolicyInfo:
        return await orchestrator.admin.switch_policy(body)

    @api.get(
        "/policy/decisions",
        response_model=DecisionPage,
        summary="The decision log with joined rewards (paged)",
    )
    async def decisions(
        limit: int = Query(default=50, ge=1, le=500),
        cursor: str | None = Query(default=None, max_length=40),
        policy: str | None = Query(default=None, max_length=64),
        since: datetime | None = None,
    ) -> DecisionPage:
        return await orchestrator.admin.list_decisions(limit=limit, cursor=cursor, policy=policy, since=since)

    @api.post(
        "/policy/evaluate", response_model=EvaluationReport, summary="Offline estimate of a policy on the log"
    )
    @read_only
    async def evaluate(body: EvaluationRequest) -> EvaluationReport:
        return await orchestrator.admin.evaluate(body)

    return api
