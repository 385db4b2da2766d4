"""The model service over HTTP: the `ModelGateway` (and embeddings) that other services use in split mode.

Retries with backoff and jitter, a circuit breaker and replica rotation come from `ServiceCaller`."""

from __future__ import annotations

from agent_lightning.core.resilience import ServiceCaller
from agent_lightning.models.schemas import (
    ChatRequest,
    ChatResult,
    ComponentHealth,
    EmbeddingRequest,
    EmbeddingResult,
    ModelInfo,
)

DEFAULT_TIMEOUT_S = 120.0


class ModelsClient:
    """Implements `ModelGateway` and `EmbeddingGateway` against a remote models service."""

    def __init__(self, caller: ServiceCaller) -> None:
        self.caller = caller

    async def chat(self, request: ChatRequest) -> ChatResult:
        timeout = (request.timeout_s or DEFAULT_TIMEOUT_S) + 5.0
        response = await self.caller.request(
            "POST", ["/inference/chat"], json=request.model_dump(mode="json"), timeout_s=timeout
        )
        return ChatResult.model_validate(response.json())

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        response = await self.caller.request(
            "POST", ["/inference/embeddings"], json=request.model_dump(mode="json")
        )
        return EmbeddingResult.model_validate(response.json())

    async def list_models(self) -> list[ModelInfo]:
        response = await self.caller.request("GET", ["/models"])
        return [ModelInfo.model_validate(item) for item in response.json()["items"]]

    async def ready(self) -> ComponentHealth:
        try:
            response = await self.caller.request("GET", ["/inference/ready"])
        except Exception as exc:
            return ComponentHealth(ok=False, detail=f"models service: {type(exc).__name__}")
        return ComponentHealth.model_validate(response.json())
