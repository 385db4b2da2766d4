"""Wire contract of the model service and the interface other services depend on."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_serializer, field_validator

from agent_lightning.core.bounds import MAX_TIMEOUT_S, MIN_TIMEOUT_S

ALIAS_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,119}$"
ProviderKind = Literal["local", "openai", "anthropic", "openai-compatible"]


class ModelStatus(StrEnum):
    """Whether a model alias serves calls (a disabled one answers 404 model_disabled)."""

    ACTIVE = "active"
    DISABLED = "disabled"


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = Field(default=None, description="OpenAI-shaped tool calls.")
    tool_call_id: str | None = None
    images: list[str] | None = Field(default=None, description="Image URLs or data: URLs (image_url parts).")

    @field_validator("content", mode="before")
    @classmethod
    def _none_is_empty(cls, value: object) -> object:
        return "" if value is None else value


class ChatRequest(BaseModel):
    """One chat completion asked of a model alias."""

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(default=512, ge=1, le=32768)
    timeout_s: float | None = Field(default=None, ge=MIN_TIMEOUT_S, le=MAX_TIMEOUT_S)
    metadata: dict[str, str] = Field(default_factory=dict, description="task_id, agent_id, tenant_id …")
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stop: list[str] | None = None
    tools: list[dict[str, Any]] | None = Field(default=None, description="OpenAI-shaped tool definitions.")
    tool_choice: str | dict[str, Any] | None = None
    extra: dict[str, Any] = Field(
        default_factory=dict, description="Other OpenAI parameters passed through to OpenAI-shaped upstreams."
    )


class ChatResult(BaseModel):
    content: str
    model: str = Field(description="The alias that was asked for.")
    provider: str
    provider_model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    finish_reason: str = "stop"
    tool_calls: list[dict[str, Any]] | None = None
    deployment: str = ""
    cost_usd: float = 0.0
    cached: bool = False


class ChatDelta(BaseModel):
    """One piece of a streamed answer; the last one carries the finish reason and token counts."""

    content: str = ""
    tool_calls: list[dict[str, Any]] | None = Field(
        default=None, description="OpenAI-shaped tool call deltas."
    )
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class Deployment(BaseModel):
    """One place an alias can be served from. Several deployments make a fallback chain, in order."""

    model_config = ConfigDict(extra="forbid")

    provider: str = Field(
        description="local, openai, anthropic, openai-compatible, or a registered provider."
    )
    model: str = Field(min_length=1, max_length=200, description="The provider's model name.")
    base_url: str | None = Field(
        default=None, description="Overrides the provider's URL (openai-compatible)."
    )
    api_key: SecretStr | None = Field(default=None, description="Stored encrypted; never returned unmasked.")
    api_key_secret: str | None = Field(
        default=None,
        max_length=120,
        description="Name of a secret (PUT /secrets/{name}) of the alias's owner holding the key.",
    )
    api_key_env: str | None = Field(
        default=None,
        max_length=120,
        description="Platform aliases only: an environment variable named in ALP_SECRET_ENV_ALLOW holding "
        "the key.",
    )
    input_price: float | None = Field(default=None, ge=0, le=1e6, description="USD per million input tokens.")
    output_price: float | None = Field(
        default=None, ge=0, le=1e6, description="USD per million output tokens."
    )
    timeout_s: float | None = Field(default=None, ge=MIN_TIMEOUT_S, le=MAX_TIMEOUT_S)
    max_tokens: int | None = Field(
        default=None, ge=1, le=1_000_000, description="Cap on max_tokens for this deployment."
    )

    @property
    def id(self) -> str:
        where = f"@{self.base_url}" if self.base_url else ""
        return f"{self.provider}/{self.model}{where}"

    @field_serializer("api_key", when_used="json")
    def _mask(self, key: SecretStr | None) -> str | None:
        return mask_secret(key.get_secret_value()) if key else None


def mask_secret(secret: str) -> str:
    """A key shown as its first three and last four characters at most."""
    if len(secret) <= 8:
        return "****"
    return f"{secret[:3]}…{secret[-4:]}"


AliasScope = Literal["tenant", "platform"]


class ModelInfo(BaseModel):
    id: str
    scope: AliasScope = Field(default="platform", description="Your tenant's own alias, or platform-wide.")
    provider: str
    provider_model: str
    status: ModelStatus = ModelStatus.ACTIVE
    kind: Literal["chat", "embedding"] = "chat"
    version: int = 1
    description: str = ""
    deployments: list[Deployment] = Field(default_factory=list)
    fallbacks: list[str] = Field(
        default_factory=list, description="Aliases tried after this one's deployments."
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Defaults: temperature, max_tokens, top_p."
    )
    is_default: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None


class ModelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=ALIAS_PATTERN, description="The alias clients name.")
    scope: AliasScope = Field(
        default="tenant",
        description="tenant: yours only (hides a platform alias of the same name); platform: every "
        "tenant's (platform admin).",
    )
    kind: Literal["chat", "embedding"] = "chat"
    deployments: list[Deployment] = Field(min_length=1, max_length=20)
    fallbacks: list[str] = Field(default_factory=list, max_length=10)
    params: dict[str, Any] = Field(default_factory=dict)
    description: str = Field(default="", max_length=2000)
    status: ModelStatus = ModelStatus.ACTIVE


class ModelUpdate(BaseModel):
    """A partial update; any change of deployments or params makes a new version."""

    model_config = ConfigDict(extra="forbid")

    deployments: list[Deployment] | None = Field(default=None, min_length=1, max_length=20)
    fallbacks: list[str] | None = Field(default=None, max_length=10)
    params: dict[str, Any] | None = None
    description: str | None = Field(default=None, max_length=2000)
    status: ModelStatus | None = None


class QueueStats(BaseModel):
    """The admission queue of a model with few slots (the local model): now, and counts since start."""

    slots: int = Field(description="Generations that run at once (ALP_LOCAL_CONCURRENCY).")
    running: int
    waiting: int
    queue_size: int = Field(
        description="Requests that may wait (ALP_LOCAL_QUEUE_SIZE); more are refused with 503."
    )
    admitted: int
    rejected: int = Field(description="Refused with 503 model_overloaded and a Retry-After.")
    aborted: int = Field(description="Generations stopped because their caller stopped waiting.")
    expected_wait_s: float = Field(description="Expected wait of a request arriving now.")
    tokens_per_s: float | None = Field(default=None, description="Measured generation speed.")


class DeploymentHealth(BaseModel):
    deployment: str
    available: bool
    detail: str = ""
    consecutive_failures: int = 0
    cooling_down_s: float = 0.0
    queue: QueueStats | None = None


class ModelStats(BaseModel):
    """Statistics of one alias since the process started (latency over the most recent requests)."""

    model: str
    requests: int = 0
    errors: int = 0
    error_rate: float = 0.0
    cache_hits: int = 0
    fallbacks: int = 0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    tokens_per_s: float | None = Field(
        default=None, description="Completion tokens per second of generation."
    )
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    deployments: list[DeploymentHealth] = Field(default_factory=list)


class UsageSummary(BaseModel):
    """Usage recorded in the database, grouped by one attribution key."""

    group_by: str
    rows: list[dict[str, Any]]


class EmbeddingRequest(BaseModel):
    model: str
    input: list[str] = Field(min_length=1, max_length=2048)
    metadata: dict[str, str] = Field(default_factory=dict)


class EmbeddingResult(BaseModel):
    model: str
    provider: str
    provider_model: str
    vectors: list[list[float]]
    prompt_tokens: int = 0
    latency_ms: float = 0.0
    cost_usd: float = 0.0


class ComponentHealth(BaseModel):
    ok: bool
    detail: str = ""


class ModelGateway(Protocol):
    """What other services may ask of the model service."""

    async def chat(self, request: ChatRequest) -> ChatResult: ...

    async def list_models(self) -> list[ModelInfo]: ...

    async def ready(self) -> ComponentHealth: ...


class EmbeddingGateway(Protocol):
    """Embeddings, for services that index or search text."""

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult: ...


class ModelUsageTotals(BaseModel):
    model: str
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    mean_latency_ms: float | None


class UsageStatistics(Protocol):
    """Aggregates over the model service's usage records for monitoring (read-only, one tenant at a time)."""

    async def totals_by_model(self, tenant: str) -> list[ModelUsageTotals]: ...

    async def recent_calls(self, tenant: str, limit: int) -> list[tuple[str, bool]]: ...


EMBED_BATCH = 64


async def embed_unit_vectors(
    gateway: EmbeddingGateway, model: str, texts: list[str], purpose: str
) -> np.ndarray:
    """Unit-length float32 vectors for `texts`, asked of `gateway` in batches it accepts."""
    vectors: list[list[float]] = []
    for start in range(0, len(texts), EMBED_BATCH):
        request = EmbeddingRequest(
            model=model, input=texts[start : start + EMBED_BATCH], metadata={"purpose": purpose}
        )
        vectors.extend((await gateway.embed(request)).vectors)
    matrix = np.asarray(vectors, dtype=np.float32)
    return matrix / np.clip(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12, None)
