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
)
from agent_lightning.agents.service import AgentService
from agent_lightning.core.http import ERROR_RESPONSES


def router(agents: AgentService) -> APIRouter:
    api = APIRouter(prefix="/api/v2/agents", tags=["agents"], responses=ERROR_RESPONSES)

    @api.get("", response_model=AgentList, summary="List agents")
    async def list_agents(status: AgentStatus | None = Query(default=None)) -> AgentList:
        return AgentList(items=await agents.list(status=status))

    @api.post("", response_model=Agent, status_code=201, summary="Create an agent")
    async def create_agent(body: AgentCreate) -> Agent:
        return await agents.create(body)

    @api.get("/{agent_id}", response_model=Agent, summary="Get an agent (current or given version)")
    async def get_agent(agent_id: str, version: int | None = Query(default=None, ge=1)) -> Agent:
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
        return await agents.set_status(agent_id, "active")

    @api.post("/{agent_id}/retire", response_model=Agent, summary="Retire an agent (never assigned again)")
    async def retire_agent(agent_id: str) -> Agent:
        return await agents.set_status(agent_id, "retired")

    return api
