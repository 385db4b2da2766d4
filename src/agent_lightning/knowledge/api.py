"""HTTP routes of the knowledge service (under /knowledge)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from agent_lightning.core.auth import read_only
from agent_lightning.core.http import ERROR_RESPONSES
from agent_lightning.knowledge.schemas import (
    Category,
    ContextRequest,
    Deleted,
    ExportedItem,
    Filters,
    Format,
    ImportResult,
    IngestResult,
    Item,
    ItemCreate,
    ItemPage,
    KnowledgeContext,
    LearnRequest,
    LearnResult,
    ReembedRequest,
    ReembedResult,
    SearchRequest,
    SearchResult,
    Stats,
)
from agent_lightning.knowledge.service import KnowledgeService


def router(knowledge: KnowledgeService) -> APIRouter:
    api = APIRouter(prefix="/knowledge", tags=["knowledge"], responses=ERROR_RESPONSES)

    @api.post("/items", response_model=IngestResult, status_code=201, summary="Store a document as an item")
    async def create_item(body: ItemCreate) -> IngestResult:
        return await knowledge.create(body)

    @api.post("/upload", response_model=IngestResult, status_code=201, summary="Upload a file (raw body)")
    async def upload(
        request: Request,
        filename: str = Query(min_length=1, max_length=500, description="Its suffix picks the parser."),
        format: Format | None = Query(default=None),
        category: Category = Query(default="technical_documentation"),
        agent_id: str | None = Query(default=None, max_length=64),
        shared: bool = Query(default=False),
        title: str | None = Query(default=None, max_length=300),
    ) -> IngestResult:
        data = await request.body()
        return await knowledge.upload(data, filename, fmt=format, category=category, agent_id=agent_id, shared=shared, title=title)

    @api.get("/items", response_model=ItemPage, summary="List items")
    async def list_items(
        agent_id: str | None = Query(default=None),
        category: list[Category] | None = Query(default=None),
        source: str | None = Query(default=None),
        created_after: datetime | None = Query(default=None),
        created_before: datetime | None = Query(default=None),
        limit: int = Query(default=50, ge=1, le=500),
        offset: int = Query(default=0, ge=0),
    ) -> ItemPage:
        filters = Filters(agent_id=agent_id, category=category, source=source, created_after=created_after,
                          created_before=created_before)
        return await knowledge.list(filters, limit=limit, offset=offset)

    @api.get("/items/{item_id}", response_model=Item, summary="One item")
    async def get_item(item_id: str) -> Item:
        return await knowledge.get(item_id)

    @api.delete("/items/{item_id}", response_model=Deleted, summary="Delete an item")
    async def delete_item(item_id: str) -> Deleted:
        await knowledge.delete(item_id)
        return Deleted(id=item_id)

    @api.post("/search", response_model=SearchResult, summary="Hybrid, vector or full-text search")
    @read_only
    async def search(body: SearchRequest) -> SearchResult:
        return await knowledge.search(body)

    @api.post("/context", response_model=KnowledgeContext, summary="The knowledge block for a task's prompt")
    @read_only
    async def context(body: ContextRequest) -> KnowledgeContext:
        return await knowledge.context(body)

    @api.post("/learn", response_model=LearnResult, summary="Learn from a finished, rewarded task")
    async def learn(body: LearnRequest) -> LearnResult:
        return await knowledge.learn(body)

    @api.get("/stats", response_model=Stats, summary="Counts, usage and the vector backend")
    async def stats() -> Stats:
        return await knowledge.stats()

    lines = {200: {"model": ExportedItem, "description": "One item per line (application/x-ndjson)."}}

    @api.get("/export", summary="Every item as JSON Lines", response_class=StreamingResponse, responses=lines)
    async def export() -> StreamingResponse:
        return StreamingResponse(knowledge.export(), media_type="application/x-ndjson")

    @api.post("/import", response_model=ImportResult, summary="Items from JSON Lines (raw body)")
    async def import_items(request: Request) -> ImportResult:
        body = (await request.body()).decode("utf-8", errors="replace")
        return await knowledge.import_lines(body.splitlines())

    @api.post("/reembed", response_model=ReembedResult, summary="Embed the chunks again with another model")
    async def reembed(body: ReembedRequest) -> ReembedResult:
        return await knowledge.reembed(body)

    return api
