"""Wire contract of the execution service and the interface the orchestrator depends on."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent_lightning.core.bounds import MAX_TIMEOUT_S, MIN_TIMEOUT_S
from agent_lightning.knowledge.schemas import Citation


class ExecutionStatus(StrEnum):
    """Where one execution of a task is (the value is what is stored and sent)."""

    QUEUED = "queued"
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StepStatus(StrEnum):
    """Where one step of an agent run is: a tool call may wait for a person, who approves or denies it."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    DENIED = "denied"


StepKind = Literal["model", "tool"]


class ExecuteRequest(BaseModel):
    """Run one task with one agent (or the best-fitting agent when none is named)."""

    model_config = ConfigDict(populate_by_name=True)

    task: str = Field(min_length=1, max_length=20_000, description="What the agent should do.")
    agent_id: str | None = Field(default=None, max_length=64)
    task_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    context: dict[str, Any] = Field(default_factory=dict, description="Extra context appended to the prompt.")
    timeout: float | None = Field(
        default=None, ge=MIN_TIMEOUT_S, le=MAX_TIMEOUT_S, description="Seconds; default from settings."
    )
    run_async: bool = Field(default=False, alias="async", description="Return 202 at once and run queued.")

    @field_validator("task")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


class StepCounts(BaseModel):
    """What an agent run did, for learning: model calls, tool calls and how the failed ones failed."""

    model_calls: int = 0
    tool_calls: int = 0
    misuse: int = Field(default=0, description="Tool calls that failed through the agent's fault.")
    outage: int = Field(default=0, description="Tool calls that failed because the tool could not run.")
    tools: list[str] = Field(default_factory=list, description="Tools called, each once, in order.")


class ExecuteResult(BaseModel):
    """What the agent answered and what it took."""

    response: str
    agent: str
    agent_version: int
    model: str
    provider: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    knowledge_used: list[Citation] = Field(
        default_factory=list, description="Knowledge injected into the prompt."
    )
    citations: list[str] = Field(default_factory=list, description="Markers (K1 …) the answer cites.")
    memory_used: dict[str, Any] | None = Field(default=None, description="Session, turns and memories given.")
    steps: StepCounts = Field(default_factory=StepCounts)


class ExecuteResponse(BaseModel):
    """The answer; or, with `awaiting_approval`, the steps that wait for a person (no result yet)."""

    task_id: str
    status: Literal[ExecutionStatus.SUCCEEDED, ExecutionStatus.AWAITING_APPROVAL] = ExecutionStatus.SUCCEEDED
    result: ExecuteResult | None = None
    pending_steps: list[int] = Field(default_factory=list, description="Steps awaiting approval.")
    warnings: list[str] = Field(default_factory=list, description="Non-blocking findings of the intake scan.")
    metadata: dict[str, Any] = Field(default_factory=dict)


class ExecuteAccepted(BaseModel):
    task_id: str
    status: Literal[ExecutionStatus.QUEUED] = ExecutionStatus.QUEUED
    status_url: str
    warnings: list[str] = Field(default_factory=list, description="Non-blocking findings of the intake scan.")


class ExecutionRecord(BaseModel):
    """The state of one execution, as `GET /api/v1/tasks/{task_id}` reports it."""

    task_id: str
    status: ExecutionStatus
    agent_id: str | None = None
    result: ExecuteResult | None = None
    error: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class Step(BaseModel):
    """One step of an agent run, as `GET /api/v2/actions/{task_id}` serves it and `task.step` announces it."""

    model_config = ConfigDict(from_attributes=True)

    number: int = Field(description="Numbered per task, across its executions.")
    execution_id: str
    kind: StepKind
    name: str = Field(description="The model alias (model steps) or the tool (tool steps).")
    call_id: str | None = None
    arguments: dict[str, Any] | None = Field(default=None, description="The tool call's arguments.")
    tool_calls: list[dict[str, Any]] | None = Field(
        default=None, description="The calls a model step asked for."
    )
    output: str = Field(default="", description="The model's text, or the tool's result as the model saw it.")
    status: StepStatus
    error: str | None = None
    error_kind: str | None = Field(default=None, description="misuse, outage, timeout or denied.")
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float | None = None
    decided_by: str | None = Field(default=None, description="Who approved or denied it.")
    started_at: datetime
    finished_at: datetime | None = None


class ActionLog(BaseModel):
    task_id: str
    steps: list[Step]


class StepDecision(BaseModel):
    """A person's answer to a tool call waiting for approval (what the orchestrator passes on)."""

    model_config = ConfigDict(extra="forbid")

    approve: bool
    by: str = Field(default="operator", max_length=128)


class StepDecided(BaseModel):
    step: Step
    waiting: int = Field(description="How many of the run's calls still wait for a decision.")


class Executor(Protocol):
    """What the orchestrator asks of the execution service."""

    async def execute(self, request: ExecuteRequest) -> ExecuteResponse:
        """Run the task now and return the answer; raise an `AppError` when it cannot."""
        ...

    async def actions(self, task_id: str) -> ActionLog:
        """The steps of the task's runs."""
        ...

    async def decide_step(self, task_id: str, number: int, *, approve: bool, by: str) -> tuple[Step, int]:
        """Approve or deny a waiting tool call; the step and how many of the run's calls still wait."""
        ...

    async def ready(self) -> bool: ...
