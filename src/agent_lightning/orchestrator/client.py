"""The orchestrator over HTTP: what the execution service uses in split mode to choose an agent."""

from __future__ import annotations

from agent_lightning.core.resilience import ServiceCaller
from agent_lightning.orchestrator.schemas import RoutePreview, RoutePreviewRequest


class OrchestratorClient:
    """Implements `Router` against a remote orchestrator."""

    def __init__(self, caller: ServiceCaller) -> None:
        self.caller = caller

    async def preview(self, request: RoutePreviewRequest) -> RoutePreview:
        response = await self.caller.request("POST", ["/route"], json=request.model_dump(mode="json"))
        return RoutePreview.model_validate(response.json())
