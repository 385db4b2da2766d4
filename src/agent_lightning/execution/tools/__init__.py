"""Tools agents call during a run (docs "Agents and tools"): built-in ones and those of MCP servers."""

from __future__ import annotations

from agent_lightning.core.config import Settings
from agent_lightning.core.egress import EgressGuard
from agent_lightning.execution.tools.base import Tool
from agent_lightning.execution.tools.delegate import Delegate
from agent_lightning.execution.tools.http_fetch import HttpFetch
from agent_lightning.execution.tools.knowledge import KnowledgeSearch
from agent_lightning.execution.tools.mcp_client import McpConnector
from agent_lightning.execution.tools.memory import MemoryForget, MemoryRecall, MemoryRemember
from agent_lightning.execution.tools.python import PythonSandbox
from agent_lightning.knowledge.schemas import KnowledgeBase
from agent_lightning.memory.schemas import MemoryStore
from agent_lightning.orchestrator.schemas import TaskGateway
from agent_lightning.secrets.schemas import SecretResolver


def builtin_tools(
    settings: Settings, *, knowledge: KnowledgeBase | None, memory: MemoryStore | None
) -> list[Tool]:
    """The built-in tools this process can offer (those whose service is reachable from it)."""
    tools: list[Tool] = [
        HttpFetch(
            EgressGuard(settings.egress_allow),
            hosts=settings.http_fetch_hosts,
            max_bytes=settings.http_fetch_max_bytes,
            timeout_s=settings.http_fetch_timeout_s,
        ),
        PythonSandbox(
            interpreter=settings.sandbox_python,
            cpu_s=settings.sandbox_cpu_s,
            memory_mb=settings.sandbox_memory_mb,
            wall_s=settings.sandbox_wall_s,
            output_bytes=settings.sandbox_output_bytes,
        ),
    ]
    if knowledge is not None:
        tools.append(KnowledgeSearch(knowledge))
    if memory is not None:
        tools += [MemoryRemember(memory), MemoryRecall(memory), MemoryForget(memory)]
    return tools


def delegate_tool(settings: Settings, tasks: TaskGateway) -> Tool:
    """The delegate tool over the orchestrator's task intake (in-process, or over HTTP in split mode)."""
    return Delegate(
        tasks,
        max_depth=settings.delegate_max_depth,
        max_fanout=settings.delegate_max_fanout,
        timeout_s=settings.delegate_timeout_s,
    )


def mcp_connector(settings: Settings, secrets: SecretResolver) -> McpConnector:
    """Connects agents' MCP servers: stdio commands from the operator's allow-list, header values from the
    tenant's secrets, URLs through the outbound guard."""
    return McpConnector(
        stdio_commands=settings.mcp_stdio_commands, secrets=secrets, guard=EgressGuard(settings.egress_allow)
    )
