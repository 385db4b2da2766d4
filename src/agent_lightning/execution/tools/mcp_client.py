"""MCP servers as tool sources (official `mcp` SDK): an agent's `mcp_servers` are connected for the length of
a run, their tools listed with the servers' own schemas and offered to the model as `SERVER__TOOL`.

A stdio server is a command the operator allowed (`ALP_MCP_STDIO_COMMANDS`: the programs, by path, that an
agent may start); a streamable HTTP server's URL goes through the outbound guard, and its header values are
secrets of the agent's tenant in the secrets store, named: an agent never holds a credential.
"""

from __future__ import annotations

import re
from contextlib import AsyncExitStack
from typing import Any

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from agent_lightning.agents.schemas import Agent, AgentSpec, McpServer
from agent_lightning.core.egress import EgressDenied, EgressGuard
from agent_lightning.core.errors import Invalid, NotFound
from agent_lightning.core.logging import get_logger
from agent_lightning.core.tenancy import current_tenant
from agent_lightning.execution.tools.base import ToolContext, ToolMisuse, ToolOutage, ToolSpec
from agent_lightning.secrets.schemas import SecretResolver

log = get_logger(__name__)

PREFIX = "mcp:"


def model_name(server: str, tool: str) -> str:
    """The name the model calls a server's tool by (OpenAI allows [A-Za-z0-9_-]{1,64})."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", f"{server}__{tool}")[:64]


def _text(content: list[Any]) -> str:
    parts = []
    for block in content:
        kind = getattr(block, "type", "")
        parts.append(block.text if kind == "text" else f"[{kind} content]")
    return "\n".join(parts)


def _describe(exc: BaseException) -> str:
    """The innermost errors of an exception (group), as `Type: message`."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(inner) for inner in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


class McpTool:
    """One tool of a connected MCP server."""

    def __init__(
        self, client: Client, server: McpServer, name: str, description: str, schema: dict[str, Any]
    ) -> None:
        self.client = client
        self.tool = name
        self.spec = ToolSpec(
            name=model_name(server.name, name),
            description=description or name,
            parameters=schema or {"type": "object", "properties": {}},
            permission=f"{PREFIX}{server.name}/{name}",
            timeout_s=server.timeout_s,
        )

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> str:
        try:
            result = await self.client.call_tool(self.tool, arguments)
        except Exception as exc:
            raise ToolOutage(f"The MCP server did not answer ({_describe(exc)}).") from exc
        text = _text(result.content)
        if result.is_error:
            raise ToolMisuse(text or "The MCP tool reported an error.")
        return text or "(no content)"


class McpConnector:
    def __init__(self, *, stdio_commands: list[str], secrets: SecretResolver, guard: EgressGuard) -> None:
        self.stdio_commands = set(stdio_commands)
        self.secrets = secrets
        self.guard = guard

    async def check(self, spec: AgentSpec) -> None:
        for server in spec.mcp_servers:
            if server.command is not None and server.command[0] not in self.stdio_commands:
                raise Invalid(
                    f"MCP server '{server.name}': the command {server.command[0]!r} is not one the operator "
                    "allows.",
                    code="mcp_command_not_allowed",
                    details={"allowed": sorted(self.stdio_commands)},
                )
            missing = [name for name in server.headers.values() if await self._secret(name) is None]
            if missing:
                raise Invalid(
                    f"MCP server '{server.name}': unknown secret(s) {', '.join(missing)}.",
                    code="unknown_secret",
                    details={"missing": missing},
                )

    async def open(self, agent: Agent, granted: set[str], stack: AsyncExitStack) -> list[McpTool]:
        tools: list[McpTool] = []
        for server in agent.mcp_servers:
            whole = f"{PREFIX}{server.name}" in granted
            single = {p.split("/", 1)[1] for p in granted if p.startswith(f"{PREFIX}{server.name}/")}
            if not whole and not single:
                continue
            try:
                client = await stack.enter_async_context(await self._client(server))
                listed = await client.list_tools()
            except Exception as exc:  # the run goes on without this server's tools
                log.warning("mcp_server_unavailable", server=server.name, error=_describe(exc))
                continue
            tools += [
                McpTool(client, server, t.name, t.description or "", t.input_schema)
                for t in listed.tools
                if whole or t.name in single
            ]
        return tools

    async def _client(self, server: McpServer) -> Client:
        if server.command is not None:
            if server.command[0] not in self.stdio_commands:  # the allow-list may have shrunk since
                raise EgressDenied(f"The command {server.command[0]!r} is not allowed.")
            return Client(
                StdioServerParameters(command=server.command[0], args=server.command[1:]),
                read_timeout_seconds=server.timeout_s,
            )
        await self.guard.check(server.url)
        headers = {header: await self._secret(secret) or "" for header, secret in server.headers.items()}
        http = httpx2.AsyncClient(headers=headers, timeout=server.timeout_s)
        return Client(
            streamable_http_client(server.url, http_client=http), read_timeout_seconds=server.timeout_s
        )

    async def _secret(self, name: str) -> str | None:
        try:
            return await self.secrets.reveal(name, tenant_id=current_tenant())
        except NotFound:
            return None
