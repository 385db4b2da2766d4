"""The knowledge service: stores documents as embedded chunks, searches them (vector, full-text, hybrid),
hands the execution service the best ones for a task, and learns from rewarded tasks."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select, update
from sqlalchemy.pool import SingletonThreadPool, StaticPool

from agent_lightning.core.config import Settings
from agent_lightning.core.db import Database, new_id, utcnow
from agent_lightning.core.errors import Invalid, NotFound
from agent_lightning.core.logging import get_logger
from agent_lightning.core.tenancy import current_tenant
from agent_lightning.knowledge import fulltext, ingest, search
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
    Stats,
)
from agent_lightning.knowledge.tables import KnowledgeChunkRow, KnowledgeItemRow, KnowledgeUseRow
from agent_lightning.knowledge.vectors import PgVectorIndex, UsearchIndex, VectorBackend, from_blob, open_backend, to_blob
from agent_lightning.models.schemas import EmbeddingGateway, ModelGateway, embed_unit_vectors

log = get_logger(__name__)

RELEVANCE_STEP = 0.2
RELEVANCE_RANGE = (0.2, 3.0)


def content_hash(*parts: str) -> str:
    """A stable hash of an item's text, for deduplicating uploads."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def embedding_text(title: str, heading: str, body: str) -> str:
    """What is embedded for a chunk: where it sits, then what it says."""
    where = " > ".join(part for part in (title, heading) if part)
    return f"{where}\n{body}" if where else body


class KnowledgeService:
    """Knowledge items, their index, search, and learning. Depends on the model service's Protocols only."""

    def __init__(self, *, settings: Settings, db: Database, embeddings: EmbeddingGateway,
                 models: ModelGateway | None = None) -> None:
        self.settings = settings
        self.db = db
        self.embeddings = embeddings
        self.models = models
        self.model = settings.knowledge_embedding_model
        self.backend: VectorBackend | None = None
        self.backend_detail = "not opened yet (opens on first use)"
        self._open_lock = asyncio.Lock()
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
        if isinstance(self.backend, UsearchIndex):
            await self.backend.flush()

    def health(self) -> tuple[bool, str]:
        """Whether search works and which vector backend serves it."""
        return self.backend is not None, self.backend_detail

    async def _index(self) -> VectorBackend:
        if self.backend is None:
            async with self._open_lock:
                if self.backend is None:
                    dims = await self._dimensions()
                    path = Path(self.settings.data_dir) / "knowledge.usearch"
                    backend, detail = await open_backend(self.db, dims, path, prefer=self.settings.knowledge_vector_backend)
                    self.backend, self.backend_detail = backend, f"{self.model} ({dims} d): {detail}"
                    log.info("knowledge_vector_backend", backend=backend.name, detail=detail)
        return self.backend

    async def _dimensions(self) -> int:
        async with self.db.session() as session:
            blob = await session.scalar(
                select(KnowledgeChunkRow.embedding).where(KnowledgeChunkRow.embedding_model == self.model).limit(1))
        if blob is not None:
            return len(blob) // 4
        return len((await self._embed(["dimension probe"]))[0])

    async def _embed(self, texts: list[str]) -> np.ndarray:
        return await embed_unit_vectors(self.embeddings, self.model, texts, "knowledge")

    # --- items ----------------------------------------------------------------------------------------

    async def create(self, body: ItemCreate, *, origin: str = "api", task_id: str | None = None,
                     item_id: str | None = None) -> IngestResult:
        """Chunk, embed and store a document (an identical document already stored is returned as is)."""
        fmt, chunks = ingest.chunk_document(body.content, fmt=body.format, size=self.settings.knowledge_chunk_chars,
                                            overlap=self.settings.knowledge_chunk_overlap)
        title = body.title or ingest.document_title(body.source, chunks)
        return await self._store(body, title, fmt, [(c.heading, c.text) for c in chunks], origin=origin,
                                 task_id=task_id, item_id=item_id)

    async def upload(self, data: bytes, filename: str, *, fmt: str | None = None, **fields: Any) -> IngestResult:
        """Ingest a file's bytes (text, Markdown, HTML or PDF)."""
        kind = ingest.detect_format(filename, fmt)
        text = ingest.decode(data, kind)
        body = ItemCreate(content=text, format="text" if kind == "pdf" else kind, source=filename or "upload", **fields)
        result = await self.create(body, origin="upload")
        result.format = kind
        return result

    async def _store(self, body: ItemCreate, title: str, fmt: str, chunks: list[tuple[str, str]], *, origin: str,
                     task_id: str | None, item_id: str | None = None) -> IngestResult:
        tenant = current_tenant()
        scope = "shared" if body.shared else "agent" if body.agent_id else "tenant"
        digest = content_hash(scope, body.agent_id or "", *[t for _, t in chunks])
        async with self.db.session() as session:
            existing = await session.scalar(select(KnowledgeItemRow).where(
                KnowledgeItemRow.tenant_id == tenant, KnowledgeItemRow.content_hash == digest))
            if existing is not None:
                return IngestResult(item=await self._item(session, existing), format=fmt, chunks=0)
        backend = await self._index()
        vectors = await self._embed([embedding_text(title, h, t) for h, t in chunks])
        row = KnowledgeItemRow(
            id=item_id or new_id(), tenant_id=tenant, title=title, category=body.category, source=body.source,
            scope=scope, agent_id=body.agent_id, meta=body.metadata, origin=origin, task_id=task_id,
            content_hash=digest, usage_count=0, relevance=1.0, embedding_model=self.model,
        )
        rows = [KnowledgeChunkRow(tenant_id=tenant, item_id=row.id, ordinal=n, heading=h[:500], text=t,
                                  embedding=to_blob(v), embedding_model=self.model)
                for n, ((h, t), v) in enumerate(zip(chunks, vectors))]
        async with self.db.session() as session:
            session.add(row)
            await session.flush()
            session.add_all(rows)
            await session.flush()
            keys = [r.seq for r in rows]
            if isinstance(backend, PgVectorIndex):
                await backend.write(session, keys, vectors)
            item = await self._item(session, row)
        if not isinstance(backend, PgVectorIndex):
            await backend.add(keys, vectors)
        log.info("knowledge_item_stored", item_id=row.id, chunks=len(rows), origin=origin)
        return IngestResult(item=item, format=fmt, chunks=len(rows))

    async def get(self, item_id: str) -> Item:
        """One visible item."""
        async with self.db.session() as session:
            return await self._item(session, await self._row(session, item_id))

    async def list(self, filters: Filters, *, limit: int = 50, offset: int = 0) -> ItemPage:
        """Items the tenant can see, newest first."""
        async with self.db.session() as session:
            query = select(KnowledgeItemRow).where(self._visible(filters))
            total = await session.scalar(select(func.count()).select_from(query.subquery()))
            rows = await session.scalars(query.order_by(KnowledgeItemRow.created_at.desc()).limit(limit).offset(offset))
            return ItemPage(items=[await self._item(session, r) for r in rows], total=int(total))

    async def delete(self, item_id: str) -> None:
        """Delete an item, its chunks (and so its index entries) and its usage records."""
        async with self.db.session() as session:
            row = await self._row(session, item_id, owned=True)
            keys = list(await session.scalars(select(KnowledgeChunkRow.seq).where(KnowledgeChunkRow.item_id == row.id)))
            await session.execute(delete(KnowledgeChunkRow).where(KnowledgeChunkRow.item_id == row.id))
            await session.execute(delete(KnowledgeUseRow).where(KnowledgeUseRow.item_id == row.id))
            await session.delete(row)
        if self.backend is not None:
            await self.backend.remove(keys)

    def _visible(self, filters: Filters):
        tenant = current_tenant()
        mine = KnowledgeItemRow.tenant_id == tenant
        if filters.agent_id:
            mine = mine & (KnowledgeItemRow.agent_id.is_(None) | (KnowledgeItemRow.agent_id == filters.agent_id))
        condition = mine | (KnowledgeItemRow.scope == "shared")
        if filters.category:
            condition = condition & KnowledgeItemRow.category.in_(filters.category)
        if filters.source:
            condition = condition & (KnowledgeItemRow.source == filters.source)
        if filters.created_after:
            condition = condition & (KnowledgeItemRow.created_at >= filters.created_after)
        if filters.created_before:
            condition = condition & (KnowledgeItemRow.created_at < filters.created_before)
        return condition

    async def _row(self, session, item_id: str, *, owned: bool = False) -> KnowledgeItemRow:
        row = await session.get(KnowledgeItemRow, item_id)
        allowed = row is not None and (row.tenant_id == current_tenant() or (row.scope == "shared" and not owned))
        if not allowed:
            raise NotFound(f"Unknown knowledge item '{item_id}'.", code="knowledge_item_not_found")
        return row

    async def _item(self, session, row: KnowledgeItemRow) -> Item:
        chunks = await session.scalar(select(func.count()).where(KnowledgeChunkRow.item_id == row.id))
        return Item(
            id=row.id, title=row.title, category=row.category, source=row.source, scope=row.scope,
            agent_id=row.agent_id, metadata=row.meta, origin=row.origin, task_id=row.task_id, chunks=int(chunks),
            usage_count=row.usage_count, relevance=round(row.relevance, 4), embedding_model=row.embedding_model,
            created_at=row.created_at, updated_at=row.updated_at, last_used_at=row.last_used_at,
        )

    # --- search ---------------------------------------------------------------------------------------

    async def search(self, request: SearchRequest) -> SearchResult:
        """Vector, full-text or hybrid (reciprocal rank fusion) search within the filters."""
        started = time.perf_counter()
        hits = [hit for hit, _ in await self._search(request)]
        return SearchResult(query=request.query, mode=request.mode, hits=hits, vector_backend=self.backend_detail,
                            latency_ms=round((time.perf_counter() - started) * 1000, 2))

    async def _search(self, request: SearchRequest, query_vector: np.ndarray | None = None) -> list[tuple[Hit, float | None]]:
        """Hits best first, each with its cosine similarity to the query (None in full-text mode)."""
        # Candidates per retriever. Fusing deeper lists lets chunks that match one common query word (deep in
        # the full-text ranking) outrank the vector search's best hits; see benchmarks/retrieval.
        depth = max(request.k * 2, 20)
        tenant = current_tenant()

        async def vector_side() -> list[int]:
            nonlocal query_vector
            if request.mode not in ("vector", "hybrid"):
                return []
            query_vector = query_vector if query_vector is not None else (await self._embed([request.query]))[0]
            return await self._vector_ranking(query_vector, request.filters, tenant, depth)

        async def text_side() -> list[int]:
            if request.mode not in ("fulltext", "hybrid"):
                return []
            async with self.db.session() as session:
                return [seq for seq, _ in await fulltext.search(session, request.query, request.filters, tenant, depth)]

        if request.mode == "hybrid" and self._concurrent:
            # The two rankings on two connections at once: hybrid search takes the longer of the two (the
            # query's embedding included), not their sum.
            vector_keys, text_keys = await asyncio.gather(vector_side(), text_side())
        else:
            vector_keys, text_keys = await vector_side(), await text_side()
        if request.mode == "hybrid":
            scores = search.fuse(vector_keys, text_keys)
        else:
            ranking = vector_keys or text_keys
            scores = {key: 1.0 / (search.RRF_K + rank) for rank, key in enumerate(ranking, start=1)}
        hits = await self._hydrate(scores, vector_keys, text_keys, query_vector, rerank=request.rerank)
        return hits[: request.k]

    async def _vector_ranking(self, vector: np.ndarray, filters: Filters, tenant: str, depth: int) -> list[int]:
        """Nearest visible chunks: widen the index query until enough pass the filters."""
        backend = await self._index()
        want = depth
        while True:
            found = await backend.search(vector, want)
            async with self.db.session() as session:
                allowed = await search.visible(session, [key for key, _ in found], filters, tenant, self.model)
            keys = [key for key, _ in found if key in allowed]
            if len(keys) >= depth or len(found) < want or want >= 20 * depth:
                return keys[:depth]
            want *= 4

    async def _hydrate(self, scores: dict[int, float], vector_keys: list[int], text_keys: list[int],
                       query_vector: np.ndarray | None, *, rerank: bool) -> list[tuple[Hit, float | None]]:
        if not scores:
            return []
        chunk, item = KnowledgeChunkRow, KnowledgeItemRow
        async with self.db.session() as session:
            rows = (await session.execute(
                select(chunk.seq, chunk.heading, chunk.text, chunk.embedding, item.id, item.title, item.category,
                       item.source, item.relevance, item.usage_count, item.last_used_at, item.created_at)
                .join(item, item.id == chunk.item_id).where(chunk.seq.in_(list(scores)))
            )).all()
        vector_rank = {key: n for n, key in enumerate(vector_keys, start=1)}
        text_rank = {key: n for n, key in enumerate(text_keys, start=1)}
        hits = []
        for (seq, heading, body, embedding, item_id, title, category, source, relevance, usage_count, last_used,
             created) in rows:
            score = scores[seq]
            if rerank:
                score *= search.feedback_factor(relevance, usage_count, last_used, created,
                                                self.settings.knowledge_half_life_days)
            similarity = None
            if query_vector is not None and len(embedding) == len(query_vector) * 4:
                similarity = float(from_blob(embedding) @ query_vector)
            hits.append((Hit(item_id=item_id, chunk=seq, title=title, heading=heading, text=body, category=category,
                             source=source, score=round(score, 6), vector_rank=vector_rank.get(seq),
                             text_rank=text_rank.get(seq)), similarity))
        hits.sort(key=lambda pair: -pair[0].score)
        return hits

    # --- use by executions ----------------------------------------------------------------------------

    async def context(self, request: ContextRequest) -> KnowledgeContext:
        """The best chunks for a task that fit the token budget, labelled K1, K2 … for citation."""
        if request.budget_tokens <= 0:
            return KnowledgeContext(text="", used=[], tokens=0)
        query_vector = (await self._embed([request.task[:4000]]))[0]
        hits = await self._search(SearchRequest(query=request.task[:4000], k=request.k,
                                                filters=Filters(agent_id=request.agent_id)), query_vector)
        blocks, used, spent = [], [], 0
        for hit, similarity in hits:
            if similarity is None or similarity < self.settings.knowledge_min_similarity:
                continue
            marker = f"K{len(used) + 1}"
            block = self._fit(f"[{marker}] {hit.title}{' — ' + hit.heading if hit.heading else ''}\n{hit.text}",
                              request.budget_tokens - spent)
            if block is None:
                break
            blocks.append(block)
            spent += ingest.estimate_tokens(block)
            used.append(Citation(marker=marker, item_id=hit.item_id, chunk=hit.chunk, title=hit.title,
                                 source=hit.source, score=round(similarity, 4)))
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

    async def _record_use(self, task_id: str, used: list[Citation]) -> None:
        items = {c.item_id: c.score for c in used}
        now = utcnow()
        async with self.db.session() as session:
            for item_id, score in items.items():
                session.add(KnowledgeUseRow(tenant_id=current_tenant(), task_id=task_id, item_id=item_id, score=score))
            await session.execute(update(KnowledgeItemRow).where(KnowledgeItemRow.id.in_(list(items)))
                                  .values(usage_count=KnowledgeItemRow.usage_count + 1, last_used_at=now))

    async def learn(self, request: LearnRequest) -> LearnResult:
        """Move the relevance of the items the task used; distil a high-reward task into a new item."""
        adjusted = await self._reward_uses(request.task_id, request.reward)
        if request.reward < self.settings.knowledge_learn_threshold:
            return LearnResult(action="skipped", reason=f"reward {request.reward:.2f} is below the threshold", adjusted=adjusted)
        async with self.db.session() as session:
            done = await session.scalar(select(KnowledgeItemRow.id).where(
                KnowledgeItemRow.tenant_id == current_tenant(), KnowledgeItemRow.origin == "learned",
                KnowledgeItemRow.task_id == request.task_id))
        if done:
            return LearnResult(action="skipped", reason="already learned from this task", item_id=done, adjusted=adjusted)
        model = self.settings.knowledge_distill_model or self.settings.default_model
        entry, author = await distil(self.models, model, request.task, request.answer)
        twin = await self._near_duplicate(entry, request.agent_id)
        if twin is not None:
            await self._merge(twin, request)
            return LearnResult(action="merged", reason="a near-identical item exists", item_id=twin, adjusted=adjusted)
        body = ItemCreate(title=request.task[:120], content=entry, category="best_practices", source=f"task:{request.task_id}",
                          agent_id=request.agent_id,
                          metadata={"provenance": [request.task_id], "reward": request.reward, "distilled_by": author})
        result = await self.create(body, origin="learned", task_id=request.task_id)
        return LearnResult(action="created", reason=f"reward {request.reward:.2f}", item_id=result.item.id, adjusted=adjusted)

    async def _reward_uses(self, task_id: str, reward: float) -> int:
        step = RELEVANCE_STEP * (reward - 0.5) * 2
        low, high = RELEVANCE_RANGE
        async with self.db.session() as session:
            uses = list(await session.scalars(select(KnowledgeUseRow).where(
                KnowledgeUseRow.task_id == task_id, KnowledgeUseRow.tenant_id == current_tenant(),
                KnowledgeUseRow.reward.is_(None))))
            for use in uses:
                use.reward = reward
                item = await session.get(KnowledgeItemRow, use.item_id)
                if item is not None:
                    item.relevance = min(high, max(low, item.relevance + step))
        return len(uses)

    async def _near_duplicate(self, entry: str, agent_id: str | None) -> str | None:
        hits = await self._search(SearchRequest(query=entry, k=1, mode="vector", rerank=False, filters=Filters(agent_id=agent_id)))
        if hits and (hits[0][1] or 0.0) >= self.settings.knowledge_dedup_similarity:
            return hits[0][0].item_id
        return None

    async def _merge(self, item_id: str, request: LearnRequest) -> None:
        async with self.db.session() as session:
            row = await session.get(KnowledgeItemRow, item_id)
            provenance = list(row.meta.get("provenance", []))
            if request.task_id not in provenance:
                provenance.append(request.task_id)
            row.meta = {**row.meta, "provenance": provenance}
            row.relevance = min(RELEVANCE_RANGE[1], row.relevance + RELEVANCE_STEP / 2)

    # --- maintenance ----------------------------------------------------------------------------------

    async def stats(self) -> Stats:
        """Counts by category and embedding model, learned items and total use."""
        tenant = current_tenant()
        async with self.db.session() as session:
            mine = KnowledgeItemRow.tenant_id == tenant
            items, usage = (await session.execute(select(func.count(), func.coalesce(func.sum(KnowledgeItemRow.usage_count), 0)).where(mine))).one()
            chunks = await session.scalar(select(func.count()).where(KnowledgeChunkRow.tenant_id == tenant))
            by_category = dict((await session.execute(select(KnowledgeItemRow.category, func.count()).where(mine).group_by(KnowledgeItemRow.category))).all())
            by_model = dict((await session.execute(select(KnowledgeItemRow.embedding_model, func.count()).where(mine).group_by(KnowledgeItemRow.embedding_model))).all())
            learned = await session.scalar(select(func.count()).where(mine, KnowledgeItemRow.origin == "learned"))
        return Stats(items=items, chunks=chunks, by_category=by_category, by_embedding_model=by_model, learned=learned,
                     total_usage=int(usage), vector_backend=self.backend_detail, embedding_model=self.model)

    async def export(self) -> AsyncIterator[str]:
        """The tenant's items as JSON Lines, each with its chunks."""
        async with self.db.session() as session:
            rows = list(await session.scalars(select(KnowledgeItemRow).where(KnowledgeItemRow.tenant_id == current_tenant())
                                              .order_by(KnowledgeItemRow.created_at)))
        for row in rows:
            async with self.db.session() as session:
                chunks = (await session.execute(select(KnowledgeChunkRow.heading, KnowledgeChunkRow.text)
                                                .where(KnowledgeChunkRow.item_id == row.id).order_by(KnowledgeChunkRow.ordinal))).all()
            record = ExportedItem(
                id=row.id, title=row.title, category=row.category, source=row.source, scope=row.scope, agent_id=row.agent_id,
                metadata=row.meta, origin=row.origin, task_id=row.task_id, relevance=row.relevance,
                usage_count=row.usage_count, created_at=row.created_at,
                chunks=[ExportedChunk(heading=h, text=t) for h, t in chunks])
            yield record.model_dump_json() + "\n"

    async def import_lines(self, lines: Iterable[str]) -> ImportResult:
        """Items from JSON Lines (as `export` writes them), re-embedded with the current model."""
        imported = skipped = 0
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = ExportedItem.model_validate_json(line)
            except ValueError as exc:
                raise Invalid(f"Line {number} is not a knowledge item: {exc}", code="invalid_import") from exc
            chunks = [(c.heading, c.text) for c in record.chunks]
            body = ItemCreate(title=record.title, content="\n\n".join(t for _, t in chunks), category=record.category,
                              source=record.source, agent_id=record.agent_id, shared=record.scope == "shared",
                              metadata=record.metadata)
            async with self.db.session() as session:
                if record.id and await session.get(KnowledgeItemRow, record.id) is not None:
                    skipped += 1
                    continue
            result = await self._store(body, body.title, "text", chunks, origin=record.origin, task_id=record.task_id,
                                       item_id=record.id)
            imported += 1 if result.chunks else 0
            skipped += 0 if result.chunks else 1
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
            query = select(KnowledgeItemRow).where(KnowledgeItemRow.tenant_id == current_tenant())
            if request.only_stale:
                query = query.where(KnowledgeItemRow.embedding_model != model)
            rows = list(await session.scalars(query))
        for row in rows:
            async with self.db.session() as session:
                parts = list(await session.scalars(select(KnowledgeChunkRow).where(KnowledgeChunkRow.item_id == row.id)))
                vectors = await self._embed([embedding_text(row.title, c.heading, c.text) for c in parts])
                for chunk, vector in zip(parts, vectors):
                    chunk.embedding, chunk.embedding_model = to_blob(vector), model
                await session.execute(update(KnowledgeItemRow).where(KnowledgeItemRow.id == row.id).values(embedding_model=model))
            items, chunks = items + 1, chunks + len(parts)
        await self._reopen(len(probe[0]))
        return ReembedResult(model=model, items=items, chunks=chunks)

    async def _reopen(self, dims: int) -> None:
        """Rebuild the vector index from the database (after re-embedding)."""
        async with self._open_lock:
            path = Path(self.settings.data_dir) / "knowledge.usearch"
            for stale in (path, path.with_suffix(".json")):
                stale.unlink(missing_ok=True)
            backend, detail = await open_backend(self.db, dims, path, prefer=self.settings.knowledge_vector_backend)
            if isinstance(backend, PgVectorIndex):
                await backend.refill()
            self.backend, self.backend_detail = backend, f"{self.model} ({dims} d): {detail}"
