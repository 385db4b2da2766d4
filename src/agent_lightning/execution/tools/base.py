"""What a tool is to the agent loop: its spec (what the model sees), how it runs, and how it fails.

A tool fails in one of two ways, and the difference matters to learning (docs "Agents and tools"):
`ToolMisuse` is the agent's fault (arguments that do not fit, code that raises, a host it may not fetch),
`ToolOutage` is not (the sandbox, the knowledge service or the MCP server cannot answer now).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

ToolErrorKind = Literal["misuse", "outage", "timeout", "denied"]
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ToolError(Exception):
    """A tool call that did not work; its message goes back to the model as the call's result."""

    kind: ToolErrorKind = "misuse"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ToolMisuse(ToolError):
    """The call was wrong: the agent's fault."""

    kind = "misuse"


class ToolOutage(ToolError):
    """The tool could not run: not the agent's fault."""

    kind = "outage"


class ToolDenied(ToolError):
    """The tenant's tool policy does not allow the tool (any more): not the agent's fault."""

    kind = "denied"


@dataclass(frozen=True)
class ToolSpec:
    """A tool as the model sees it (OpenAI function shape), with the permission that grants it."""

    name: str
    description: str
    parameters: dict[str, Any]
    permission: str = ""
    requires_approval: bool = False
    timeout_s: float | None = None

    def __post_init__(self) -> None:
        if not TOOL_NAME.match(self.name):
            raise ValueError(f"tool name {self.name!r} must match {TOOL_NAME.pattern}")
        if not self.permission:
            object.__setattr__(self, "permission", self.name)

    @property
    def names(self) -> tuple[str, str]:
        """The tool as a tenant's tool policy sees it: its name and its permission."""
        return (self.name, self.permission)

    def definition(self) -> dict[str, Any]:
        """The OpenAI `tools` entry."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


@dataclass
class ToolContext:
    """Who is calling: the task, the agent, the tenant, the conversation, and the task's scratch directory."""

    task_id: str
    execution_id: str
    tenant_id: str
    agent_id: str
    scratch: Path
    user_id: str | None = None
    session_id: str | None = None
    depth: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class Tool(Protocol):
    spec: ToolSpec

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> str:
        """The result as text for the model; raise `ToolMisuse` or `ToolOutage` when it does not work."""
        ...


def object_schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """A JSON schema of an object with these properties, nothing else allowed."""
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
