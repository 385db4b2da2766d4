"""The platform as an MCP server (official `mcp` SDK), so MCP clients (IDEs, desktop assistants) can use the
fleet: submit a task, get its status, result and steps, search the knowledge base, list the agents.

It is an adapter over the platform's own HTTP API, so authentication, tenancy, rate limits and intake
validation apply exactly as for any client: `alp mcp` serves it over stdio and calls `--url` with
`ALP_API_KEY`; the app mounts it at `/mcp` (streamable HTTP), where each call is made in-process with the
credential the MCP request came with.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings

from agent_lightning.agents.schemas import AgentStatus
from agent_lightning.orchestrator.schemas import TASK_FINISHED

FORWARDED = ("authorization", "x-api-key", "x-correlation-id")
POLL_S = 0.5

ApiFactory = Callable[[Context | None], httpx.AsyncClient]
"""An HTTP client on the platform's API for one call (carrying the caller's credential)."""


async def _call(api: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> Any:
    async with api:
        response = await api.request(method, path, **kwargs)
    if response.status_code >= 400:
        try:
            error = response.json()["error"]
            message = f"{error['code']}: {error['message']}"
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {response.status_code}"
        raise ToolError(message)
    return response.json()


def _task(task: dict[str, Any]) -> dict[str, Any]:
    keys = ("task_id", "status", "assigned_agent", "result", "error", "created_at", "finished_at")
    return {key: task.get(key) for key in keys}


def build_server(api: ApiFactory) -> MCPServer:
    server = MCPServer(
        "agent-lightning",
        instructions="Agent Lightning runs a fleet of AI agents: submit a task and the router picks the "
        "agent; poll task_status for its answer.",
    )

    @server.tool(
        description="Submit a task to the fleet; the routing policy picks the agent unless agent_id is "
        "given. With wait_seconds > 0, waits that long for the answer."
    )
    async def submit_task(
        description: str,
        agent_id: str | None = None,
        priority: int = 5,
        wait_seconds: float = 0.0,
        ctx: Context | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"description": description, "priority": priority}
        if agent_id:
            body["agent_id"] = agent_id
        assigned = await _call(api(ctx), "POST", "/assign-task", json=body)
        answer = {
            "task_id": assigned["task_id"],
            "assigned_agent": assigned["assigned_agent"],
            "status": assigned["status"],
            "reason": assigned["reason"],
        }
        deadline = asyncio.get_running_loop().time() + min(max(wait_seconds, 0.0), 600.0)
        while wait_seconds > 0 and asyncio.get_running_loop().time() < deadline:
            task = await _call(api(ctx), "GET", f"/tasks/{assigned['task_id']}")
            answer = _task(task)
            if task["status"] in TASK_FINISHED:
                break
            await asyncio.sleep(POLL_S)
        return answer

    @server.tool(description="The status of a task, with its answer (result) or error once it has finished.")
    async def task_status(task_id: str, ctx: Context | None = None) -> dict[str, Any]:
        return _task(await _call(api(ctx), "GET", f"/tasks/{task_id}"))

    @server.tool(
        description="The steps of a task's agent run: model calls and tool calls with their results."
    )
    async def task_steps(task_id: str, ctx: Context | None = None) -> list[dict[str, Any]]:
        log = await _call(api(ctx), "GET", f"/api/v2/actions/{task_id}")
        return [
            {
                key: step.get(key)
                for key in ("number", "kind", "name", "arguments", "status", "error", "output")
            }
            for step in log["steps"]
        ]

    @server.tool(description="Search the knowledge base; returns the best passages with their titles.")
    async def search_knowledge(query: str, k: int = 5, ctx: Context | None = None) -> list[dict[str, Any]]:
        found = await _call(
            api(ctx), "POST", "/knowledge/search", json={"query": query, "k": max(1, min(k, 20))}
        )
        return [
            {key: hit.get(key) for key in ("title", "heading", "text", "source", "score")}
            for hit in found["hits"]
        ]

    @server.tool(description="The active agents of the fleet: id, name, what they are for and their tools.")
    async def list_agents(ctx: Context | None = None) -> list[dict[str, Any]]:
        agents = await _call(api(ctx), "GET", "/api/v2/agents", params={"status": AgentStatus.ACTIVE})
        return [
            {key: agent.get(key) for key in ("id", "name", "description", "tools")}
            for agent in agents["items"]
        ]

    return server


def remote_api(url: str, api_key: str | None, timeout_s: float = 60.0) -> ApiFactory:
    """Calls to a running platform at `url` (what `alp mcp` uses)."""
    headers = {"X-API-Key": api_key} if api_key else {}
    return lambda ctx: httpx.AsyncClient(base_url=url.rstrip("/"), headers=headers, timeout=timeout_s)


def in_process_api(app: Any, timeout_s: float = 60.0) -> ApiFactory:
    """Calls into `app` itself, with the credential (and correlation id) of the MCP request being served."""

    def factory(ctx: Context | None) -> httpx.AsyncClient:
        incoming = (ctx.headers if ctx is not None else None) or {}
        headers = {key: value for key, value in incoming.items() if key.lower() in FORWARDED}
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://alp", headers=headers, timeout=timeout_s
        )

    return factory


def mounted(server: MCPServer):
    """The streamable HTTP app to mount (the platform checks hosts and credentials itself)."""
    security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    return server.streamable_http_app(
        streamable_http_path="/", transport_security=security, stateless_http=True
    )
