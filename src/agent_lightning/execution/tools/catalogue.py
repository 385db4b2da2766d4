"""The platform's tools and who may use them.

An agent lists tool permissions (`tools`): a built-in tool's permission (`knowledge_search`, `memory`,
`http_fetch`, `python`, `delegate`), `mcp:SERVER` for every tool of one of its MCP servers or
`mcp:SERVER/TOOL` for one. The operator can turn permissions off for everyone (`ALP_TOOLS_DISABLED`), a
tenant's admin for the tenant's agents (its `ToolPolicy`: an agent that asks for a denied tool is a 422).
A run gets the tools its agent is granted and nobody turned off, each call checked again against the tenant's
policy when it is made (a denied call is a step with error_kind `denied`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Protocol

from agent_lightning.agents.schemas import Agent, AgentSpec, ToolPolicy
from agent_lightning.core.config import Settings
from agent_lightning.core.errors import Invalid
from agent_lightning.core.logging import get_logger
from agent_lightning.execution.tools.base import Tool, ToolContext
from agent_lightning.execution.tools.toolbox import Toolbox

log = get_logger(__name__)

MCP_PREFIX = "mcp:"
BUILTIN: dict[str, tuple[str, ...]] = {
    "knowledge_search": ("knowledge_search",),
    "memory": ("memory_remember", "memory_recall", "memory_forget"),
    "http_fetch": ("http_fetch",),
    "python": ("python",),
    "delegate": ("delegate",),
}
"""Every built-in permission and the tools it grants, whether or not this process can offer them now (a
process without the knowledge service offers no knowledge_search, yet an agent may still be granted it)."""


class McpTools(Protocol):
    """Connects to an agent's MCP servers for one run and hands back their tools."""

    async def open(self, agent: Agent, granted: set[str], stack: AsyncExitStack) -> list[Tool]: ...

    async def check(self, spec: AgentSpec) -> None:
        """Raise `Invalid` when a server of the spec may not be used (a command the operator did not
        allow)."""
        ...


class ToolCatalogue:
    def __init__(self, settings: Settings, tools: list[Tool], *, mcp: McpTools | None = None) -> None:
        self.settings = settings
        self.builtin = {tool.spec.name: tool for tool in tools}
        self.mcp = mcp

    def add(self, tool: Tool) -> None:
        """Offer one more built-in tool (the delegate tool, once the orchestrator is wired)."""
        self.builtin[tool.spec.name] = tool

    @property
    def permissions(self) -> set[str]:
        """The permission names of the built-in tools."""
        return set(BUILTIN)

    @property
    def _known(self) -> set[str]:
        return self.permissions | set(_PERMISSION_OF)

    async def check(self, spec: AgentSpec, policy: ToolPolicy | None = None) -> None:
        """Raise `Invalid` for a permission that names no tool the agent could have (422 unknown_tool), or
        one its tenant's `policy` denies (422 tool_denied)."""
        servers = {server.name for server in spec.mcp_servers}
        unknown = []
        for permission in [*spec.tools, *spec.require_approval]:
            if permission.startswith(MCP_PREFIX):
                if permission[len(MCP_PREFIX) :].split("/", 1)[0] not in servers:
                    unknown.append(permission)
            elif permission not in self._known:
                unknown.append(permission)
        if unknown:
            raise Invalid(
                f"Unknown tool permission(s): {', '.join(sorted(set(unknown)))}.",
                code="unknown_tool",
                details={
                    "unknown": sorted(set(unknown)),
                    "builtin": sorted(self.permissions),
                    "mcp_servers": sorted(servers),
                },
            )
        denied = sorted(p for p in spec.tools if policy is not None and not policy.allows(_names(p)))
        if denied:
            raise Invalid(
                f"Your tenant's tool policy does not allow: {', '.join(denied)}.",
                code="tool_denied",
                details={"denied": denied, "policy": policy.model_dump() if policy else None},
            )
        if spec.mcp_servers and self.mcp is not None:
            await self.mcp.check(spec)

    def check_policy(self, policy: ToolPolicy) -> None:
        """Raise `Invalid` (422 unknown_tool) for a built-in name in `policy` that names no tool."""
        unknown = sorted(
            p
            for p in [*(policy.allow or ()), *policy.deny]
            if not p.startswith(MCP_PREFIX) and p not in self._known
        )
        if unknown:
            raise Invalid(
                f"Unknown tool permission(s): {', '.join(unknown)}.",
                code="unknown_tool",
                details={"unknown": unknown, "builtin": sorted(self.permissions)},
            )

    def granted(self, agent: Agent) -> set[str]:
        """The agent's permissions less those the operator turned off."""
        disabled = set(self.settings.tools_disabled)
        return {p for p in agent.tools if p not in disabled and p.split("/", 1)[0] not in disabled}

    @asynccontextmanager
    async def toolbox(
        self,
        agent: Agent,
        context: ToolContext,
        policy: Callable[[], Awaitable[ToolPolicy]] | None = None,
    ) -> AsyncIterator[Toolbox]:
        """The tools of one run (MCP servers connected for its duration); with the tenant's `policy`, the
        tools it denies are not offered to the model, and every call is checked against it when it is made."""
        granted = self.granted(agent)
        tools = [
            tool
            for tool in self.builtin.values()
            if tool.spec.permission in granted or tool.spec.name in granted
        ]
        async with AsyncExitStack() as stack:
            if self.mcp is not None and any(p.startswith(MCP_PREFIX) for p in granted):
                tools += await self.mcp.open(agent, granted, stack)
            yield Toolbox(
                tools,
                timeout_s=self.settings.tool_timeout_s,
                result_chars=self.settings.tool_result_chars,
                approval=frozenset(agent.require_approval),
                policy=policy,
                denied=await _denied(tools, policy),
            )


_PERMISSION_OF = {name: permission for permission, names in BUILTIN.items() for name in names}


def _names(grant: str) -> tuple[str, ...]:
    """A grant as a policy sees it: itself, and the built-in permission of a tool name (memory_recall →
    memory)."""
    return (grant, _PERMISSION_OF[grant]) if grant in _PERMISSION_OF else (grant,)


async def _denied(tools: list[Tool], policy: Callable[[], Awaitable[ToolPolicy]] | None) -> frozenset[str]:
    if policy is None:
        return frozenset()
    current = await policy()
    return frozenset(tool.spec.name for tool in tools if not current.allows(tool.spec.names))
