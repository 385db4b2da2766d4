"""Vector search over the chunks. The vectors in the database are the source of truth; an index is a
derived copy that can be rebuilt from them at any time.

- PostgreSQL with pgvector: the `vec` column and its HNSW index, queried in SQL.
- SQLite: a usearch HNSW index in a file beside the database (chosen by measurement, see
  benchmarks/retrieval), rebuilt when missing or stale.
- Otherwise (PostgreSQL without pgvector, usearch missing): exact cosine search in the app with numpy.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Protocol

import numpy as np
from sqlalchemy import func, select, text

from agent_lightning.core.db import Database
from agent_lightning.core.logging import get_logger
from agent_lightning.knowledge.tables import KnowledgeChunkRow

log = get_logger(__name__)

PGVECTOR_DIMENSIONS = 384


def to_blob(vector: list[float] | np.ndarray) -> bytes:
    """A vector as little-endian float32 bytes."""
    return np.asarray(vector, dtype="<f4").tobytes()


def from_blob(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4")


def pg_literal(vector: list[float] | np.ndarray) -> str:
    """A vector as pgvector's text form."""
    return "[" + ",".join(f"{x:.7g}" for x in np.asarray(vector, dtype=np.float32)) + "]"


class VectorBackend(Protocol):
    name: str

    async def sync(self) -> None: ...

    async def add(self, keys: list[int], vectors: np.ndarray) -> None: ...

    async def remove(self, keys: list[int]) -> None: ...

    async def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]: ...


class _Generation:
    """What the index was built from: chunk count and highest key (chunk keys are never reused)."""

    @staticmethod
    async def of(db: Database) -> tuple[int, int]:
        async with db.session() as session:
            count, top = (await session.execute(select(func.count(), func.max(KnowledgeChunkRow.seq)))).one()
        return int(count), int(top or 0)


class InMemoryIndex:
    """Shared logic of the app-side indexes: load from the database, follow new rows, rebuild on deletes
    made elsewhere. `sync_every_s` bounds how stale a replica may be."""

    name = "exact"

    def __init__(self, db: Database, dims: int, *, sync_every_s: float = 2.0) -> None:
        self.db = db
        self.dims = dims
        self.sync_every_s = sync_every_s
        self.count = 0
        self.top = 0
        self._checked = 0.0
        self._lock = asyncio.Lock()

    async def sync(self, *, force: bool = False) -> None:
        """Bring the index in line with the database (new rows appended, full rebuild after deletes)."""
        if not force and time.monotonic() - self._checked < self.sync_every_s:
            return
        async with self._lock:
            count, top = await _Generation.of(self.db)
            self._checked = time.monotonic()
            if (count, top) == (self.count, self.top):
                return
            if count - self.count == await self._count_after(self.top) and top >= self.top:
                await self._load(after=self.top)
            else:
                self._reset()
                await self._load(after=0)
            self.count, self.top = count, top
            self._saved()

    async def _count_after(self, seq: int) -> int:
        async with self.db.session() as session:
            return int(await session.scalar(select(func.count()).where(KnowledgeChunkRow.seq > seq)))

    async def _load(self, *, after: int, page: int = 5000) -> None:
        last = after
        while True:
            async with self.db.session() as session:
                rows = (await session.execute(
                    select(KnowledgeChunkRow.seq, KnowledgeChunkRow.embedding)
                    .where(KnowledgeChunkRow.seq > last).order_by(KnowledgeChunkRow.seq).limit(page)
                )).all()
            rows = [(seq, blob) for seq, blob in rows if len(blob) == self.dims * 4]
            if not rows:
                return
            keys = [seq for seq, _ in rows]
            self._add(keys, np.stack([from_blob(blob) for _, blob in rows]))
            last = keys[-1]

    async def add(self, keys: list[int], vectors: np.ndarray) -> None:
        """Index rows this process just committed (read back from the database, the source of truth)."""
        await self.sync(force=True)

    async def remove(self, keys: list[int]) -> None:
        async with self._lock:
            self._remove(keys)
            self.count -= len(keys)
            self._saved()

    async def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The `k` nearest keys by cosine similarity, best first."""
        await self.sync()
        return self._search(np.asarray(vector, dtype=np.float32), k)

    # exact search: a key array and a matrix of unit vectors
    def _reset(self) -> None:
        self.keys = np.zeros(0, dtype=np.int64)
        self.matrix = np.zeros((0, self.dims), dtype=np.float32)

    def _add(self, keys: list[int], vectors: np.ndarray) -> None:
        if not hasattr(self, "keys"):
            self._reset()
        self.keys = np.concatenate([self.keys, np.asarray(keys, dtype=np.int64)])
        self.matrix = np.concatenate([self.matrix, vectors.astype(np.float32)])

    def _remove(self, keys: list[int]) -> None:
        if not hasattr(self, "keys"):
            return
        keep = ~np.isin(self.keys, np.asarray(keys, dtype=np.int64))
        self.keys, self.matrix = self.keys[keep], self.matrix[keep]

    def _search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        if not hasattr(self, "keys") or not len(self.keys):
            return []
        scores = self.matrix @ vector
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [(int(self.keys[i]), float(scores[i])) for i in top]

    def _saved(self) -> None:
        """Persist the index (nothing to do for the exact one)."""


class UsearchIndex(InMemoryIndex):
    """An HNSW index (usearch) in `path`, with a sidecar JSON of what it was built from."""

    name = "usearch"

    def __init__(self, db: Database, dims: int, path: Path, **kwargs) -> None:
        super().__init__(db, dims, **kwargs)
        self.path = path
        self.meta_path = path.with_suffix(".json")
        self._dirty = 0

    def _reset(self) -> None:
        from usearch.index import Index

        self.index = Index(ndim=self.dims, metric="cos", dtype="f32", connectivity=16, expansion_add=128,
                           expansion_search=96)

    async def open(self) -> None:
        """Load the index file when it matches the database; otherwise rebuild it."""
        count, top = await _Generation.of(self.db)
        meta = json.loads(self.meta_path.read_text()) if self.meta_path.exists() else {}
        self._reset()
        if self.path.exists() and meta == {"count": count, "top": top, "dims": self.dims}:
            self.index.load(str(self.path))
            self.count, self.top = count, top
            self._checked = time.monotonic()
            log.info("vector_index_loaded", path=str(self.path), vectors=len(self.index))
            return
        started = time.perf_counter()
        await self.sync(force=True)
        self._write()
        log.info("vector_index_rebuilt", path=str(self.path), vectors=len(self.index),
                 seconds=round(time.perf_counter() - started, 2), reason="missing" if not meta else "stale")

    def _add(self, keys: list[int], vectors: np.ndarray) -> None:
        if not hasattr(self, "index"):
            self._reset()
        self.index.add(np.asarray(keys, dtype=np.uint64), vectors.astype(np.float32))

    def _remove(self, keys: list[int]) -> None:
        for key in keys:
            if self.index.contains(key):
                self.index.remove(key)

    def _search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        if not len(self.index):
            return []
        found = self.index.search(vector, min(k, len(self.index)))
        return [(int(key), 1.0 - float(distance)) for key, distance in zip(found.keys, found.distances)]

    def _saved(self) -> None:
        self._dirty += 1

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.index.save(str(self.path))
        self.meta_path.write_text(json.dumps({"count": self.count, "top": self.top, "dims": self.dims}))
        self._dirty = 0

    async def flush(self) -> None:
        """Write the index file if it changed since the last write."""
        if self._dirty:
            async with self._lock:
                await asyncio.to_thread(self._write)


class PgVectorIndex:
    """Nearest neighbours in SQL through pgvector's HNSW index."""

    name = "pgvector"

    def __init__(self, db: Database, *, ef_search: int = 100) -> None:
        self.db = db
        self.ef_search = ef_search

    async def sync(self) -> None:
        """Nothing to do: the index is the column's."""

    async def add(self, keys: list[int], vectors: np.ndarray) -> None:
        async with self.db.session() as session:
            await self.write(session, keys, vectors)

    @staticmethod
    async def write(session, keys: list[int], vectors: np.ndarray) -> None:
        """Set the vector column of new chunks, in the caller's transaction."""
        params = [{"v": pg_literal(v), "k": key} for key, v in zip(keys, vectors) if len(v) == PGVECTOR_DIMENSIONS]
        if params:
            await session.execute(text("UPDATE knowledge_chunks SET vec = CAST(:v AS vector) WHERE seq = :k"), params)

    async def refill(self, page: int = 2000) -> None:
        """Copy every stored vector into the column (after re-embedding)."""
        last = 0
        while True:
            async with self.db.session() as session:
                rows = (await session.execute(
                    select(KnowledgeChunkRow.seq, KnowledgeChunkRow.embedding).where(KnowledgeChunkRow.seq > last)
                    .order_by(KnowledgeChunkRow.seq).limit(page))).all()
                if not rows:
                    return
                await session.execute(text("UPDATE knowledge_chunks SET vec = NULL WHERE seq > :a AND seq <= :b"),
                                      {"a": last, "b": rows[-1][0]})
                await self.write(session, [s for s, _ in rows], [from_blob(b) for _, b in rows])
            last = rows[-1][0]

    async def remove(self, keys: list[int]) -> None:
        """Nothing to do: rows carry their vectors."""

    async def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        async with self.db.session() as session:
            await session.execute(text(f"SET LOCAL hnsw.ef_search = {max(self.ef_search, k)}"))
            rows = await session.execute(
                text("SELECT seq, 1 - (vec <=> CAST(:v AS vector)) AS score FROM knowledge_chunks "
                     "WHERE vec IS NOT NULL ORDER BY vec <=> CAST(:v AS vector) LIMIT :k"),
                {"v": pg_literal(vector), "k": k},
            )
            return [(int(seq), float(score)) for seq, score in rows]


async def has_pgvector(db: Database) -> bool:
    """Whether the chunks table has the pgvector column (the migration adds it when the server can)."""
    async with db.session() as session:
        found = await session.scalar(text(
            "SELECT 1 FROM information_schema.columns WHERE table_name = 'knowledge_chunks' AND column_name = 'vec'"))
    return found is not None


async def open_backend(db: Database, dims: int, index_path: Path, *, prefer: str = "auto") -> tuple[VectorBackend, str]:
    """The vector backend for this database, and a sentence saying which one and why."""
    if not db.is_sqlite:
        if prefer in ("auto", "pgvector") and dims == PGVECTOR_DIMENSIONS and await has_pgvector(db):
            return PgVectorIndex(db), "pgvector HNSW index"
        backend = InMemoryIndex(db, dims)
        await backend.sync(force=True)
        return backend, "exact search in the app (pgvector is not installed on this PostgreSQL)"
    if prefer in ("auto", "usearch"):
        try:
            index = UsearchIndex(db, dims, index_path)
            await index.open()
            return index, f"usearch HNSW index in {index_path.name} (SQLite holds the vectors)"
        except ImportError:
            log.warning("usearch_missing", fallback="exact")
    backend = InMemoryIndex(db, dims)
    await backend.sync(force=True)
    return backend, "exact search in the app"
