"""The agent registry over HTTP, for services running in another process."""

from __future__ import annotations

from agent_lightning.agents.schemas import Agent, AgentList, AgentStatus, ToolPolicy
from agent_lightning.core.resilience import ServiceCaller


class AgentsClient:
    """Implements `AgentRegistry` against a remote registry."""

    def __init__(self, caller: ServiceCaller) -> None:
        self.caller = caller

    async def get(self, agent_id: str, *, version: int | None = None) -> Agent:
        params = {"version": version} if version else None
        response = await self.caller.request("GET", [f"/api/v2/agents/{agent_id}"], params=params)
        return Agent.model_validate(response.json())

    async def list(self, *, status: AgentStatus | None = None) -> list[Agent]:
        params = {"status": status} if status else None
        response = await self.caller.request("GET", ["/api/v2/agents"], params=params)
        return AgentList.model_validate(response.json()).items

    async def tool_policy(self) -> ToolPolicy:
        response = await self.caller.request("GET", ["/api/v2/agents/tool-policy"])
        return ToolPolicy.model_validate(response.json())
