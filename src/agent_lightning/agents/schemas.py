"""Wire contract of the agent registry and the interface other services depend on."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class AgentStatus(StrEnum):
    """An agent's place in its lifecycle: drafted, routed to while active, kept for the record once
    retired."""

    DRAFT = "draft"
    ACTIVE = "active"
    RETIRED = "retired"


ToolChoice = Literal["auto", "required"]
MCP_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
AGENT_ID_PATTERN = r"^[a-z][a-z0-9_-]{1,63}$"
RESERVED_IDS = {"execute", "list", "tool-policy"}
TOOL_PERMISSION_PATTERN = r"^(mcp:[a-z][a-z0-9_-]{0,31}(/[^\s/]{1,64})?|[a-z][a-z0-9_]{0,63})$"


def _clean_words(values: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for value in values:
        word = value.strip().lower()
        if word:
            seen.setdefault(word, None)
    return list(seen)


class McpServer(BaseModel):
    """An MCP server whose tools the agent may call: a command run over stdio, or a streamable HTTP URL.

    A command must be one the operator allows (`ALP_MCP_STDIO_COMMANDS`); a URL goes through the outbound
    guard. Header values are never stored here: each header names an operator secret.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=MCP_NAME_PATTERN, description="Its tools are granted as mcp:NAME or mcp:NAME/TOOL."
    )
    command: list[str] | None = Field(
        default=None, min_length=1, max_length=50, description="argv of a stdio server."
    )
    url: str | None = Field(default=None, max_length=2000, description="A streamable HTTP endpoint.")
    headers: dict[str, str] = Field(
        default_factory=dict,
        max_length=20,
        description="Header name → name of an operator secret holding its value.",
    )
    timeout_s: float = Field(default=30.0, gt=0, le=600, description="Per call.")

    @model_validator(mode="after")
    def _one_transport(self) -> McpServer:
        if (self.command is None) == (self.url is None):
            raise ValueError("give either command or url")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError("url must be http:// or https://")
        if self.headers and self.command is not None:
            raise ValueError("headers apply to url servers only")
        return self


class AgentSpec(BaseModel):
    """The versioned part of an agent: changing any of it makes a new version."""

    model_config = ConfigDict(extra="forbid")

    system_prompt: str = Field(min_length=1, max_length=20_000)
    model: str = Field(default="local", min_length=1, max_length=120)
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(default=512, ge=1, le=32_768)
    base_confidence: float = Field(
        default=0.8, ge=0.0, le=1.0, description="Fit for a task that matches its expertise well."
    )
    generalist: bool = Field(default=False, description="Fits any task at base_confidence, keywords or not.")
    capabilities: list[str] = Field(default_factory=list, max_length=50)
    expertise: list[str] = Field(default_factory=list, max_length=200, description="Keywords it is good at.")
    weak_keywords: list[str] = Field(
        default_factory=list, max_length=200, description="Keywords it is bad at."
    )
    tools: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Tool permissions: built-in tools (knowledge_search, memory, http_fetch, python, "
        "delegate), mcp:SERVER or mcp:SERVER/TOOL.",
    )
    require_approval: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Tool permissions (or tool names) whose calls wait for a person.",
    )
    mcp_servers: list[McpServer] = Field(default_factory=list, max_length=10)
    max_steps: int = Field(default=6, ge=1, le=50, description="Model calls per run before it must answer.")
    tool_choice: ToolChoice = Field(
        default="auto", description="required: the first model call must call a tool."
    )

    @field_validator("system_prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("capabilities", "expertise", "weak_keywords", "tools", "require_approval")
    @classmethod
    def _words(cls, values: list[str]) -> list[str]:
        return _clean_words(values)

    @field_validator("mcp_servers")
    @classmethod
    def _unique_servers(cls, servers: list[McpServer]) -> list[McpServer]:
        names = [s.name for s in servers]
        if len(set(names)) != len(names):
            raise ValueError("MCP server names must be unique")
        return servers


class SpecOverrides(BaseModel):
    """A partial spec: only the fields given change."""

    model_config = ConfigDict(extra="forbid")

    system_prompt: str | None = Field(default=None, min_length=1, max_length=20_000)
    model: str | None = Field(default=None, min_length=1, max_length=120)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, ge=1, le=32_768)
    base_confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    generalist: bool | None = None
    capabilities: list[str] | None = None
    expertise: list[str] | None = None
    weak_keywords: list[str] | None = None
    tools: list[str] | None = None
    require_approval: list[str] | None = None
    mcp_servers: list[McpServer] | None = None
    max_steps: int | None = Field(default=None, ge=1, le=50)
    tool_choice: ToolChoice | None = None


class AgentCreate(AgentSpec):
    id: str = Field(pattern=AGENT_ID_PATTERN)
    name: str = Field(min_length=1, max_length=120)
    role: str = Field(default="custom", min_length=1, max_length=64)
    description: str = Field(default="", max_length=2000)
    status: Literal[AgentStatus.DRAFT, AgentStatus.ACTIVE] = AgentStatus.ACTIVE

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_IDS:
            raise ValueError(f"'{value}' is reserved")
        return value


class AgentUpdate(SpecOverrides):
    name: str | None = Field(default=None, min_length=1, max_length=120)
    role: str | None = Field(default=None, min_length=1, max_length=64)
    description: str | None = Field(default=None, max_length=2000)


class AgentSpecialize(SpecOverrides):
    """Derive a new agent from a parent: everything is inherited except the overrides."""

    id: str = Field(pattern=AGENT_ID_PATTERN)
    name: str = Field(min_length=1, max_length=120)
    description: str | None = Field(default=None, max_length=2000)
    status: Literal[AgentStatus.DRAFT, AgentStatus.ACTIVE] = AgentStatus.ACTIVE


class Agent(AgentSpec):
    """An agent at one version."""

    model_config = ConfigDict(extra="ignore", from_attributes=True)

    id: str
    name: str
    role: str
    description: str
    status: AgentStatus
    version: int
    parent_id: str | None = None
    created_at: datetime
    updated_at: datetime


class AgentList(BaseModel):
    items: list[Agent]


ToolPermission = Annotated[str, Field(pattern=TOOL_PERMISSION_PATTERN, max_length=100)]


class ToolPolicy(BaseModel):
    """Which tool permissions the agents of one tenant may have (docs "Agents and tools"): a built-in
    permission (`python`) or tool name (`memory_recall`), `mcp:SERVER` for every tool of a server, or
    `mcp:SERVER/TOOL` for one. `deny` wins over `allow`; `allow` null allows whatever is not denied."""

    model_config = ConfigDict(extra="forbid")

    allow: list[ToolPermission] | None = Field(
        default=None,
        max_length=200,
        description="Only these permissions (and the tools under them) may be granted; null: any not denied.",
    )
    deny: list[ToolPermission] = Field(
        default_factory=list,
        max_length=200,
        description="These permissions (and the tools under them) never.",
    )

    @field_validator("allow", "deny")
    @classmethod
    def _unique(cls, values: list[str] | None) -> list[str] | None:
        return None if values is None else sorted({value.lower() for value in values})

    def allows(self, names: Iterable[str]) -> bool:
        """Whether a grant known by `names` (a permission, the tool's name, its built-in permission) may be
        used: none of them, nor the `mcp:SERVER` of an MCP one, is denied, and one of them is allowed."""
        covered = set()
        for name in names:
            covered |= {name.lower(), name.lower().split("/", 1)[0]}
        if covered & set(self.deny):
            return False
        return self.allow is None or bool(covered & set(self.allow))


class AgentRegistry(Protocol):
    """What other services may ask of the agent registry."""

    async def get(self, agent_id: str, *, version: int | None = None) -> Agent: ...

    async def list(self, *, status: AgentStatus | None = None) -> list[Agent]: ...

    async def tool_policy(self) -> ToolPolicy:
        """The current tenant's tool policy."""
        ...
