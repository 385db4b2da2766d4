"""Wire contract of the memory service and the interface the execution service depends on."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

MemoryKind = Literal["episodic", "semantic", "working"]
Role = Literal["user", "assistant", "system"]
SESSION_ID = r"^[A-Za-z0-9_.:-]{1,64}$"
TEN_YEARS_S = 10 * 365 * 86400


class SessionCreate(BaseModel):
    user_id: str = Field(min_length=1, max_length=128)
    agent_id: str = Field(default="", max_length=64)
    title: str = Field(default="", max_length=300)
    id: str | None = Field(default=None, pattern=SESSION_ID, description="Choose the id, or get a new one.")


class Message(BaseModel):
    role: Role
    content: str = Field(min_length=1, max_length=100_000)
    seq: int | None = Field(default=None, ge=0, le=2**63 - 1)
    created_at: datetime | None = None


class Session(BaseModel):
    id: str
    user_id: str
    agent_id: str
    title: str
    summary: str
    messages: int
    created_at: datetime
    updated_at: datetime


class SessionDetail(Session):
    recent: list[Message]


class MessagesAppend(BaseModel):
    messages: list[Message] = Field(min_length=1, max_length=200)


class MemoryCreate(BaseModel):
    user_id: str = Field(min_length=1, max_length=128)
    kind: MemoryKind = "semantic"
    content: str = Field(min_length=1, max_length=5000)
    agent_id: str | None = Field(default=None, max_length=64)
    session_id: str | None = None
    ttl_s: float | None = Field(
        default=None, gt=0, le=TEN_YEARS_S, description="Working memory lifetime; default from settings."
    )


class Memory(BaseModel):
    id: str
    user_id: str
    agent_id: str | None
    session_id: str | None
    kind: MemoryKind
    content: str
    relevance: float
    access_count: int
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = None


class MemoryOp(BaseModel):
    """What storing a memory did: semantic facts are added, update an older fact, delete one, or are
    ignored."""

    op: Literal["add", "update", "delete", "ignore"]
    memory: Memory | None = None
    replaced: str | None = Field(default=None, description="The content an update or delete replaced.")
    also_forgotten: int = Field(
        default=0,
        description="Other memories (any kind), summaries and messages that held the value a delete forgot "
        "(all removed; messages redacted) or an update replaced (episodic and working memories removed, "
        "summaries cleaned).",
    )


class MemorySearch(BaseModel):
    user_id: str
    query: str = Field(min_length=1, max_length=5000)
    k: int = Field(default=5, ge=1, le=50)
    agent_id: str | None = None
    kinds: list[MemoryKind] | None = None


class Recalled(BaseModel):
    memory: Memory
    similarity: float


class ContextRequest(BaseModel):
    """What the execution service asks before running a task in a conversation."""

    user_id: str | None = Field(default=None, max_length=128)
    session_id: str | None = Field(default=None, pattern=SESSION_ID)
    agent_id: str = ""
    query: str = Field(min_length=1)
    budget_tokens: int = Field(default=800, ge=0, le=64000)


class MemoryContext(BaseModel):
    session_id: str
    user_id: str
    summary: str = ""
    turns: list[Message] = Field(default_factory=list, description="Recent turns, oldest first.")
    memories: list[Recalled] = Field(default_factory=list)
    text: str = Field(
        default="", description="Summary and recalled memories, rendered for the system prompt."
    )
    tokens: int = 0

    def used(self) -> dict[str, Any]:
        """What an attempt records about the memory it was given."""
        return {
            "session_id": self.session_id,
            "user_id": self.user_id,
            "turns": len(self.turns),
            "summary": bool(self.summary),
            "memories": [r.memory.id for r in self.memories],
            "tokens": self.tokens,
        }


class Exchange(BaseModel):
    """One finished turn of a conversation, recorded after the agent answered."""

    session_id: str = Field(pattern=SESSION_ID)
    user_id: str = Field(min_length=1, max_length=128)
    agent_id: str = Field(default="", max_length=64)
    user: str = Field(
        min_length=1, max_length=100_000, description="What the user said (a stored message: not empty)."
    )
    assistant: str = Field(
        min_length=1, max_length=100_000, description="What the agent answered (not empty)."
    )
    task_id: str | None = Field(default=None, max_length=64)


class ExchangeResult(BaseModel):
    facts: list[MemoryOp]
    summarized: bool


class Deleted(BaseModel):
    id: str
    deleted: bool = True


class PruneRequest(BaseModel):
    max_age_days: float | None = Field(default=None, gt=0, le=36500)
    max_per_user: int | None = Field(default=None, ge=0, le=1_000_000_000)
    min_relevance: float | None = Field(default=None, ge=0, le=1000)


class PruneResult(BaseModel):
    expired: int
    aged: int
    over_size: int
    irrelevant: int


class UserExport(BaseModel):
    user_id: str
    sessions: list[dict[str, Any]]
    memories: list[Memory]


class EraseResult(BaseModel):
    user_id: str
    sessions: int
    messages: int
    memories: int
    tasks: int = Field(default=0, description="The user's tasks whose text every service erased.")
    erased: dict[str, int] = Field(
        default_factory=dict, description="Rows erased or pseudonymised, per table."
    )
    storage: dict[str, bool] = Field(
        default_factory=dict,
        description="What was done to the database files: compacted, wal_checkpointed (SQLite), vacuumed.",
    )


class MemoryStore(Protocol):
    """What the execution service asks of the memory service (the agent's memory tools use the last three)."""

    async def build_context(self, request: ContextRequest) -> MemoryContext: ...

    async def record_exchange(self, exchange: Exchange) -> ExchangeResult: ...

    async def add_memory(self, body: MemoryCreate) -> MemoryOp: ...

    async def search(self, request: MemorySearch) -> list[Recalled]: ...

    async def delete_memory(self, memory_id: str) -> None: ...
