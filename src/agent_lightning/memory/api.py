"""HTTP routes of the memory service (under /memory)."""

from __future__ import annotations

from fastapi import APIRouter, Query

from agent_lightning.core.auth import read_only
from agent_lightning.core.http import ERROR_RESPONSES
from agent_lightning.memory.flows import UserErasure
from agent_lightning.memory.schemas import (
    ContextRequest,
    Deleted,
    EraseResult,
    Exchange,
    ExchangeResult,
    Memory,
    MemoryContext,
    MemoryCreate,
    MemoryKind,
    MemoryOp,
    MemorySearch,
    MessagesAppend,
    PruneRequest,
    PruneResult,
    Recalled,
    Session,
    SessionCreate,
    SessionDetail,
    UserExport,
)
from agent_lightning.memory.service import MemoryService


def router(memory: MemoryService, erasure: UserErasure | None = None) -> APIRouter:
    erasure = erasure or UserErasure(memory)
    api = APIRouter(prefix="/memory", tags=["memory"], responses=ERROR_RESPONSES)

    @api.post("/sessions", response_model=Session, status_code=201, summary="Start a conversation")
    async def create_session(body: SessionCreate) -> Session:
        return await memory.create_session(body)

    @api.get("/sessions", response_model=list[Session], summary="A user's conversations")
    async def list_sessions(
        user_id: str = Query(min_length=1), agent_id: str | None = Query(default=None)
    ) -> list[Session]:
        return await memory.list_sessions(user_id, agent_id)

    @api.get(
        "/sessions/{session_id}",
        response_model=SessionDetail,
        summary="A conversation and its latest messages",
    )
    async def get_session(session_id: str, recent: int = Query(default=20, ge=0, le=1000)) -> SessionDetail:
        return await memory.get_session(session_id, recent=recent)

    @api.delete("/sessions/{session_id}", response_model=Deleted, summary="Delete a conversation")
    async def delete_session(session_id: str) -> Deleted:
        await memory.delete_session(session_id)
        return Deleted(id=session_id)

    @api.post("/sessions/{session_id}/messages", response_model=SessionDetail, summary="Append messages")
    async def append(session_id: str, body: MessagesAppend) -> SessionDetail:
        return await memory.append(session_id, body.messages)

    @api.post(
        "/exchanges", response_model=ExchangeResult, summary="Record a finished turn (and learn from it)"
    )
    async def exchange(body: Exchange) -> ExchangeResult:
        return await memory.record_exchange(body)

    @api.post("/context", response_model=MemoryContext, summary="Build the memory context for a query")
    async def context(body: ContextRequest) -> MemoryContext:
        return await memory.build_context(body)

    @api.post("/memories", response_model=MemoryOp, status_code=201, summary="Store a memory")
    async def add_memory(body: MemoryCreate) -> MemoryOp:
        return await memory.add_memory(body)

    @api.get("/memories", response_model=list[Memory], summary="A user's live memories")
    async def list_memories(
        user_id: str = Query(min_length=1), kind: MemoryKind | None = Query(default=None)
    ) -> list[Memory]:
        return await memory.list_memories(user_id, kind)

    @api.post("/memories/search", response_model=list[Recalled], summary="Memories nearest to a query")
    @read_only
    async def search(body: MemorySearch) -> list[Recalled]:
        return await memory.search(body)

    @api.delete("/memories/{memory_id}", response_model=Deleted, summary="Delete a memory")
    async def delete_memory(memory_id: str) -> Deleted:
        await memory.delete_memory(memory_id)
        return Deleted(id=memory_id)

    @api.post("/prune", response_model=PruneResult, summary="Prune by age, size and relevance")
    async def prune(body: PruneRequest) -> PruneResult:
        return await memory.prune(body)

    @api.get(
        "/users/{user_id}/export", response_model=UserExport, summary="Everything remembered about a user"
    )
    async def export_user(user_id: str) -> UserExport:
        return await memory.export_user(user_id)

    @api.delete(
        "/users/{user_id}",
        response_model=EraseResult,
        summary="Erase a user: their memory, their tasks' text in every service, and the freed pages",
    )
    async def erase_user(user_id: str) -> EraseResult:
        return await erasure.erase(user_id)

    return api
