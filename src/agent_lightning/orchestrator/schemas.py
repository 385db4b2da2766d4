"""Wire contract of the orchestrator."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

TaskStatus = Literal["queued", "assigned", "awaiting_review", "running", "succeeded", "failed", "cancelled"]
TASK_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"


class AssignTaskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = Field(min_length=1, max_length=20_000)
    task_id: str | None = Field(default=None, pattern=TASK_ID_PATTERN)
    priority: int = Field(default=5, ge=1, le=10)
    metadata: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=128)
    force_execute: bool = False
    required_capabilities: list[str] = Field(default_factory=list, max_length=20)
    agent_id: str | None = Field(default=None, max_length=64, description="Skip routing: use this agent.")
    max_attempts: int | None = Field(default=None, ge=1, le=10)
    timeout: float | None = Field(default=None, gt=0, le=3600, description="Seconds per attempt.")
    # Seed fields, kept for compatibility; stored in metadata and checked for warnings.
    target_environment: str | None = Field(default=None, max_length=64)
    working_directory: str | None = Field(default=None, max_length=1024)
    search_scope: str | None = Field(default=None, max_length=64)
    platform: str | None = Field(default=None, max_length=64)
    environment_vars: dict[str, str] = Field(default_factory=dict)
    execution_mode: str | None = Field(default=None, max_length=64)

    @field_validator("description")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


class CandidateScore(BaseModel):
    agent_id: str
    capability: float
    q: float | None = None
    score: float


class PolicyRef(BaseModel):
    name: str
    version: int


class AssignTaskResponse(BaseModel):
    task_id: str
    assigned_agent: str
    agent_version: int
    confidence: float
    status: TaskStatus
    reason: str
    candidates: list[CandidateScore]
    policy: PolicyRef
    probability: float
    validation_passed: bool
    warnings: list[str]


class RoutePreviewRequest(BaseModel):
    description: str = Field(min_length=1, max_length=20_000)
    required_capabilities: list[str] = Field(default_factory=list, max_length=20)


class RoutePreview(BaseModel):
    """The greedy choice of the current policy, without creating a task."""

    agent_id: str
    confidence: float
    reason: str
    candidates: list[CandidateScore]
    policy: PolicyRef


class Attempt(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    number: int
    agent_id: str
    agent_version: int | None
    model: str | None
    status: str
    started_at: datetime
    finished_at: datetime | None
    latency_ms: float | None
    prompt_tokens: int
    completion_tokens: int
    error: str | None
    knowledge_used: list[dict[str, Any]] | None = None
    memory_used: dict[str, Any] | None = None


class Decision(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    policy: str
    policy_version: int
    state: str
    candidates: list[CandidateScore]
    chosen_agent: str
    probability: float
    confidence: float
    created_at: datetime


class Reward(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    agent_id: str
    source: Literal["outcome", "feedback"]
    score: float | None
    reward: float
    comment: str
    created_at: datetime


class Task(BaseModel):
    task_id: str
    description: str
    status: TaskStatus
    priority: int
    assigned_agent: str | None
    agent_version: int | None
    confidence: float | None
    reason: str
    warnings: list[str]
    validation_passed: bool
    metadata: dict[str, Any]
    idempotency_key: str | None
    result: str | None
    error: str | None
    attempts_count: int
    max_attempts: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class TaskDetail(Task):
    attempts: list[Attempt]
    decisions: list[Decision]
    rewards: list[Reward]


class TaskPage(BaseModel):
    items: list[Task]
    next_cursor: str | None


class TaskFilters(BaseModel):
    status: list[TaskStatus] | None = None
    agent_id: str | None = None
    priority_min: int | None = Field(default=None, ge=1, le=10)
    priority_max: int | None = Field(default=None, ge=1, le=10)
    created_after: datetime | None = None
    created_before: datetime | None = None
    text: str | None = Field(default=None, max_length=200)


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    score: float = Field(ge=0, le=10, description="0 (useless) to 10 (perfect).")
    comment: str = Field(default="", max_length=4000)


class FeedbackResponse(BaseModel):
    task_id: str
    agent_id: str
    reward: float
    policy: PolicyRef


class ApproveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_id: str | None = Field(default=None, max_length=64, description="Run with this agent instead.")


class QTable(BaseModel):
    states: list[str]
    total_entries: int
    q_table: dict[str, dict[str, float]]
    policy: PolicyRef


class AgentPolicyStats(BaseModel):
    """What the decision log says about one agent under this tenant."""

    agent_id: str
    decisions: int
    rewards: int
    mean_reward: float | None
    last_decision_at: datetime | None


class PolicyInfo(BaseModel):
    tenant_id: str
    name: str
    version: int
    params: dict[str, Any]
    default: bool = Field(description="True when the tenant uses the deployment's configured policy.")
    available: list[str]
    switch_enabled: bool
    uses_embeddings: bool
    agents: list[AgentPolicyStats]


class PolicySwitchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=64, description="seed-q, capability, thompson or linucb.")
    params: dict[str, Any] = Field(default_factory=dict, description="Constructor parameters of the policy.")


class DecisionLogEntry(Decision):
    """A logged routing decision with the rewards joined to it so far (late feedback included)."""

    task_id: str
    rewards: list[Reward]


class DecisionPage(BaseModel):
    items: list[DecisionLogEntry]
    next_cursor: str | None


class EvaluationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policy: str = Field(max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)
    since: datetime | None = None
    logged_by: str | None = Field(default=None, max_length=64, description="Only decisions of this policy.")
    limit: int = Field(default=5000, ge=1, le=100_000, description="The newest decisions to use, at most.")


class EstimateOut(BaseModel):
    value: float
    low: float | None = Field(description="95 % interval; null with fewer than two decisions.")
    high: float | None


class EvaluationReport(BaseModel):
    policy: str
    params: dict[str, Any]
    state: Literal["learned", "fresh"] = Field(description="Evaluated with the tenant's learned state or from its prior.")
    decisions: int
    logged_reward: EstimateOut | None
    ips: EstimateOut | None
    doubly_robust: EstimateOut | None
    effective_sample_size: float
    agreement: float


class Router(Protocol):
    """What the execution service asks of the orchestrator when a request names no agent."""

    async def preview(self, request: RoutePreviewRequest) -> RoutePreview: ...
