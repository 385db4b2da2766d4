"""Wire contract of the knowledge service and the interface the execution service depends on."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

Category = Literal[
    "technical_documentation",
    "code_examples",
    "best_practices",
    "troubleshooting",
    "architecture_patterns",
    "api_references",
    "tutorials",
    "project_specific",
    "domain_knowledge",
]
Scope = Literal["agent", "tenant", "shared"]
SearchMode = Literal["hybrid", "vector", "fulltext"]
Format = Literal["text", "markdown", "html", "pdf"]


class ItemCreate(BaseModel):
    """A document to store: its text is chunked, embedded and indexed."""

    title: str | None = Field(default=None, max_length=300)
    content: str = Field(min_length=1, max_length=2_000_000)
    format: Format = "text"
    category: Category = "domain_knowledge"
    source: str = Field(default="api", max_length=500)
    agent_id: str | None = Field(default=None, max_length=64, description="Only this agent sees it.")
    shared: bool = Field(
        default=False, description="Published to every tenant that opted in (platform admin only)."
    )
    metadata: dict[str, Any] = Field(default_factory=dict)


class Item(BaseModel):
    id: str
    title: str
    category: str
    source: str
    scope: Scope
    agent_id: str | None
    metadata: dict[str, Any]
    origin: str = Field(description="upload, api, import or learned.")
    task_id: str | None = Field(default=None, description="The task a learned item came from.")
    chunks: int
    usage_count: int
    relevance: float
    embedding_model: str
    created_at: datetime
    updated_at: datetime
    last_used_at: datetime | None = None


class ItemPage(BaseModel):
    items: list[Item]
    total: int


class Filters(BaseModel):
    agent_id: str | None = Field(
        default=None, description="Items of this agent plus tenant-wide and shared ones."
    )
    include_shared: bool = Field(default=True, description="Shared items too (only if your tenant opted in).")
    category: list[Category] | None = None
    source: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=5000)
    k: int = Field(default=5, ge=1, le=100)
    mode: SearchMode = "hybrid"
    filters: Filters = Field(default_factory=Filters)
    rerank: bool = Field(default=True, description="Weigh the fused rank by relevance and usage feedback.")


class Hit(BaseModel):
    item_id: str
    chunk: int = Field(description="The chunk's key.")
    title: str
    heading: str
    text: str
    category: str
    source: str
    score: float
    vector_rank: int | None = None
    text_rank: int | None = None


class SearchResult(BaseModel):
    query: str
    mode: SearchMode
    hits: list[Hit]
    vector_backend: str
    latency_ms: float


class ContextRequest(BaseModel):
    """What the execution service asks before running a task."""

    task: str = Field(min_length=1)
    agent_id: str | None = None
    task_id: str | None = None
    budget_tokens: int = Field(default=600, ge=0, le=32000)
    k: int = Field(default=8, ge=1, le=50)


class Citation(BaseModel):
    marker: str = Field(description="How the prompt labels it, e.g. K1.")
    item_id: str
    chunk: int
    title: str
    source: str
    score: float


class KnowledgeContext(BaseModel):
    text: str = Field(description="The block injected into the prompt; empty when nothing fits or matches.")
    used: list[Citation]
    tokens: int


class UseFeedback(BaseModel):
    task_id: str
    reward: float = Field(ge=0.0, le=1.0)


class LearnRequest(BaseModel):
    """A finished task and its reward: a high reward may yield a distilled item; every reward adjusts the
    relevance of the items the task used."""

    task_id: str
    task: str
    answer: str
    reward: float = Field(ge=0.0, le=1.0)
    agent_id: str | None = None


class LearnResult(BaseModel):
    action: Literal["created", "merged", "skipped"]
    reason: str
    item_id: str | None = None
    adjusted: int = Field(default=0, description="Used items whose relevance changed.")


class IngestResult(BaseModel):
    item: Item
    format: str
    chunks: int


class KnownDocuments(BaseModel):
    """Which of the fingerprints asked about are stored (knowledge/fingerprint.py)."""

    known: list[str]


class ItemBatch(BaseModel):
    """Documents stored together (one embedding pass, one transaction): the fast way to ingest many."""

    items: list[ItemCreate] = Field(min_length=1, max_length=1000)


class BatchIngestResult(BaseModel):
    results: list[IngestResult] = Field(
        description="One per document, in order; `chunks` 0 when it was stored before."
    )
    stored: int = Field(description="Documents stored now.")
    chunks: int = Field(description="Chunks stored now.")


class ReembedRequest(BaseModel):
    model: str | None = Field(default=None, description="Defaults to the configured embedding model.")
    only_stale: bool = True


class ReembedResult(BaseModel):
    model: str
    items: int
    chunks: int


class ExportedChunk(BaseModel):
    heading: str = Field(default="", max_length=500)
    text: str = Field(min_length=1, max_length=2_000_000)


class ExportedItem(BaseModel):
    """One line of an export (and of an import): bounded as the columns it is stored in."""

    id: str | None = Field(default=None, min_length=1, max_length=64)
    title: str = Field(max_length=300)
    category: Category = "domain_knowledge"
    source: str = Field(default="import", max_length=500)
    scope: Scope = "tenant"
    agent_id: str | None = Field(default=None, max_length=64)
    metadata: dict[str, Any] = Field(default_factory=dict)
    origin: str = Field(default="import", max_length=20)
    task_id: str | None = Field(default=None, max_length=64)
    relevance: float = Field(default=1.0, ge=0, le=1000)
    usage_count: int = Field(default=0, ge=0, le=2**31 - 1)
    created_at: datetime | None = None
    chunks: list[ExportedChunk] = Field(min_length=1)


class Sharing(BaseModel):
    """A tenant's use of the platform's shared knowledge."""

    use_shared: bool = Field(description="Search and task prompts include items a platform admin published.")


class Deleted(BaseModel):
    id: str
    deleted: bool = True


class ImportResult(BaseModel):
    imported: int
    skipped: int


class Stats(BaseModel):
    items: int
    chunks: int
    by_category: dict[str, int]
    by_embedding_model: dict[str, int]
    learned: int
    total_usage: int
    vector_backend: str
    embedding_model: str


class KnowledgeBase(Protocol):
    """What the execution service and the composition root ask of the knowledge service."""

    async def context(self, request: ContextRequest) -> KnowledgeContext: ...

    async def search(self, request: SearchRequest) -> SearchResult: ...

    async def learn(self, request: LearnRequest) -> LearnResult: ...
