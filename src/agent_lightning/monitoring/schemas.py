"""The wire contract of the monitoring service: the platform's summary (the dashboard's data) and alerts."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal, Protocol

from pydantic import BaseModel, Field, RootModel

Severity = Literal["warning", "critical"]


class AlertState(StrEnum):
    """An alert fires while its rule's condition holds and is resolved once it no longer does."""

    FIRING = "firing"
    RESOLVED = "resolved"


class Percentiles(BaseModel):
    """Seconds from intake to the end of a finished task (null without finished tasks)."""

    count: int
    p50: float | None
    p95: float | None
    p99: float | None


class Throughput(BaseModel):
    window_s: int = Field(description="The window the counts are over (the last hour).")
    created: int
    finished: int
    per_minute: float = Field(description="Finished tasks per minute over the window.")


class AgentStats(BaseModel):
    agent_id: str
    tasks: int = Field(description="Tasks assigned to the agent.")
    succeeded: int
    failed: int
    success_rate: float | None = Field(
        description="succeeded / (succeeded + failed); null before any finished."
    )
    rewards: int
    mean_reward: float | None
    feedback: int = Field(description="Rewards from people's feedback.")
    mean_latency_s: float | None = Field(description="Mean intake-to-end time of its succeeded tasks.")


class ModelUsage(BaseModel):
    model: str
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    mean_latency_ms: float | None


class PolicySummary(BaseModel):
    name: str
    version: int = Field(description="Updates applied to the learned state (0 before the first).")
    default: bool = Field(description="True when the tenant uses the deployment's configured policy.")


class ServiceHealth(BaseModel):
    name: str
    ok: bool
    detail: str
    url: str | None = Field(default=None, description="Where a service of another process was probed.")


class Summary(BaseModel):
    """Everything the dashboard shows at a glance, for the caller's tenant."""

    tenant_id: str
    generated_at: datetime
    total_tasks: int
    by_status: dict[str, int] = Field(description="Tasks per status (every status, zero included).")
    success_rate: float | None = Field(description="succeeded / (succeeded + failed) over all tasks.")
    recent_success_rate: float | None = Field(
        description="The same over the last ALP_ALERT_WINDOW tasks finished."
    )
    throughput: Throughput
    latency_s: Percentiles
    agents: list[AgentStats]
    policy: PolicySummary
    models: list[ModelUsage]
    total_cost_usd: float
    health: list[ServiceHealth]
    alerts_firing: int


class Alert(BaseModel):
    id: str = Field(description="The rule, and the agent or model it concerns: `reward_drop:qa_tester`.")
    rule: str
    severity: Severity
    subject: str | None = Field(description="The agent or model the alert is about; null for the platform.")
    message: str
    value: float
    threshold: float
    state: AlertState
    tenant_id: str
    started_at: datetime
    resolved_at: datetime | None = None


class Rule(BaseModel):
    name: str
    enabled: bool
    severity: Severity
    threshold: float
    description: str


class AlertList(BaseModel):
    firing: list[Alert]
    resolved: list[Alert] = Field(description="Recently resolved alerts, newest first.")
    evaluated_at: datetime | None = Field(description="When the rules last ran for this tenant.")
    rules: list[Rule]


class DashboardPage(RootModel[str]):
    """The dashboard: one HTML page."""


class DashboardFile(RootModel[str]):
    """A file of the dashboard page: its script (text/javascript) or its style sheet (text/css)."""


class DashboardConfig(BaseModel):
    """What the dashboard page needs to know before it asks for data."""

    auth_enabled: bool
    api_base: str = Field(description="Where the orchestrator's routes are; empty: this origin.")
    agents_base: str = Field(description="Where the agent registry is; empty: this origin.")
    auth_base: str = Field(
        description="Where logins are (POST /auth/token, GET /auth/me); empty: this origin."
    )
    version: str


class Monitor(Protocol):
    """What the monitoring service offers (the API and the dashboard use it)."""

    async def summary(self) -> Summary: ...

    async def alerts(self, state: Literal["firing", "resolved", "all"] = "all") -> AlertList: ...

    async def evaluate(self) -> AlertList: ...
