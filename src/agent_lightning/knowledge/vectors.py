"""Vector search over the chunks. The vectors in the database are the source of truth; an index is a
derived copy that can be rebuilt from them at any time.

- PostgreSQL with pgvector: the `vec` column and its HNSW index, queried in SQL.
- SQLite: an hnswlib HNSW index in a file beside the database (chosen by measurement, see
  benchmarks/retrieval), rebuilt when missing or stale.
- Otherwise (PostgreSQL without pgvector, hnswlib missing): exact cosine search in the app with numpy.
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
from agent_lightning.core.tenancy import ALL_TENANTS
from agent_lightning.knowledge.tables import KnowledgeChunkRow

log = get_logger(__name__)

PGVECTOR_DIMENSIONS = 384
INDEX_FILE = "knowledge.hnsw"
INDEX = {ALL_TENANTS: "the vector index holds every tenant's chunks; a search filters them by tenant"}
"""The HNSW index file in the data dir (its sidecar: knowledge.json)."""
LEGACY_INDEX_FILE = "knowledge.usearch"
"""The index file of earlier versions, deleted when the new one is built."""


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
            count, top = (
                await session.execute(
                    select(func.count(), func.max(KnowledgeChunkRow.seq)), execution_options=INDEX
                )
            ).one()
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
                seen, last = await self._load(after=self.top)
                self.count, self.top = self.count + seen, max(self.top, last)
            else:
                self._reset()
                self.count, self.top = await self._load(after=0)
            self._saved()

    async def _count_after(self, seq: int) -> int:
        async with self.db.session() as session:
            return int(
                await session.scalar(
                    select(func.count()).where(KnowledgeChunkRow.seq > seq), execution_options=INDEX
                )
            )

    async def _load(self, *, after: int, page: int = 5000) -> tuple[int, int]:
        """Index the rows after key `after`; return how many rows were read and the last key. Rows committed
        since the generation was read are included, so the index's count and top come from what was read
        (taking them from the generation made the next sync load those rows a second time)."""
        seen, last = 0, after
        while True:
            async with self.db.session() as session:
                rows = (
                    await session.execute(
                        select(KnowledgeChunkRow.seq, KnowledgeChunkRow.embedding)
                        .where(KnowledgeChunkRow.seq > last)
                        .order_by(KnowledgeChunkRow.seq)
                        .limit(page),
                        execution_options=INDEX,
                    )
                ).all()
            if not rows:
                return seen, last
            seen, last = seen + len(rows), rows[-1][0]
            rows = [(seq, blob) for seq, blob in rows if len(blob) == self.dims * 4]  # this model's vectors
            if rows:
                self._add([seq for seq, _ in rows], np.stack([from_blob(blob) for _, blob in rows]))

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


class HnswIndex(InMemoryIndex):
    """An HNSW graph (hnswlib) in `path`, with a sidecar JSON of what it was built from.

    hnswlib links the C++ runtime of the platform like every other native dependency. The index library used
    before (usearch) carried its own copy of libstdc++ whose locale ids the dynamic linker shares with the
    system's: loaded before onnxruntime, it crashed the process (SIGSEGV) at the first embedding.
    """

    name = "hnsw"
    M = 16
    EF_CONSTRUCTION = 128
    EF_SEARCH = 96

    def __init__(self, db: Database, dims: int, path: Path, **kwargs) -> None:
        super().__init__(db, dims, **kwargs)
        self.path = path
        self.meta_path = path.with_suffix(".json")
        self._dirty = 0
        self._live = 0  # elements not marked deleted

    def _reset(self, capacity: int = 1024) -> None:
        import hnswlib

        self.index = hnswlib.Index(space="cosine", dim=self.dims)
        self.index.init_index(max_elements=capacity, ef_construction=self.EF_CONSTRUCTION, M=self.M)
        self._live = 0

    async def open(self) -> None:
        """Load the index file when it matches the database; otherwise rebuild it."""
        count, top = await _Generation.of(self.db)
        meta = json.loads(self.meta_path.read_text()) if self.meta_path.exists() else {}
        self._reset()
        if (
            self.path.exists()
            and "live" in meta
            and meta == {"count": count, "top": top, "dims": self.dims, "live": meta["live"]}
        ):
            self.index.load_index(str(self.path), max_elements=max(1024, meta["live"] * 2))
            self.count, self.top, self._live = count, top, meta["live"]
            self._checked = time.monotonic()
            log.info("vector_index_loaded", path=str(self.path), vectors=self._live)
            return
        started = time.perf_counter()
        await self.sync(force=True)
        self._write()
        self.path.with_name(LEGACY_INDEX_FILE).unlink(missing_ok=True)
        log.info(
            "vector_index_rebuilt",
            path=str(self.path),
            vectors=self._live,
            seconds=round(time.perf_counter() - started, 2),
            reason="missing" if not meta else "stale",
        )

    def _add(self, keys: list[int], vectors: np.ndarray) -> None:
        if not hasattr(self, "index"):
            self._reset()
        needed = self.index.get_current_count() + len(keys)
        if needed > self.index.get_max_elements():
            self.index.resize_index(max(needed, 2 * self.index.get_max_elements()))
        self.index.add_items(vectors.astype(np.float32), np.asarray(keys, dtype=np.int64))
        self._live += len(keys)

    def _remove(self, keys: list[int]) -> None:
        for key in keys:
            try:
                self.index.mark_deleted(key)
            except RuntimeError:  # not in the index, or already deleted
                continue
            self._live -= 1

    def _search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        k = min(k, self._live)
        if k <= 0:
            return []
        self.index.set_ef(max(self.EF_SEARCH, k))
        labels, distances = self.index.knn_query(vector, k=k)
        return [
            (int(key), 1.0 - float(distance)) for key, distance in zip(labels[0], distances[0], strict=True)
        ]

    def _saved(self) -> None:
        self._dirty += 1

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.index.save_index(str(self.path))
        self.meta_path.write_text(
            json.dumps({"count": self.count, "top": self.top, "dims": self.dims, "live": self._live})
        )
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
        params = [
            {"v": pg_literal(v), "k": key}
            for key, v in zip(keys, vectors, strict=True)
            if len(v) == PGVECTOR_DIMENSIONS
        ]
        if params:
            await session.execute(
                text("UPDATE knowledge_chunks SET vec = CAST(:v AS vector) WHERE seq = :k"), params
            )

    async def refill(self, page: int = 2000) -> None:
        """Copy every stored vector into the column (after re-embedding)."""
        last = 0
        while True:
            async with self.db.session() as session:
                rows = (
                    await session.execute(
                        select(KnowledgeChunkRow.seq, KnowledgeChunkRow.embedding)
                        .where(KnowledgeChunkRow.seq > last)
                        .order_by(KnowledgeChunkRow.seq)
                        .limit(page),
                        execution_options=INDEX,
                    )
                ).all()
                if not rows:
                    return
                await session.execute(
                    text("UPDATE knowledge_chunks SET vec = NULL WHERE seq > :a AND seq <= :b"),
                    {"a": last, "b": rows[-1][0]},
                )
                await self.write(session, [s for s, _ in rows], [from_blob(b) for _, b in rows])
            last = rows[-1][0]

    async def remove(self, keys: list[int]) -> None:
        """Nothing to do: rows carry their vectors."""

    async def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        async with self.db.session() as session:
            await session.execute(text(f"SET LOCAL hnsw.ef_search = {max(self.ef_search, k)}"))
            rows = await session.execute(
                text(
                    "SELECT seq, 1 - (vec <=> CAST(:v AS vector)) AS score FROM knowledge_chunks "
                    "WHERE vec IS NOT NULL ORDER BY vec <=> CAST(:v AS vector) LIMIT :k"
                ),
                {"v": pg_literal(vector), "k": k},
            )
            return [(int(seq), float(score)) for seq, score in rows]


async def has_pgvector(db: Database) -> bool:
    """Whether the chunks table has the pgvector column (the migration adds it when the server can)."""
    async with db.session() as session:
        found = await session.scalar(
            text(
                "SELECT 1 FROM information_schema.columns WHERE table_name = 'knowledge_chunks' AND "
                "column_name = 'vec'"
            )
        )
    return found is not None


async def open_backend(
    db: Database, dims: int, index_path: Path, *, prefer: str = "auto"
) -> tuple[VectorBackend, str]:
    """The vector backend for this database, and a sentence saying which one and why."""
    if not db.is_sqlite:
        if prefer in ("auto", "pgvector") and dims == PGVECTOR_DIMENSIONS and await has_pgvector(db):
            return PgVectorIndex(db), "pgvector HNSW index"
        backend = InMemoryIndex(db, dims)
        await backend.sync(force=True)
        return backend, "exact search in the app (pgvector is not installed on this PostgreSQL)"
    if prefer in ("auto", "hnsw"):
        try:
            index = HnswIndex(db, dims, index_path)
            await index.open()
            return index, f"hnswlib HNSW index in {index_path.name} (SQLite holds the vectors)"
        except ImportError:
            log.warning("hnswlib_missing", fallback="exact")
    backend = InMemoryIndex(db, dims)
    await backend.sync(force=True)
    return backend, "exact search in the app"
