"""The memory service over HTTP: the `MemoryStore` the execution service uses in split mode."""

from __future__ import annotations

from agent_lightning.core.resilience import ServiceCaller
from agent_lightning.memory.schemas import (
    ContextRequest,
    Exchange,
    ExchangeResult,
    MemoryContext,
    MemoryCreate,
    MemoryOp,
    MemorySearch,
    Recalled,
)


class MemoryClient:
    """Implements `MemoryStore` against a remote memory service."""

    def __init__(self, caller: ServiceCaller) -> None:
        self.caller = caller

    async def build_context(self, request: ContextRequest) -> MemoryContext:
        response = await self.caller.request(
            "POST", ["/memory/context"], json=request.model_dump(mode="json")
        )
        return MemoryContext.model_validate(response.json())

    async def record_exchange(self, exchange: Exchange) -> ExchangeResult:
        response = await self.caller.request(
            "POST", ["/memory/exchanges"], json=exchange.model_dump(mode="json")
        )
        return ExchangeResult.model_validate(response.json())

    async def add_memory(self, body: MemoryCreate) -> MemoryOp:
        response = await self.caller.request("POST", ["/memory/memories"], json=body.model_dump(mode="json"))
        return MemoryOp.model_validate(response.json())

    async def search(self, request: MemorySearch) -> list[Recalled]:
        response = await self.caller.request(
            "POST", ["/memory/memories/search"], json=request.model_dump(mode="json")
        )
        return [Recalled.model_validate(item) for item in response.json()]

    async def delete_memory(self, memory_id: str) -> None:
        await self.caller.request("DELETE", [f"/memory/memories/{memory_id}"])
