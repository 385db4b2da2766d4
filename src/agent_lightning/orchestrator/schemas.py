"""Wire contract of the orchestrator."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent_lightning.core.bounds import MAX_TIMEOUT_S, MIN_TIMEOUT_S


class TaskStatus(StrEnum):
    """Where a task is in its way through the system (the value is what is stored and sent)."""

    QUEUED = "queued"
    ASSIGNED = "assigned"
    AWAITING_REVIEW = "awaiting_review"
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TASK_FINISHED = (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED)
"""The statuses a task does not leave by itself (retry starts it again)."""


class AttemptStatus(StrEnum):
    """How one execution try of a task went."""

    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


TASK_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
PolicyParam = (
    bool | Annotated[int, Field(ge=-(2**63), le=2**63 - 1)] | Annotated[float, Field(ge=-1e9, le=1e9)] | None
)
"""A policy's constructor parameter: a flag, a seed or a number (each policy checks its own names)."""


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
    parent_task_id: str | None = Field(
        default=None,
        pattern=TASK_ID_PATTERN,
        description="The task this one was delegated by (an agent's delegate tool).",
    )
    max_attempts: int | None = Field(default=None, ge=1, le=10)
    timeout: float | None = Field(
        default=None, ge=MIN_TIMEOUT_S, le=MAX_TIMEOUT_S, description="Seconds per attempt."
    )
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
    parent_task_id: str | None = None
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
    parent_task_id: str | None = None
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

    name: str = Field(max_length=64, description="seed-q, capability, thompson, linucb, shared or topics.")
    params: dict[str, PolicyParam] = Field(
        default_factory=dict, max_length=32, description="Constructor parameters of the policy."
    )


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
    params: dict[str, PolicyParam] = Field(default_factory=dict, max_length=32)
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
    state: Literal["learned", "fresh"] = Field(
        description="Evaluated with the tenant's learned state or from its prior."
    )
    decisions: int
    logged_reward: EstimateOut | None
    ips: EstimateOut | None
    doubly_robust: EstimateOut | None
    effective_sample_size: float
    agreement: float


class Router(Protocol):
    """What the execution service asks of the orchestrator when a request names no agent."""

    async def preview(self, request: RoutePreviewRequest) -> RoutePreview: ...


class TaskGateway(Protocol):
    """Task intake of the orchestrator for other services (workflow runs, an agent's `delegate` tool): the
    service in-process, or its HTTP API in split mode."""

    async def assign(self, request: AssignTaskRequest) -> AssignTaskResponse: ...

    async def get_task(self, task_id: str) -> TaskDetail: ...

    async def cancel(self, task_id: str) -> Task: ...


class FinishedTask(BaseModel):
    agent_id: str | None
    status: TaskStatus
    created_at: datetime
    finished_at: datetime


class AgentRewardTotals(BaseModel):
    agent_id: str
    rewards: int
    mean_reward: float | None
    feedback: int = Field(description="Rewards from people's feedback.")


class PolicyInUse(BaseModel):
    name: str
    version: int = Field(description="Lessons in the tenant's log of this policy (0 before the first).")
    default: bool = Field(description="True when the tenant uses the deployment's configured policy.")


class TaskStatistics(Protocol):
    """Aggregates over the orchestrator's records (tasks, rewards, the policy in use) for monitoring:
    read-only, one tenant at a time unless `tenant` is None (every tenant: the operator's platform gauges)."""

    async def tenants(self) -> list[str]: ...

    async def counts_by_status(
        self, tenant: str | None, statuses: tuple[str, ...] | None = None
    ) -> dict[str, int]: ...

    async def expired_leases(self, tenant: str | None) -> int: ...

    async def created_and_finished_since(self, tenant: str, since: datetime) -> tuple[int, int]: ...

    async def counts_by_agent(self, tenant: str) -> dict[str, dict[str, int]]: ...

    async def recent_finished(self, tenant: str, limit: int) -> list[FinishedTask]: ...

    async def reward_totals(self, tenant: str) -> list[AgentRewardTotals]: ...

    async def recent_rewards(self, tenant: str, limit: int) -> list[tuple[str, float]]: ...

    async def policy_in_use(self, tenant: str, default: str) -> PolicyInUse: ...
