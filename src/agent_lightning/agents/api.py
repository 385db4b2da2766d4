"""HTTP routes of the agent registry (served under /api/v2/agents)."""

from __future__ import annotations

from fastapi import APIRouter, Query

from agent_lightning.agents.schemas import (
    Agent,
    AgentCreate,
    AgentList,
    AgentSpecialize,
    AgentStatus,
    AgentUpdate,
    ToolPolicy,
)
from agent_lightning.agents.service import AgentService
from agent_lightning.core.bounds import MAX_VERSION
from agent_lightning.core.http import ERROR_RESPONSES


def router(agents: AgentService) -> APIRouter:
    api = APIRouter(prefix="/api/v2/agents", tags=["agents"], responses=ERROR_RESPONSES)

    @api.get("", response_model=AgentList, summary="List agents")
    async def list_agents(status: AgentStatus | None = Query(default=None)) -> AgentList:
        return AgentList(items=await agents.list(status=status))

    @api.post("", response_model=Agent, status_code=201, summary="Create an agent")
    async def create_agent(body: AgentCreate) -> Agent:
        return await agents.create(body)

    @api.get("/tool-policy", response_model=ToolPolicy, summary="Your tenant's tool policy")
    async def tool_policy() -> ToolPolicy:
        return await agents.tool_policy()

    @api.put(
        "/tool-policy",
        response_model=ToolPolicy,
        summary="Set which tool permissions your tenant's agents may have (admin)",
        description="An agent asking for a denied tool is a 422 tool_denied; an agent holding one already "
        "has every call of it denied (a step with error_kind denied).",
    )
    async def set_tool_policy(body: ToolPolicy) -> ToolPolicy:
        return await agents.set_tool_policy(body)

    @api.get("/{agent_id}", response_model=Agent, summary="Get an agent (current or given version)")
    async def get_agent(
        agent_id: str, version: int | None = Query(default=None, ge=1, le=MAX_VERSION)
    ) -> Agent:
        return await agents.get(agent_id, version=version)

    @api.patch("/{agent_id}", response_model=Agent, summary="Update an agent (a new version)")
    async def update_agent(agent_id: str, body: AgentUpdate) -> Agent:
        return await agents.update(agent_id, body)

    @api.get("/{agent_id}/versions", response_model=AgentList, summary="Every version of an agent")
    async def agent_versions(agent_id: str) -> AgentList:
        return AgentList(items=await agents.versions(agent_id))

    @api.post("/{agent_id}/specialize", response_model=Agent, status_code=201, summary="Derive a new agent")
    async def specialize_agent(agent_id: str, body: AgentSpecialize) -> Agent:
        return await agents.specialize(agent_id, body)

    @api.post("/{agent_id}/activate", response_model=Agent, summary="Move a draft agent to active")
    async def activate_agent(agent_id: str) -> Agent:
        return await agents.set_status(agent_id, AgentStatus.ACTIVE)

    @api.post("/{agent_id}/retire", response_model=Agent, summary="Retire an agent (never assigned again)")
    async def retire_agent(agent_id: str) -> Agent:
        return await agents.set_status(agent_id, AgentStatus.RETIRED)

    return api
