"""Wire contract of the agent registry and the interface other services depend on."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

AgentStatus = Literal["draft", "active", "retired"]
AGENT_ID_PATTERN = r"^[a-z][a-z0-9_-]{1,63}$"
RESERVED_IDS = {"execute", "list"}


def _clean_words(values: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for value in values:
        word = value.strip().lower()
        if word:
            seen.setdefault(word, None)
    return list(seen)


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
    weak_keywords: list[str] = Field(default_factory=list, max_length=200, description="Keywords it is bad at.")
    tools: list[str] = Field(default_factory=list, max_length=50)

    @field_validator("system_prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("capabilities", "expertise", "weak_keywords", "tools")
    @classmethod
    def _words(cls, values: list[str]) -> list[str]:
        return _clean_words(values)


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


class AgentCreate(AgentSpec):
    id: str = Field(pattern=AGENT_ID_PATTERN)
    name: str = Field(min_length=1, max_length=120)
    role: str = Field(default="custom", min_length=1, max_length=64)
    description: str = Field(default="", max_length=2000)
    status: Literal["draft", "active"] = "active"

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
    status: Literal["draft", "active"] = "active"


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


class AgentRegistry(Protocol):
    """What other services may ask of the agent registry."""

    async def get(self, agent_id: str, *, version: int | None = None) -> Agent: ...

    async def list(self, *, status: AgentStatus | None = None) -> list[Agent]: ...
