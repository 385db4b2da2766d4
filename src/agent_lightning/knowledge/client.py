"""The knowledge service over HTTP: the `KnowledgeBase` other processes use in split mode."""

from __future__ import annotations

from agent_lightning.core.resilience import ServiceCaller
from agent_lightning.knowledge.schemas import (
    ContextRequest,
    KnowledgeContext,
    LearnRequest,
    LearnResult,
    SearchRequest,
    SearchResult,
)


class KnowledgeClient:
    """Implements `KnowledgeBase` against a remote knowledge service."""

    def __init__(self, caller: ServiceCaller) -> None:
        self.caller = caller

    async def context(self, request: ContextRequest) -> KnowledgeContext:
        response = await self.caller.request(
            "POST", ["/knowledge/context"], json=request.model_dump(mode="json")
        )
        return KnowledgeContext.model_validate(response.json())

    async def search(self, request: SearchRequest) -> SearchResult:
        response = await self.caller.request(
            "POST", ["/knowledge/search"], json=request.model_dump(mode="json")
        )
        return SearchResult.model_validate(response.json())

    async def learn(self, request: LearnRequest) -> LearnResult:
        response = await self.caller.request(
            "POST", ["/knowledge/learn"], json=request.model_dump(mode="json")
        )
        return LearnResult.model_validate(response.json())
