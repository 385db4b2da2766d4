"""Wire contract of the execution service and the interface the orchestrator depends on."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent_lightning.knowledge.schemas import Citation

ExecutionStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class ExecuteRequest(BaseModel):
    """Run one task with one agent (or the best-fitting agent when none is named)."""

    model_config = ConfigDict(populate_by_name=True)

    task: str = Field(min_length=1, max_length=20_000, description="What the agent should do.")
    agent_id: str | None = Field(default=None, max_length=64)
    task_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    context: dict[str, Any] = Field(default_factory=dict, description="Extra context appended to the prompt.")
    timeout: float | None = Field(default=None, gt=0, le=3600, description="Seconds; default from settings.")
    run_async: bool = Field(default=False, alias="async", description="Return 202 at once and run queued.")

    @field_validator("task")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


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
    knowledge_used: list[Citation] = Field(default_factory=list, description="Knowledge injected into the prompt.")
    citations: list[str] = Field(default_factory=list, description="Markers (K1 …) the answer cites.")
    memory_used: dict[str, Any] | None = Field(default=None, description="Session, turns and memories given.")


class ExecuteResponse(BaseModel):
    task_id: str
    status: Literal["succeeded"] = "succeeded"
    result: ExecuteResult
    metadata: dict[str, Any] = Field(default_factory=dict)


class ExecuteAccepted(BaseModel):
    task_id: str
    status: Literal["queued"] = "queued"
    status_url: str


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


class Executor(Protocol):
    """What the orchestrator asks of the execution service."""

    async def execute(self, request: ExecuteRequest) -> ExecuteResponse:
        """Run the task now and return the answer; raise an `AppError` when it cannot."""
        ...

    async def ready(self) -> bool: ...
