"""HTTP routes of the knowledge service (under /knowledge)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import StringConstraints

from agent_lightning.core.auth import Principal, authenticate, has_role, read_only, require
from agent_lightning.core.http import ERROR_RESPONSES
from agent_lightning.core.privacy import ErasedRows, EraseTaskText
from agent_lightning.knowledge.erasure import KnowledgeTextEraser
from agent_lightning.knowledge.schemas import (
    BatchIngestResult,
    Category,
    ContextRequest,
    Deleted,
    ExportedItem,
    Filters,
    Format,
    ImportResult,
    IngestResult,
    Item,
    ItemBatch,
    ItemCreate,
    ItemPage,
    KnowledgeContext,
    KnownDocuments,
    LearnRequest,
    LearnResult,
    ReembedRequest,
    ReembedResult,
    SearchRequest,
    SearchResult,
    Sharing,
    Stats,
)
from agent_lightning.knowledge.service import KnowledgeService

Fingerprint = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


JSON_LINES = "application/x-ndjson"


class JsonLinesResponse(StreamingResponse):
    media_type = JSON_LINES


def raw_body(schema: dict, *media_types: str) -> dict:
    """The OpenAPI request body of a route that reads its raw body."""
    return {
        "requestBody": {"required": True, "content": {media: {"schema": schema} for media in media_types}}
    }


def publisher(principal: Principal) -> bool:
    """Whether the caller may publish shared knowledge (read by every tenant that opted in)."""
    return has_role(principal, "platform_admin")


def router(knowledge: KnowledgeService) -> APIRouter:
    api = APIRouter(prefix="/knowledge", tags=["knowledge"], responses=ERROR_RESPONSES)
    eraser = KnowledgeTextEraser(knowledge)

    @api.post("/erasures", response_model=ErasedRows, summary="Erase what was learned from a user's tasks")
    async def erase_task_text(body: EraseTaskText) -> ErasedRows:
        return await eraser.erase_task_text(body)

    @api.post(
        "/items",
        response_model=IngestResult,
        status_code=201,
        summary="Store a document as an item (shared: platform admin)",
    )
    async def create_item(body: ItemCreate, principal: Principal = Depends(authenticate)) -> IngestResult:
        return await knowledge.create(body, may_publish=publisher(principal))

    @api.post(
        "/items/batch",
        response_model=BatchIngestResult,
        status_code=201,
        summary="Store many documents at once (nothing is stored when one is invalid)",
    )
    async def create_items(
        body: ItemBatch, principal: Principal = Depends(authenticate)
    ) -> BatchIngestResult:
        results = await knowledge.create_many(body.items, may_publish=publisher(principal))
        return BatchIngestResult(
            results=results, stored=sum(1 for r in results if r.chunks), chunks=sum(r.chunks for r in results)
        )

    @api.post(
        "/upload",
        response_model=IngestResult,
        status_code=201,
        summary="Upload a file (raw body)",
        openapi_extra=raw_body({"type": "string", "format": "binary"}, "application/octet-stream"),
    )
    async def upload(
        request: Request,
        filename: str = Query(min_length=1, max_length=500, description="Its suffix picks the parser."),
        format: Format | None = Query(default=None),
        category: Category = Query(default="technical_documentation"),
        agent_id: str | None = Query(default=None, max_length=64),
        shared: bool = Query(
            default=False, description="Publish to every tenant that opted in (platform admin)."
        ),
        title: str | None = Query(default=None, max_length=300),
        principal: Principal = Depends(authenticate),
    ) -> IngestResult:
        data = await request.body()
        return await knowledge.upload(
            data,
            filename,
            fmt=format,
            category=category,
            agent_id=agent_id,
            shared=shared,
            title=title,
            may_publish=publisher(principal),
        )

    @api.get("/items", response_model=ItemPage, summary="List items")
    async def list_items(
        agent_id: str | None = Query(default=None),
        category: list[Category] | None = Query(default=None),
        source: str | None = Query(default=None),
        created_after: datetime | None = Query(default=None),
        created_before: datetime | None = Query(default=None),
        limit: int = Query(default=50, ge=1, le=500),
        offset: int = Query(default=0, ge=0, le=1_000_000),
    ) -> ItemPage:
        filters = Filters(
            agent_id=agent_id,
            category=category,
            source=source,
            created_after=created_after,
            created_before=created_before,
        )
        return await knowledge.list(filters, limit=limit, offset=offset)

    @api.get(
        "/items/known", response_model=KnownDocuments, summary="Which documents are stored, by fingerprint"
    )
    async def known_items(
        hash: list[Fingerprint] = Query(
            min_length=1,
            max_length=100,
            description=(
                "SHA-256 fingerprints (hex) of documents as sent (knowledge/fingerprint.py), repeatable, at "
                "most 100."
            ),
        ),
    ) -> KnownDocuments:
        return KnownDocuments(known=await knowledge.known(hash))

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

    # One ExportedItem per line: FastAPI marks a streamed body `type: string`, each line is an object.
    lines = {
        200: {
            "model": ExportedItem,
            "description": "One item per line.",
            "content": {JSON_LINES: {"schema": {"type": "object"}}},
        }
    }

    @api.get("/export", summary="Every item as JSON Lines", response_class=JsonLinesResponse, responses=lines)
    async def export() -> JsonLinesResponse:
        return JsonLinesResponse(knowledge.export())

    @api.post(
        "/import",
        response_model=ImportResult,
        summary="Items from JSON Lines (raw body)",
        openapi_extra=raw_body({"type": "string"}, JSON_LINES, "text/plain"),
    )
    async def import_items(request: Request, principal: Principal = Depends(authenticate)) -> ImportResult:
        body = (await request.body()).decode("utf-8", errors="replace")
        return await knowledge.import_lines(body.splitlines(), may_publish=publisher(principal))

    @api.get(
        "/sharing", response_model=Sharing, summary="Whether your tenant uses the platform's shared knowledge"
    )
    async def sharing() -> Sharing:
        return await knowledge.sharing()

    @api.put(
        "/sharing",
        response_model=Sharing,
        dependencies=[Depends(require("admin"))],
        summary="Opt your tenant in to (or out of) shared knowledge (admin)",
    )
    async def set_sharing(body: Sharing) -> Sharing:
        return await knowledge.set_sharing(body)

    @api.post("/reembed", response_model=ReembedResult, summary="Embed the chunks again with another model")
    async def reembed(body: ReembedRequest) -> ReembedResult:
        return await knowledge.reembed(body)

    return api
