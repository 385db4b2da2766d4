"""The knowledge service: stores documents as embedded chunks, searches them (vector, full-text, hybrid),
hands the execution service the best ones for a task, and learns from rewarded tasks."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.pool import SingletonThreadPool, StaticPool

from agent_lightning.core import nul
from agent_lightning.core.config import Settings
from agent_lightning.core.db import Database, new_id, utcnow
from agent_lightning.core.errors import Forbidden, Invalid, NotFound
from agent_lightning.core.fencing import fence
from agent_lightning.core.logging import get_logger
from agent_lightning.core.tenancy import (
    all_tenants,
    current_tenant,
    tenant_delete,
    tenant_get,
    tenant_is,
    tenant_select,
    tenant_update,
)
from agent_lightning.knowledge import fulltext, ingest, search, uploads
from agent_lightning.knowledge.fingerprint import fingerprint
from agent_lightning.knowledge.learning import distil
from agent_lightning.knowledge.schemas import (
    Citation,
    ContextRequest,
    ExportedChunk,
    ExportedItem,
    Filters,
    Hit,
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
    Sharing,
    Stats,
)
from agent_lightning.knowledge.tables import (
    KnowledgeChunkRow,
    KnowledgeItemRow,
    KnowledgeSharingRow,
    KnowledgeUseRow,
)
from agent_lightning.knowledge.uploads import UploadLimits
from agent_lightning.knowledge.vectors import (
    INDEX_FILE,
    HnswIndex,
    PgVectorIndex,
    VectorBackend,
    from_blob,
    open_backend,
    to_blob,
)
from agent_lightning.models.schemas import EmbeddingGateway, ModelGateway, embed_unit_vectors

log = get_logger(__name__)

RELEVANCE_STEP = 0.2
INDEX_SAVE_QUIET_S = 5.0
"""The index file is written once writes to the index have paused this long (an ingest run: one write)..."""
INDEX_SAVE_MAX_WAIT_S = 300.0
"""... and at least this often while they go on, so that a crash costs a rebuild of at most this much work."""
FENCE_TOKENS = 12
"""What the delimiters around a retrieved passage cost in prompt tokens (core/fencing.py)."""
RELEVANCE_RANGE = (0.2, 3.0)


def content_hash(*parts: str) -> str:
    """A stable hash of an item's text, for deduplicating uploads."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def embedding_text(title: str, heading: str, body: str) -> str:
    """What is embedded for a chunk: where it sits, then what it says."""
    where = " > ".join(part for part in (title, heading) if part)
    return f"{where}\n{body}" if where else body


@dataclass
class _Document:
    """A document ready to store: its chunks (heading, text) and where it came from."""

    body: ItemCreate
    title: str
    fmt: str
    chunks: list[tuple[str, str]]
    origin: str
    task_id: str | None = None
    item_id: str | None = None

    @property
    def scope(self) -> str:
        return "shared" if self.body.shared else "agent" if self.body.agent_id else "tenant"

    @cached_property
    def digest(self) -> str:
        return content_hash(self.scope, self.body.agent_id or "", *[t for _, t in self.chunks])

    @cached_property
    def fingerprint(self) -> str:
        """Of the document as sent (before chunking): what `alp knowledge add` asks about."""
        body = self.body
        return fingerprint(content=body.content, fmt=body.format, agent_id=body.agent_id, shared=body.shared)


class KnowledgeService:
    """Knowledge items, their index, search, and learning. Depends on the model service's Protocols only."""

    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        embeddings: EmbeddingGateway,
        models: ModelGateway | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.embeddings = embeddings
        self.models = models
        self.model = settings.knowledge_embedding_model
        self.backend: VectorBackend | None = None
        self.backend_detail = "not opened yet (opens on first use)"
        self._open_lock = asyncio.Lock()
        self._index_changed_at = 0.0
        self._index_saver: asyncio.Task | None = None
        self._ingesting = 0  # batches being embedded or stored now
        # One connection shared by every session (SQLite in memory) cannot serve two queries at once.
        self._concurrent = not isinstance(db.engine.sync_engine.pool, (StaticPool, SingletonThreadPool))

    # --- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the vector index; when embeddings are not available yet, retry on first use."""
        try:
            await self._index()
        except Exception as exc:
            self.backend_detail = f"not opened: {type(exc).__name__}: {exc}"
            log.warning("knowledge_index_not_opened", error=str(exc))

    async def stop(self) -> None:
        if self._index_saver is not None and not self._index_saver.done():
            self._index_saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._index_saver
        if isinstance(self.backend, HnswIndex):
            await self.backend.flush()

    def _index_changed(self) -> None:
        """Schedule one write of the index file for this burst of changes (see INDEX_SAVE_QUIET_S)."""
        if not isinstance(self.backend, HnswIndex):
            return
        self._index_changed_at = time.monotonic()
        if self._index_saver is None or self._index_saver.done():
            self._index_saver = asyncio.get_running_loop().create_task(self._save_index_later(self.backend))

    async def _save_index_later(self, backend: HnswIndex) -> None:
        first = time.monotonic()
        while True:
            await asyncio.sleep(INDEX_SAVE_QUIET_S / 4)
            now = time.monotonic()
            quiet = not self._ingesting and now - self._index_changed_at >= INDEX_SAVE_QUIET_S
            if quiet or now - first >= INDEX_SAVE_MAX_WAIT_S:
                break
        if backend is not self.backend:  # re-embedding replaced it (and wrote the new one)
            return
        try:
            await backend.flush()
        except OSError as exc:  # the file is a copy: the next start rebuilds it from the database
            log.warning("vector_index_not_saved", error=str(exc))

    def health(self) -> tuple[bool, str]:
        """Whether search works and which vector backend serves it."""
        return self.backend is not None, self.backend_detail

    async def _index(self) -> VectorBackend:
        if self.backend is None:
            async with self._open_lock:
                if self.backend is None:
                    dims = await self._dimensions()
                    path = Path(self.settings.data_dir) / INDEX_FILE
                    backend, detail = await open_backend(
                        self.db, dims, path, prefer=self.settings.knowledge_vector_backend
                    )
                    self.backend, self.backend_detail = backend, f"{self.model} ({dims} d): {detail}"
                    log.info("knowledge_vector_backend", backend=backend.name, detail=detail)
        return self.backend

    async def _dimensions(self) -> int:
        async with self.db.session() as session:
            blob = await session.scalar(
                all_tenants(
                    select(KnowledgeChunkRow.embedding)
                    .where(KnowledgeChunkRow.embedding_model == self.model)
                    .limit(1),
                    "the vector index holds every tenant's chunks: their dimensions",
                )
            )
        if blob is not None:
            return len(blob) // 4
        return len((await self._embed(["dimension probe"]))[0])

    async def _embed(self, texts: list[str]) -> np.ndarray:
        return await embed_unit_vectors(self.embeddings, self.model, texts, "knowledge")

    async def _embed_by_length(self, texts: list[str]) -> np.ndarray:
        """Many texts embedded in order of length, so that each batch the model runs pads little (a batch is
        as long as its longest text: chunks of mixed lengths in document order cost a third more)."""
        order = sorted(range(len(texts)), key=lambda n: len(texts[n]))
        vectors = np.empty((len(texts), 0), dtype=np.float32)
        if texts:
            ordered = await self._embed([texts[n] for n in order])
            vectors = np.empty_like(ordered)
            vectors[order] = ordered
        return vectors

    # --- items ----------------------------------------------------------------------------------------

    async def create(
        self,
        body: ItemCreate,
        *,
        origin: str = "api",
        task_id: str | None = None,
        item_id: str | None = None,
        may_publish: bool = False,
    ) -> IngestResult:
        """Chunk, embed and store a document (an identical document already stored is returned as is).
        A shared document needs `may_publish` (the caller is a platform admin)."""
        document = self._document(body, origin=origin, task_id=task_id, item_id=item_id)
        return (await self._store_many([document], may_publish=may_publish))[0]

    async def create_many(
        self, bodies: list[ItemCreate], *, origin: str = "api", may_publish: bool = False
    ) -> list[IngestResult]:
        """Store documents together: one embedding pass, one transaction, one index update for all of them.
        Nothing is stored when one of them is invalid (its position is in the error's details)."""
        documents = []
        for index, body in enumerate(bodies):
            try:
                documents.append(self._document(body, origin=origin))
            except Invalid as exc:
                raise Invalid(
                    f"Document {index}: {exc.message}", code=exc.code, details={"index": index}
                ) from exc
        return await self._store_many(documents, may_publish=may_publish)

    async def upload(
        self, data: bytes, filename: str, *, fmt: str | None = None, may_publish: bool = False, **fields: Any
    ) -> IngestResult:
        """Ingest a file's bytes (text, Markdown, HTML, PDF or Word), checked for what they really are
        first."""
        upload = uploads.read(data, filename, fmt, UploadLimits.from_settings(self.settings))
        text = upload.text.replace(
            "\x00", ""
        )  # a PDF's extraction may yield NULs (a text file with one is binary)
        if not text.strip():
            raise Invalid("The document has no text.", code="empty_document")
        body = ItemCreate(content=text, format=upload.chunk_as, source=filename or "upload", **fields)
        result = await self.create(body, origin="upload", may_publish=may_publish)
        result.format = upload.format
        return result

    def _document(
        self, body: ItemCreate, *, origin: str, task_id: str | None = None, item_id: str | None = None
    ) -> _Document:
        fmt, chunks = ingest.chunk_document(
            body.content,
            fmt=body.format,
            size=self.settings.knowledge_chunk_chars,
            overlap=self.settings.knowledge_chunk_overlap,
        )
        title = body.title or ingest.document_title(body.source, chunks)
        return _Document(body, title, fmt, [(c.heading, c.text) for c in chunks], origin, task_id, item_id)

    async def _store_many(
        self, documents: list[_Document], *, may_publish: bool = False
    ) -> list[IngestResult]:
        """Store the documents not stored yet: their chunks embedded in one pass, written in one transaction,
        added to the vector index at once. An identical document (stored before, or earlier in the list) is
        returned as is, with 0 chunks. Shared documents need `may_publish`."""
        if not may_publish and any(d.scope == "shared" for d in documents):
            raise Forbidden(
                "Only a platform admin publishes shared knowledge (every tenant that opted in sees it).",
                code="publish_forbidden",
                details={"required": "platform_admin"},
            )
        tenant = current_tenant()
        async with self.db.session() as session:
            digests = list({d.digest for d in documents})
            rows = list(
                await session.scalars(
                    tenant_select(KnowledgeItemRow, tenant=tenant).where(
                        KnowledgeItemRow.content_hash.in_(digests)
                    )
                )
            )
            stored = {row.content_hash: await self._item(session, row) for row in rows}
            unmarked = {
                row.content_hash: row for row in rows if row.source_hash is None
            }  # stored before it existed
            for document in documents:
                if document.digest in unmarked:
                    unmarked.pop(document.digest).source_hash = document.fingerprint
        new: dict[str, _Document] = {}
        for document in documents:
            if document.digest not in stored:
                new.setdefault(document.digest, document)
        if not new:
            return [IngestResult(item=stored[d.digest], format=d.fmt, chunks=0) for d in documents]
        self._ingesting += 1
        try:
            return await self._store_new(documents, new, stored, tenant)
        finally:
            self._ingesting -= 1
            self._index_changed_at = time.monotonic()

    async def _store_new(
        self, documents: list[_Document], new: dict[str, _Document], stored: dict[str, Item], tenant: str
    ) -> list[IngestResult]:
        backend = await self._index()
        texts = [embedding_text(d.title, h, t) for d in new.values() for h, t in d.chunks]
        vectors = await self._embed_by_length(texts)
        items, rows = [], []
        for document in new.values():
            body = document.body
            item = KnowledgeItemRow(
                id=document.item_id or new_id(),
                tenant_id=tenant,
                title=document.title,
                category=body.category,
                source=body.source,
                scope=document.scope,
                agent_id=body.agent_id,
                meta=body.metadata,
                origin=document.origin,
                task_id=document.task_id,
                content_hash=document.digest,
                source_hash=document.fingerprint,
                usage_count=0,
                relevance=1.0,
                embedding_model=self.model,
            )
            items.append(item)
            rows += [
                KnowledgeChunkRow(
                    tenant_id=tenant,
                    item_id=item.id,
                    ordinal=n,
                    heading=h[:500],
                    text=t,
                    embedding_model=self.model,
                )
                for n, (h, t) in enumerate(document.chunks)
            ]
        for row, vector in zip(rows, vectors, strict=True):
            row.embedding = to_blob(vector)
        async with self.db.session() as session:
            session.add_all(items)
            await session.flush()
            session.add_all(rows)
            await session.flush()
            keys = [r.seq for r in rows]
            if isinstance(backend, PgVectorIndex):
                await backend.write(session, keys, vectors)
            created = {
                item.content_hash: self._new_item(item, len(d.chunks))
                for item, d in zip(items, new.values(), strict=True)
            }
        if not isinstance(backend, PgVectorIndex):
            await backend.add(keys, vectors)
            self._index_changed()
        log.info("knowledge_items_stored", items=len(items), chunks=len(rows), origin=items[0].origin)
        results, seen = [], set()
        for document in documents:
            first = document.digest in created and document.digest not in seen
            seen.add(document.digest)
            item = created[document.digest] if document.digest in created else stored[document.digest]
            results.append(
                IngestResult(item=item, format=document.fmt, chunks=len(document.chunks) if first else 0)
            )
        return results

    async def known(self, fingerprints: list[str]) -> list[str]:
        """Which of these document fingerprints (knowledge/fingerprint.py) the tenant has stored."""
        async with self.db.session() as session:
            found = await session.scalars(
                tenant_select(KnowledgeItemRow.source_hash).where(
                    KnowledgeItemRow.source_hash.in_(fingerprints)
                )
            )
            return sorted(set(found))

    async def get(self, item_id: str) -> Item:
        """One visible item."""
        async with self.db.session() as session:
            return await self._item(session, await self._row(session, item_id))

    async def list(self, filters: Filters, *, limit: int = 50, offset: int = 0) -> ItemPage:
        """Items the tenant can see, newest first."""
        filters = await self._scoped(filters)
        async with self.db.session() as session:
            query = self._visible(filters)
            total = await session.scalar(select(func.count()).select_from(query.subquery()))
            rows = await session.scalars(
                query.order_by(KnowledgeItemRow.created_at.desc()).limit(limit).offset(offset)
            )
            return ItemPage(items=[await self._item(session, r) for r in rows], total=int(total))

    async def delete(self, item_id: str) -> None:
        """Delete an item, its chunks (and so its index entries) and its usage records."""
        async with self.db.session() as session:
            row = await self._row(session, item_id, owned=True)
            keys = list(
                await session.scalars(
                    tenant_select(KnowledgeChunkRow.seq).where(KnowledgeChunkRow.item_id == row.id)
                )
            )
            await session.execute(tenant_delete(KnowledgeChunkRow).where(KnowledgeChunkRow.item_id == row.id))
            await session.execute(
                all_tenants(
                    delete(KnowledgeUseRow).where(KnowledgeUseRow.item_id == row.id),
                    "an item goes with every tenant's uses of it (a shared one is used by many)",
                )
            )
            await session.delete(row)
        if self.backend is not None:
            await self.backend.remove(keys)
            self._index_changed()

    def _visible(self, filters: Filters) -> Select:
        """The items the tenant may see: its own, and with `filters.include_shared` the shared ones a
        platform admin published (of another tenant: the escape hatch says so)."""
        mine = tenant_is(KnowledgeItemRow)
        if filters.agent_id:
            mine = mine & (
                KnowledgeItemRow.agent_id.is_(None) | (KnowledgeItemRow.agent_id == filters.agent_id)
            )
        condition = (mine | (KnowledgeItemRow.scope == "shared")) if filters.include_shared else mine
        if filters.category:
            condition = condition & KnowledgeItemRow.category.in_(filters.category)
        if filters.source:
            condition = condition & (KnowledgeItemRow.source == filters.source)
        if filters.created_after:
            condition = condition & (KnowledgeItemRow.created_at >= filters.created_after)
        if filters.created_before:
            condition = condition & (KnowledgeItemRow.created_at < filters.created_before)
        query = select(KnowledgeItemRow).where(condition)
        if filters.include_shared:
            return all_tenants(query, "shared knowledge: published to every tenant that opted in")
        return query

    async def _row(self, session, item_id: str, *, owned: bool = False) -> KnowledgeItemRow:
        row = await session.scalar(
            all_tenants(
                select(KnowledgeItemRow).where(KnowledgeItemRow.id == item_id),
                "an item of another tenant is seen only when shared (checked next)",
            )
        )
        allowed = row is not None and (
            row.tenant_id == current_tenant()
            or (row.scope == "shared" and not owned and await self._uses_shared())
        )
        if not allowed:
            raise NotFound(f"Unknown knowledge item '{item_id}'.", code="knowledge_item_not_found")
        return row

    async def _item(self, session, row: KnowledgeItemRow) -> Item:
        chunks = await session.scalar(
            select(func.count()).where(
                tenant_is(KnowledgeChunkRow, row.tenant_id), KnowledgeChunkRow.item_id == row.id
            )
        )
        return self._new_item(row, int(chunks))

    @staticmethod
    def _new_item(row: KnowledgeItemRow, chunks: int) -> Item:
        return Item(
            id=row.id,
            title=row.title,
            category=row.category,
            source=row.source,
            scope=row.scope,
            agent_id=row.agent_id,
            metadata=row.meta,
            origin=row.origin,
            task_id=row.task_id,
            chunks=chunks,
            usage_count=row.usage_count,
            relevance=round(row.relevance, 4),
            embedding_model=row.embedding_model,
            created_at=row.created_at,
            updated_at=row.updated_at,
            last_used_at=row.last_used_at,
        )

    # --- shared knowledge ------------------------------------------------------------------------------

    async def sharing(self) -> Sharing:
        """Whether the tenant uses the platform's shared knowledge."""
        return Sharing(use_shared=await self._uses_shared())

    async def set_sharing(self, sharing: Sharing) -> Sharing:
        """Opt the tenant in to (or out of) the shared knowledge a platform admin publishes."""
        async with self.db.session() as session:
            row = await tenant_get(session, KnowledgeSharingRow, current_tenant())
            if row is None:
                session.add(KnowledgeSharingRow(tenant_id=current_tenant(), use_shared=sharing.use_shared))
            else:
                row.use_shared = sharing.use_shared
        log.info("knowledge_sharing_changed", tenant_id=current_tenant(), use_shared=sharing.use_shared)
        return sharing

    async def _uses_shared(self) -> bool:
        async with self.db.session() as session:
            row = await tenant_get(session, KnowledgeSharingRow, current_tenant())
        return bool(row and row.use_shared)

    async def _scoped(self, filters: Filters) -> Filters:
        """The filters with shared items only where the tenant opted in."""
        if filters.include_shared and not await self._uses_shared():
            return filters.model_copy(update={"include_shared": False})
        return filters

    # --- search ---------------------------------------------------------------------------------------

    async def search(self, request: SearchRequest) -> SearchResult:
        """Vector, full-text or hybrid (reciprocal rank fusion) search within the filters."""
        started = time.perf_counter()
        hits = [hit for hit, _ in await self._search(request)]
        return SearchResult(
            query=request.query,
            mode=request.mode,
            hits=hits,
            vector_backend=self.backend_detail,
            latency_ms=round((time.perf_counter() - started) * 1000, 2),
        )

    async def _search(
        self, request: SearchRequest, query_vector: np.ndarray | None = None
    ) -> builtins.list[tuple[Hit, float | None]]:
        """Hits best first, each with its cosine similarity to the query (None in full-text mode)."""
        # Candidates per retriever. Fusing deeper lists lets chunks that match one common query word (deep in
        # the full-text ranking) outrank the vector search's best hits; see benchmarks/retrieval.
        depth = max(request.k * 2, 20)
        tenant = current_tenant()
        request = request.model_copy(update={"filters": await self._scoped(request.filters)})

        async def vector_side() -> list[tuple[int, float]]:
            nonlocal query_vector
            if request.mode not in ("vector", "hybrid"):
                return []
            query_vector = (
                query_vector if query_vector is not None else (await self._embed([request.query]))[0]
            )
            return await self._vector_ranking(query_vector, request.filters, tenant, depth)

        async def text_side() -> list[tuple[int, float]]:
            if request.mode not in ("fulltext", "hybrid"):
                return []
            async with self.db.session() as session:
                return await fulltext.search(session, request.query, request.filters, tenant, depth)

        if request.mode == "hybrid" and self._concurrent:
            # The two rankings on two connections at once: hybrid search takes the longer of the two (the
            # query's embedding included), not their sum.
            vector_hits, text_hits = await asyncio.gather(vector_side(), text_side())
        else:
            vector_hits, text_hits = await vector_side(), await text_side()
        if request.mode == "hybrid":
            scores = search.fuse(vector_hits, text_hits)
        else:
            ranking = vector_hits or text_hits
            scores = {key: 1.0 / (search.RRF_K + rank) for rank, (key, _) in enumerate(ranking, start=1)}
        hits = await self._hydrate(
            scores,
            [key for key, _ in vector_hits],
            [key for key, _ in text_hits],
            query_vector,
            rerank=request.rerank,
        )
        return hits[: request.k]

    async def _vector_ranking(
        self, vector: np.ndarray, filters: Filters, tenant: str, depth: int
    ) -> builtins.list[tuple[int, float]]:
        """Nearest visible chunks with their cosine similarity: widen the index query until enough pass the
        filters."""
        backend = await self._index()
        want = depth
        while True:
            found = await backend.search(vector, want)
            async with self.db.session() as session:
                allowed = await search.visible(
                    session, [key for key, _ in found], filters, tenant, self.model
                )
            hits = [(key, score) for key, score in found if key in allowed]
            if len(hits) >= depth or len(found) < want or want >= 20 * depth:
                return hits[:depth]
            want *= 4

    async def _hydrate(
        self,
        scores: dict[int, float],
        vector_keys: builtins.list[int],
        text_keys: builtins.list[int],
        query_vector: np.ndarray | None,
        *,
        rerank: bool,
    ) -> builtins.list[tuple[Hit, float | None]]:
        if not scores:
            return []
        chunk, item = KnowledgeChunkRow, KnowledgeItemRow
        async with self.db.session() as session:
            rows = (
                await session.execute(
                    select(
                        chunk.seq,
                        chunk.heading,
                        chunk.text,
                        chunk.embedding,
                        item.id,
                        item.title,
                        item.category,
                        item.source,
                        item.relevance,
                        item.usage_count,
                        item.last_used_at,
                        item.created_at,
                    )
                    .join(item, item.id == chunk.item_id)
                    .where(chunk.seq.in_(list(scores)))
                    .execution_options(
                        all_tenants="the chunks the visibility filter let through (own or shared)"
                    )
                )
            ).all()
        vector_rank = {key: n for n, key in enumerate(vector_keys, start=1)}
        text_rank = {key: n for n, key in enumerate(text_keys, start=1)}
        hits = []
        for (
            seq,
            heading,
            body,
            embedding,
            item_id,
            title,
            category,
            source,
            relevance,
            usage_count,
            last_used,
            created,
        ) in rows:
            score = scores[seq]
            if rerank:
                score *= search.feedback_factor(
                    relevance, usage_count, last_used, created, self.settings.knowledge_half_life_days
                )
            similarity = None
            if query_vector is not None and len(embedding) == len(query_vector) * 4:
                similarity = float(from_blob(embedding) @ query_vector)
            hits.append(
                (
                    Hit(
                        item_id=item_id,
                        chunk=seq,
                        title=title,
                        heading=heading,
                        text=body,
                        category=category,
                        source=source,
                        score=round(score, 6),
                        vector_rank=vector_rank.get(seq),
                        text_rank=text_rank.get(seq),
                    ),
                    similarity,
                )
            )
        hits.sort(key=lambda pair: -pair[0].score)
        return hits

    # --- use by executions ----------------------------------------------------------------------------

    async def context(self, request: ContextRequest) -> KnowledgeContext:
        """The best chunks for a task that fit the token budget, labelled K1, K2 … for citation."""
        if request.budget_tokens <= 0:
            return KnowledgeContext(text="", used=[], tokens=0)
        query_vector = (await self._embed([request.task[:4000]]))[0]
        hits = await self._search(
            SearchRequest(query=request.task[:4000], k=request.k, filters=Filters(agent_id=request.agent_id)),
            query_vector,
        )
        blocks, used, spent = [], [], 0
        for hit, similarity in hits:
            if similarity is None or similarity < self.settings.knowledge_min_similarity:
                continue
            marker = f"K{len(used) + 1}"
            passage = self._fit(
                f"{hit.title}{' — ' + hit.heading if hit.heading else ''}\n{hit.text}",
                request.budget_tokens - spent - FENCE_TOKENS,
            )
            block = fence(marker, passage) if passage is not None else None  # untrusted data, delimited
            if block is None:
                break
            blocks.append(block)
            spent += ingest.estimate_tokens(block)
            used.append(
                Citation(
                    marker=marker,
                    item_id=hit.item_id,
                    chunk=hit.chunk,
                    title=hit.title,
                    source=hit.source,
                    score=round(similarity, 4),
                )
            )
        if used and request.task_id:
            await self._record_use(request.task_id, used)
        return KnowledgeContext(text="\n\n".join(blocks), used=used, tokens=spent)

    @staticmethod
    def _fit(block: str, budget: int) -> str | None:
        """The block, cut to the budget when at least a useful part fits."""
        if ingest.estimate_tokens(block) <= budget:
            return block
        if budget < 60:
            return None
        return block[: budget * 4 - 1].rsplit(" ", 1)[0] + "…"

    async def _record_use(self, task_id: str, used: builtins.list[Citation]) -> None:
        items = {c.item_id: c.score for c in used}
        now = utcnow()
        async with self.db.session() as session:
            for item_id, score in items.items():
                session.add(
                    KnowledgeUseRow(tenant_id=current_tenant(), task_id=task_id, item_id=item_id, score=score)
                )
            await session.execute(
                all_tenants(
                    update(KnowledgeItemRow)
                    .where(KnowledgeItemRow.id.in_(list(items)))
                    .values(usage_count=KnowledgeItemRow.usage_count + 1, last_used_at=now),
                    "the items a search gave: the tenant's own, or shared ones whose use counts for all",
                )
            )

    async def learn(self, request: LearnRequest) -> LearnResult:
        """Move the relevance of the items the task used; distil a high-reward task into a new item."""
        adjusted = await self._reward_uses(request.task_id, request.reward)
        if request.reward < self.settings.knowledge_learn_threshold:
            return LearnResult(
                action="skipped",
                reason=f"reward {request.reward:.2f} is below the threshold",
                adjusted=adjusted,
            )
        async with self.db.session() as session:
            done = await session.scalar(
                tenant_select(KnowledgeItemRow.id).where(
                    KnowledgeItemRow.origin == "learned",
                    KnowledgeItemRow.task_id == request.task_id,
                )
            )
        if done:
            return LearnResult(
                action="skipped", reason="already learned from this task", item_id=done, adjusted=adjusted
            )
        model = self.settings.knowledge_distill_model or self.settings.default_model
        entry, author = await distil(self.models, model, request.task, request.answer)
        twin = await self._near_duplicate(entry, request.agent_id)
        if twin is not None:
            await self._merge(twin, request)
            return LearnResult(
                action="merged", reason="a near-identical item exists", item_id=twin, adjusted=adjusted
            )
        body = ItemCreate(
            title=request.task[:120],
            content=entry,
            category="best_practices",
            source=f"task:{request.task_id}",
            agent_id=request.agent_id,
            metadata={"provenance": [request.task_id], "reward": request.reward, "distilled_by": author},
        )
        result = await self.create(body, origin="learned", task_id=request.task_id)
        return LearnResult(
            action="created", reason=f"reward {request.reward:.2f}", item_id=result.item.id, adjusted=adjusted
        )

    async def _reward_uses(self, task_id: str, reward: float) -> int:
        step = RELEVANCE_STEP * (reward - 0.5) * 2
        low, high = RELEVANCE_RANGE
        async with self.db.session() as session:
            uses = list(
                await session.scalars(
                    tenant_select(KnowledgeUseRow).where(
                        KnowledgeUseRow.task_id == task_id,
                        KnowledgeUseRow.reward.is_(None),
                    )
                )
            )
            for use in uses:
                use.reward = reward
                item = await session.scalar(
                    all_tenants(
                        select(KnowledgeItemRow).where(KnowledgeItemRow.id == use.item_id),
                        "the relevance of a shared item learns from every tenant that used it",
                    )
                )
                if item is not None:
                    item.relevance = min(high, max(low, item.relevance + step))
        return len(uses)

    async def _near_duplicate(self, entry: str, agent_id: str | None) -> str | None:
        hits = await self._search(
            SearchRequest(
                query=entry,
                k=1,
                mode="vector",
                rerank=False,
                filters=Filters(agent_id=agent_id, include_shared=False),  # merged into the tenant's own
            )
        )
        if hits and (hits[0][1] or 0.0) >= self.settings.knowledge_dedup_similarity:
            return hits[0][0].item_id
        return None

    async def _merge(self, item_id: str, request: LearnRequest) -> None:
        async with self.db.session() as session:
            row = await tenant_get(session, KnowledgeItemRow, item_id)
            provenance = list(row.meta.get("provenance", []))
            if request.task_id not in provenance:
                provenance.append(request.task_id)
            row.meta = {**row.meta, "provenance": provenance}
            row.relevance = min(RELEVANCE_RANGE[1], row.relevance + RELEVANCE_STEP / 2)

    # --- maintenance ----------------------------------------------------------------------------------

    async def stats(self) -> Stats:
        """Counts by category and embedding model, learned items and total use."""
        async with self.db.session() as session:
            mine = tenant_is(KnowledgeItemRow)
            items, usage = (
                await session.execute(
                    select(func.count(), func.coalesce(func.sum(KnowledgeItemRow.usage_count), 0)).where(mine)
                )
            ).one()
            chunks = await session.scalar(select(func.count()).where(tenant_is(KnowledgeChunkRow)))
            by_category = dict(
                (
                    await session.execute(
                        select(KnowledgeItemRow.category, func.count())
                        .where(mine)
                        .group_by(KnowledgeItemRow.category)
                    )
                ).all()
            )
            by_model = dict(
                (
                    await session.execute(
                        select(KnowledgeItemRow.embedding_model, func.count())
                        .where(mine)
                        .group_by(KnowledgeItemRow.embedding_model)
                    )
                ).all()
            )
            learned = await session.scalar(
                select(func.count()).where(mine, KnowledgeItemRow.origin == "learned")
            )
        return Stats(
            items=items,
            chunks=chunks,
            by_category=by_category,
            by_embedding_model=by_model,
            learned=learned,
            total_usage=int(usage),
            vector_backend=self.backend_detail,
            embedding_model=self.model,
        )

    async def export(self) -> AsyncIterator[str]:
        """The tenant's items as JSON Lines, each with its chunks."""
        async with self.db.session() as session:
            rows = list(
                await session.scalars(tenant_select(KnowledgeItemRow).order_by(KnowledgeItemRow.created_at))
            )
        for row in rows:
            async with self.db.session() as session:
                chunks = (
                    await session.execute(
                        tenant_select(KnowledgeChunkRow.heading, KnowledgeChunkRow.text)
                        .where(KnowledgeChunkRow.item_id == row.id)
                        .order_by(KnowledgeChunkRow.ordinal)
                    )
                ).all()
            record = ExportedItem(
                id=row.id,
                title=row.title,
                category=row.category,
                source=row.source,
                scope=row.scope,
                agent_id=row.agent_id,
                metadata=row.meta,
                origin=row.origin,
                task_id=row.task_id,
                relevance=row.relevance,
                usage_count=row.usage_count,
                created_at=row.created_at,
                chunks=[ExportedChunk(heading=h, text=t) for h, t in chunks],
            )
            yield record.model_dump_json() + "\n"

    async def import_lines(
        self, lines: Iterable[str], *, batch_chunks: int = 256, may_publish: bool = False
    ) -> ImportResult:
        """Items from JSON Lines (as `export` writes them), re-embedded with the current model, stored in
        batches of about `batch_chunks` chunks."""
        imported = skipped = 0
        batch: list[_Document] = []

        async def store() -> None:
            nonlocal imported, skipped
            for result in await self._store_many(batch, may_publish=may_publish):
                imported, skipped = (
                    imported + (1 if result.chunks else 0),
                    skipped + (0 if result.chunks else 1),
                )
            batch.clear()

        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            if nul.in_json(line.encode()):
                raise nul.refused("body")
            try:
                record = ExportedItem.model_validate_json(line)
                chunks = [(c.heading, c.text) for c in record.chunks]
                body = ItemCreate(
                    title=record.title,
                    content="\n\n".join(t for _, t in chunks),
                    category=record.category,
                    source=record.source,
                    agent_id=record.agent_id,
                    shared=record.scope == "shared",
                    metadata=record.metadata,
                )
            except ValueError as exc:  # pydantic's ValidationError is one
                raise Invalid(f"Line {number} is not a knowledge item: {exc}", code="invalid_import") from exc
            async with self.db.session() as session:
                if record.id and (
                    await session.scalar(
                        all_tenants(
                            select(KnowledgeItemRow.id).where(KnowledgeItemRow.id == record.id),
                            "item ids are unique across tenants",
                        )
                    )
                    is not None
                    or any(d.item_id == record.id for d in batch)
                ):
                    skipped += 1
                    continue
            batch.append(
                _Document(body, body.title, "text", chunks, record.origin, record.task_id, record.id)
            )
            if sum(len(d.chunks) for d in batch) >= batch_chunks:
                await store()
        if batch:
            await store()
        return ImportResult(imported=imported, skipped=skipped)

    async def reembed(self, request: ReembedRequest) -> ReembedResult:
        """Embed every chunk again with `model` (only those embedded with another model by default)."""
        model = request.model or self.settings.knowledge_embedding_model
        previous, self.model = self.model, model
        try:
            probe = await self._embed(["dimension probe"])
        except Exception:
            self.model = previous
            raise
        items = chunks = 0
        async with self.db.session() as session:
            query = tenant_select(KnowledgeItemRow)
            if request.only_stale:
                query = query.where(KnowledgeItemRow.embedding_model != model)
            rows = list(await session.scalars(query))
        for row in rows:
            async with self.db.session() as session:
                parts = list(
                    await session.scalars(
                        tenant_select(KnowledgeChunkRow).where(KnowledgeChunkRow.item_id == row.id)
                    )
                )
                vectors = await self._embed([embedding_text(row.title, c.heading, c.text) for c in parts])
                for chunk, vector in zip(parts, vectors, strict=True):
                    chunk.embedding, chunk.embedding_model = to_blob(vector), model
                await session.execute(
                    tenant_update(KnowledgeItemRow)
                    .where(KnowledgeItemRow.id == row.id)
                    .values(embedding_model=model)
                )
            items, chunks = items + 1, chunks + len(parts)
        await self._reopen(len(probe[0]))
        return ReembedResult(model=model, items=items, chunks=chunks)

    async def _reopen(self, dims: int) -> None:
        """Rebuild the vector index from the database (after re-embedding)."""
        async with self._open_lock:
            path = Path(self.settings.data_dir) / INDEX_FILE
            for stale in (path, path.with_suffix(".json")):
                stale.unlink(missing_ok=True)
            backend, detail = await open_backend(
                self.db, dims, path, prefer=self.settings.knowledge_vector_backend
            )
            if isinstance(backend, PgVectorIndex):
                await backend.refill()
            self.backend, self.backend_detail = backend, f"{self.model} ({dims} d): {detail}"
