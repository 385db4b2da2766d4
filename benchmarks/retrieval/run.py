"""Retrieval benchmark: search quality on a labelled question → passage set, and search latency at 10k and
100k chunks on SQLite and PostgreSQL.

    .venv/bin/python benchmarks/retrieval/run.py [--sizes 10000,100000]
        [--out benchmarks/retrieval/results.md]

Quality (`quality.py`). Two corpora, each with two question sets, searched in vector mode (the hnswlib
HNSW index and, as its ceiling, exact search), full-text (FTS5) and hybrid mode through
`KnowledgeService.search`; a question counts as answered at rank r when a passage that answers it is the
r-th hit (document recall):

- `python`: Python's standard-library documentation, one item per documented public function or class of
  ~60 modules (qualified name, docstring; PSF licence), about 700 chunks. `questions.jsonl` is written by
  hand (paraphrases, short keyword queries, long questions with context, a few typos); the generated
  known-item set is a docstring's first sentence with the name removed (it shares its words with the
  answer and flatters full-text search).
- `man`: ~420 manual pages installed on this machine (each page's first 30,000 characters), about 8,000
  chunks. `man_questions.jsonl` is written by hand; the template set is generated from the pages' NAME
  lines and option descriptions (the split `fusion.py` tunes hybrid fusion on).

Full-text at scale. The same questions, full-text only, over the passages alone and among chunks of other
real documentation (docstrings of the rest of the standard library and of the installed packages), with
the previous full-text search ("before"), the current one, and the current one with its limits scaled
down to what a query may rank at 100k chunks; on SQLite and on the PostgreSQL at --pg-url.

Latency. Chunks of realistic text (sentences sampled from the same docstrings) with 384-d clustered unit
vectors are bulk-loaded into each database, then searched through the service's own code: the vector
backends of `knowledge.vectors` (hnswlib beside SQLite, pgvector HNSW on PostgreSQL with the extension,
exact search in the app on PostgreSQL without it), `knowledge.fulltext.search` (FTS5 / tsvector) and
`KnowledgeService._search` in hybrid mode with the query vector given (the embedding of the query is
measured in the quality table). PostgreSQL with pgvector is a private PostgreSQL 16 from the PyPI
`pgserver` package; PostgreSQL without it is the server at --pg-url (the machine's PostgreSQL 15).
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import importlib
import os
import platform
import random
import re
import sqlite3
import statistics
import struct
import sysconfig
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
from corpora import MODULES  # the script's folder
from quality import Corpus, Loaded, Question, man_corpus, mode_table, python_corpus
from sqlalchemy import insert, text
from sqlalchemy.exc import DBAPIError

from agent_lightning.core.config import Settings
from agent_lightning.core.db import Database
from agent_lightning.core.logging import configure_logging
from agent_lightning.core.tenancy import DEFAULT_TENANT
from agent_lightning.knowledge import fulltext, ingest
from agent_lightning.knowledge.schemas import Filters, SearchRequest
from agent_lightning.knowledge.search import visibility
from agent_lightning.knowledge.service import KnowledgeService
from agent_lightning.knowledge.tables import KnowledgeChunkRow, KnowledgeItemRow
from agent_lightning.knowledge.vectors import INDEX_FILE, open_backend

HERE = Path(__file__).resolve().parent
DIMS = 384
K = 10
FTS_DEPTH = 2 * K  # what KnowledgeService._search asks full-text for at k = 10
MODEL = Settings(_env_file=None).knowledge_embedding_model


# --- quality --------------------------------------------------------------------------------------------

QUALITY_HEADER = ["mode", "recall@5", "recall@10", "MRR", "p50 ms (incl. query embedding)"]


async def quality_tables(corpora_: list[Corpus]) -> list[str]:
    """Per corpus and question set, one row per search mode (see `quality.py`)."""
    out = []
    for corpus in corpora_:
        async with Loaded(corpus) as loaded:
            for name, questions in corpus.sets.items():
                keys = len({q.keys[0] for q in questions})
                out.append(
                    f"\n### Quality: {corpus.name} corpus, {name} questions ({len(questions)}, {keys} "
                    f"distinct answers) over {loaded.chunks:,} chunks of {len(corpus.documents)} documents; "
                    "SQLite, hnswlib, FTS5\n"
                )
                out.append(table(QUALITY_HEADER, await mode_table(loaded, questions)))
                print(out[-2] + out[-1], flush=True)
            out += [f"({note}.)" for note in corpus.notes]
    return out


# --- full-text quality at scale ----------------------------------------------------------------------------


def distractor_texts() -> list[str]:
    """Chunks of real documentation that answers none of the questions: the docstrings (100 characters or
    more) of the standard library outside MODULES and of the packages installed in this environment, cut as
    the service cuts documents. How many there are depends on the installed packages."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    own = set()
    for name in MODULES:
        parts = name.split(".")
        own |= {stdlib.joinpath(*parts).with_suffix(".py"), stdlib.joinpath(*parts, "__init__.py")}
    files = [
        f
        for f in sorted(stdlib.rglob("*.py"))
        if f not in own
        and not {"site-packages", "test", "tests", "idlelib"} & set(f.relative_to(stdlib).parts)
    ]
    files += sorted(Path(sysconfig.get_paths()["purelib"]).rglob("*.py"))
    seen, chunks = set(), []
    for path in files:
        try:
            tree = ast.parse(path.read_text(errors="ignore"))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
                doc = (ast.get_docstring(node) or "").replace("\x00", "")
                if len(doc) >= 100 and doc not in seen:
                    seen.add(doc)
                    chunks += [c.text for c in ingest.chunk_document(doc, fmt="text")[1]]
    return chunks


async def fulltext_before(
    session, query: str, filters: Filters, tenant: str, k: int
) -> list[tuple[int, float]]:
    """Full-text search as it was before the candidate limit (for comparison): every content word OR-ed,
    every matching chunk scored, the filters inside the query."""
    words = fulltext.terms(query)
    if not words:
        return []
    condition, params = visibility(filters, tenant)
    params["k"] = k
    if session.bind.dialect.name == "sqlite":
        params["q"] = " OR ".join(f'"{w}"' for w in words)
        sql = (
            "SELECT f.rowid, bm25(knowledge_chunks_fts) AS s FROM knowledge_chunks_fts f "
            "JOIN knowledge_chunks c ON c.seq = f.rowid JOIN knowledge_items i ON i.id = c.item_id "
            f"WHERE knowledge_chunks_fts MATCH :q AND {condition} ORDER BY s LIMIT :k"
        )
        return [(int(seq), -float(score)) for seq, score in await session.execute(text(sql), params)]
    params["q"] = " | ".join(words)
    sql = (
        "SELECT c.seq, ts_rank(c.tsv, q) AS s FROM knowledge_chunks c "
        "JOIN knowledge_items i ON i.id = c.item_id, to_tsquery('english', :q) q "
        f"WHERE c.tsv @@ q AND {condition} ORDER BY s DESC LIMIT :k"
    )
    return [(int(seq), float(score)) for seq, score in await session.execute(text(sql), params)]


async def load_texts(
    db: Database, passages: list[tuple[str, str, str]], distractors: list[str]
) -> dict[int, str]:
    """The passages (item id, heading, text) and the distractors as items of one chunk each, the way the
    benchmark loads them (no vectors: full-text only); chunk key → item id."""
    now = datetime.now(UTC)
    rows = passages + [(f"distractor{n:07d}", "", body) for n, body in enumerate(distractors)]
    items = {item_id: item_row(item_id, item_id, now) for item_id, _, _ in rows}
    chunks = [
        dict(
            seq=n + 1,
            item_id=item_id,
            ordinal=n,
            heading=heading[:500],
            text=body,
            embedding=b"",
            embedding_model=MODEL,
            tenant_id=DEFAULT_TENANT,
        )
        for n, (item_id, heading, body) in enumerate(rows)
    ]
    async with db.session() as session:
        values = list(items.values())
        for start in range(0, len(values), 5000):
            await session.execute(insert(KnowledgeItemRow), values[start : start + 5000])
        for start in range(0, len(chunks), 5000):
            await session.execute(insert(KnowledgeChunkRow), chunks[start : start + 5000])
    if not db.is_sqlite:
        async with db.session() as session:
            await session.execute(text("ANALYZE knowledge_chunks"))
            await session.execute(text("ANALYZE knowledge_items"))
    return {row["seq"]: row["item_id"] for row in chunks}


async def score_fulltext(
    db: Database, search, sets: dict[str, list[Question]], owner: dict[int, str], ids: dict[str, str]
) -> dict[str, tuple[float, float, float, list[float]]]:
    """Recall@5, recall@10, MRR and latencies of a full-text function, ranked as the service ranks (the 2k
    best chunks asked for, the first k kept)."""
    out = {}
    for name, questions in sets.items():
        ranks, times = [], []
        for question in questions:
            started = time.perf_counter()
            async with db.session() as session:
                hits = await search(session, question.text, Filters(), DEFAULT_TENANT, 2 * K)
            times.append((time.perf_counter() - started) * 1000)
            found = [owner[key] for key, _ in hits[:K]]
            wanted = [found.index(ids[key]) + 1 for key in question.keys if ids[key] in found]
            ranks.append(min(wanted) if wanted else None)
        n = len(ranks)
        out[name] = (
            sum(1 for r in ranks if r and r <= 5) / n,
            sum(1 for r in ranks if r and r <= K) / n,
            sum(1 / r for r in ranks if r) / n,
            times,
        )
    return out


async def fulltext_at_scale(
    docs: dict[str, str], sets: dict[str, list[Question]], servers: Servers, distractors: list[str]
) -> list[list[str]]:
    """Full-text quality and latency of the search before and now, over the passages alone and among the
    distractors, on SQLite and on the PostgreSQL at --pg-url."""
    ids = {qualified: f"passage{n:05d}" for n, qualified in enumerate(docs)}
    passages = [
        (ids[q], chunk.heading, chunk.text)
        for q, passage in docs.items()
        for chunk in ingest.chunk_document(passage, fmt="text")[1]
    ]
    rows = []
    for corpus in ([], distractors):
        targets = [("SQLite FTS5", None)]
        if servers.pg_url:
            targets.append(("PostgreSQL tsvector", servers.pg_url))
        for label, admin in targets:
            if admin is None:
                folder = Path(tempfile.mkdtemp(dir=servers.tmp))
                db, name = Database(f"sqlite+aiosqlite:///{folder}/fts.db"), None
            else:
                url, name = await servers.fresh(admin)
                db = Database(url)
            await db.upgrade()
            if name:
                await server_version(db, "PostgreSQL without pgvector", servers.versions)
            owner = await load_texts(db, passages, corpus)
            n = len(owner)
            dialect = "sqlite" if db.is_sqlite else "postgresql"
            variants = [("before: every match ranked", fulltext_before), ("now", fulltext.search)]
            if corpus:
                variants.append(("now, limits scaled to 100k chunks", fulltext.search))
            for variant, search in variants:
                saved = dict(fulltext.CANDIDATES), fulltext.SCORED_POSTINGS
                if variant.endswith("100k chunks"):  # the share of the index a query may rank at 100k chunks
                    fulltext.CANDIDATES[dialect] = max(K, round(fulltext.CANDIDATES[dialect] * n / 100_000))
                    fulltext.SCORED_POSTINGS = round(fulltext.SCORED_POSTINGS * n / 100_000)
                try:
                    scores = await score_fulltext(db, search, sets, owner, ids)
                finally:
                    fulltext.CANDIDATES.update(saved[0])
                    fulltext.SCORED_POSTINGS = saved[1]
                hand = scores["hand-written"]
                p50, p95 = percentiles(hand[3])
                row = [label, f"{n:,}", variant, f"{hand[0]:.3f}", f"{hand[1]:.3f}", f"{hand[2]:.3f}"]
                generated = scores.get("generated")
                row += [f"{generated[1]:.3f}", f"{generated[2]:.3f}"] if generated else ["", ""]
                rows.append([*row, f"{p50:.1f}", f"{p95:.1f}"])
            await db.close()
            if name:
                await servers.drop(admin, name)
    return rows


# --- synthetic chunks at scale --------------------------------------------------------------------------


def clustered(n: int, dims: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.normal(size=(max(1, n // 100), dims)).astype(np.float32)
    data = centres[rng.integers(0, len(centres), n)] + 0.35 * rng.normal(size=(n, dims)).astype(np.float32)
    return data / np.linalg.norm(data, axis=1, keepdims=True)


def sentence_pool(docs: dict[str, str]) -> list[str]:
    pool = []
    for passage in docs.values():
        body = re.sub(r"\s+", " ", passage.split("\n\n", 1)[1])
        pool += [s for s in re.split(r"(?<=[.!?])\s+", body) if 4 <= len(s.split()) <= 60]
    return pool


def synthetic_texts(n: int, pool: list[str], names: list[str], rng: random.Random) -> list[tuple[str, str]]:
    """(heading, text) pairs of 400–1,000 characters made of sentences drawn from the docstrings."""
    out = []
    for _ in range(n):
        parts, size = [], 0
        target = rng.randint(400, 1000)
        while size < target:
            sentence = rng.choice(pool)
            parts.append(sentence)
            size += len(sentence) + 1
        out.append((rng.choice(names), " ".join(parts)[:1000]))
    return out


@dataclass
class Workload:
    n: int
    base: np.ndarray  # n unit vectors; chunk seq i + 1 holds base[i]
    probes: np.ndarray  # query vectors
    truth: list[set[int]]  # exact top-K (0-based rows of base) for each probe
    texts: list[tuple[str, str]]
    queries: list[str]  # full-text queries (the hand-written questions)


def workload(n: int, n_queries: int, docs: dict[str, str], questions: list[Question]) -> Workload:
    rng = np.random.default_rng(n)
    data = clustered(n + n_queries, DIMS, rng)
    base, probes = data[:n], data[n:]
    truth = [set(np.argpartition(-(base @ q), K)[:K].tolist()) for q in probes]
    texts = synthetic_texts(n, sentence_pool(docs), list(docs), random.Random(n))
    queries = [questions[i % len(questions)].text for i in range(n_queries)]
    return Workload(n, base, probes, truth, texts, queries)


def item_row(item_id: str, title: str, now: datetime) -> dict:
    """A knowledge item row of the benchmark's corpus (written straight to the table)."""
    return dict(
        id=item_id,
        tenant_id=DEFAULT_TENANT,
        title=title,
        category="api_references",
        source="benchmark",
        scope="tenant",
        agent_id=None,
        meta={},
        origin="api",
        task_id=None,
        content_hash=uuid.uuid4().hex,
        usage_count=0,
        relevance=1.0,
        embedding_model=MODEL,
        created_at=now,
        updated_at=now,
        last_used_at=None,
    )


def item_rows(n_chunks: int, per_item: int = 4) -> list[dict]:
    now = datetime.now(UTC)
    return [
        item_row(f"bench{i:07d}", f"bench document {i}", now)
        for i in range((n_chunks + per_item - 1) // per_item)
    ]


def chunk_tuple(w: Workload, i: int, per_item: int = 4) -> tuple:
    heading, body = w.texts[i]
    return (
        i + 1,
        f"bench{i // per_item:07d}",
        i % per_item,
        heading,
        body,
        w.base[i].astype("<f4").tobytes(),
        MODEL,
        DEFAULT_TENANT,
    )


CHUNK_COLUMNS = ["seq", "item_id", "ordinal", "heading", "text", "embedding", "embedding_model", "tenant_id"]


async def load_sqlite(db: Database, w: Workload) -> float:
    """Items and chunks through SQLAlchemy in batches (the FTS5 triggers index the text)."""
    started = time.perf_counter()
    items = item_rows(w.n)
    async with db.session() as session:
        for start in range(0, len(items), 5000):
            await session.execute(insert(KnowledgeItemRow), items[start : start + 5000])
    for start in range(0, w.n, 5000):
        rows = [
            dict(zip(CHUNK_COLUMNS, chunk_tuple(w, i), strict=True))
            for i in range(start, min(w.n, start + 5000))
        ]
        async with db.session() as session:
            await session.execute(insert(KnowledgeChunkRow), rows)
    return time.perf_counter() - started


def _vector_binary(vector: np.ndarray) -> bytes:
    """pgvector's binary wire format: dimensions, an unused int16, then big-endian float4s."""
    return struct.pack(">HH", len(vector), 0) + np.asarray(vector, dtype=">f4").tobytes()


async def load_postgres(db: Database, w: Workload, *, pgvector: bool) -> tuple[float, float]:
    """Items through SQLAlchemy, chunks by binary COPY (the tsvector column is generated by the server).
    With pgvector the HNSW index is dropped for the load and built again with the migration's statement.
    Returns (load seconds, index build seconds)."""
    started = time.perf_counter()
    items = item_rows(w.n)
    async with db.session() as session:
        for start in range(0, len(items), 5000):
            await session.execute(insert(KnowledgeItemRow), items[start : start + 5000])
    build = 0.0
    import asyncpg

    raw = await asyncpg.connect(
        str(db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False))
    )
    try:
        columns = list(CHUNK_COLUMNS)
        if pgvector:
            await raw.set_type_codec(
                "vector", schema="public", encoder=_vector_binary, decoder=bytes, format="binary"
            )
            await raw.execute("DROP INDEX IF EXISTS ix_knowledge_chunks_vec")
            columns.append("vec")
        for start in range(0, w.n, 10000):
            records = [
                chunk_tuple(w, i) + ((w.base[i],) if pgvector else ())
                for i in range(start, min(w.n, start + 10000))
            ]
            await raw.copy_records_to_table("knowledge_chunks", records=records, columns=columns)
        await raw.execute("ANALYZE knowledge_items")
        await raw.execute("ANALYZE knowledge_chunks")
        load = time.perf_counter() - started
        if pgvector:
            started = time.perf_counter()
            await raw.execute("SET maintenance_work_mem = '1GB'")
            await raw.execute(_migration_statement("ix_knowledge_chunks_vec"))
            build = time.perf_counter() - started
    finally:
        await raw.close()
    return load, build


def _migration_statement(index_name: str) -> str:
    """The CREATE INDEX statement of the migration that created `index_name` (so the benchmark builds the
    same index the platform does)."""
    path = Path(importlib.import_module("agent_lightning").__file__).parent / "migrations" / "versions"
    for file in sorted(path.glob("*.py")):
        found = re.search(rf'"(CREATE INDEX {index_name} [^"]+)"', file.read_text())
        if found:
            return found.group(1)
    raise LookupError(index_name)


# --- measuring ------------------------------------------------------------------------------------------


def percentiles(times: list[float]) -> tuple[float, float]:
    times = sorted(times)
    return times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.95))]


async def measure_backend(backend, w: Workload) -> tuple[float, float, float]:
    """p50, p95 (ms) and recall@10 against exact search of a `knowledge.vectors` backend."""
    await backend.search(w.probes[0], K)  # warm up (first sync, plan cache)
    times, recalls = [], []
    for probe, expected in zip(w.probes, w.truth, strict=True):
        started = time.perf_counter()
        found = await backend.search(probe, K)
        times.append((time.perf_counter() - started) * 1000)
        recalls.append(len({seq - 1 for seq, _ in found} & expected) / K)
    return *percentiles(times), float(np.mean(recalls))


async def measure_fulltext(db: Database, w: Workload) -> tuple[float, float, int, int]:
    """p50, p95 (ms) of `knowledge.fulltext.search`; the median number of chunks holding any of a query's
    words (what the previous search scored) and of chunks its first pass ranks."""
    async with db.session() as session:
        await fulltext.search(session, w.queries[0], Filters(), DEFAULT_TENANT, FTS_DEPTH)
    times = []
    for query in w.queries:
        started = time.perf_counter()
        async with db.session() as session:
            await fulltext.search(session, query, Filters(), DEFAULT_TENANT, FTS_DEPTH)
        times.append((time.perf_counter() - started) * 1000)
    matched, ranked = [], []
    async with db.session() as session:
        for query in w.queries:
            words = fulltext.terms(query)
            chosen = await fulltext.plan(session, query)
            if db.is_sqlite:
                count = (
                    "SELECT count(*) FROM (SELECT 1 FROM knowledge_chunks_fts WHERE knowledge_chunks_fts "
                    "MATCH :q{}) AS m"
                )
                every = " OR ".join(f'"{word}"' for word in words)
                first = (" AND " if chosen.every else " OR ").join(f'"{t.word}"' for t in chosen.essential)
            else:
                count = (
                    "SELECT count(*) FROM (SELECT 1 FROM knowledge_chunks WHERE tsv @@ "
                    "to_tsquery('english', :q){}) AS m"
                )
                every = " | ".join(words)
                first = (" & " if chosen.every else " | ").join(f"'{t.word}'" for t in chosen.essential)
            matched.append(int(await session.scalar(text(count.format("")), {"q": every})) if words else 0)
            capped = count.format(f" LIMIT {chosen.cap}")
            ranked.append(int(await session.scalar(text(capped), {"q": first})) if chosen.essential else 0)
    return *percentiles(times), int(statistics.median(matched)), int(statistics.median(ranked))


async def measure_hybrid(service: KnowledgeService, w: Workload) -> tuple[float, float]:
    await service._search(SearchRequest(query=w.queries[0], k=K), w.probes[0])
    times = []
    for query, probe in zip(w.queries, w.probes, strict=True):
        started = time.perf_counter()
        await service._search(SearchRequest(query=query, k=K), probe)
        times.append((time.perf_counter() - started) * 1000)
    return percentiles(times)


def raw_stores(w: Workload) -> list[list[str]]:
    """The libraries compared for SQLite, queried directly (no database): numpy, hnswlib, usearch,
    sqlite-vec."""
    base, probes, truth, n = w.base, w.probes, w.truth, w.n
    rows = [_measure("numpy exact (app)", lambda q: np.argpartition(-(base @ q), K)[:K], probes, truth)]
    import hnswlib

    graph = hnswlib.Index(space="cosine", dim=DIMS)
    graph.init_index(max_elements=n, ef_construction=128, M=16)
    started = time.perf_counter()
    graph.add_items(base, np.arange(n))
    build = time.perf_counter() - started
    graph.set_ef(96)
    rows.append(
        _measure(f"hnswlib HNSW (build {build:.1f} s)", lambda q: graph.knn_query(q, K)[0][0], probes, truth)
    )
    try:
        # The earlier choice, for comparison (bench extra). Its wheel carries its own libstdc++: loaded before
        # onnxruntime in a process it crashes it, so it is only imported here, after the embedder has run.
        from usearch.index import Index

        index = Index(
            ndim=DIMS, metric="cos", dtype="f32", connectivity=16, expansion_add=128, expansion_search=96
        )
        started = time.perf_counter()
        index.add(np.arange(n, dtype=np.uint64), base)
        build = time.perf_counter() - started
        rows.append(
            _measure(f"usearch HNSW (build {build:.1f} s)", lambda q: index.search(q, K).keys, probes, truth)
        )
    except ImportError:
        pass
    try:
        import apsw
        import sqlite_vec

        conn = apsw.Connection(":memory:")
        conn.enable_load_extension(True)
        conn.load_extension(sqlite_vec.loadable_path())
        conn.execute(f"CREATE VIRTUAL TABLE v USING vec0(embedding float[{DIMS}] distance_metric=cosine)")
        with conn:
            conn.executemany(
                "INSERT INTO v(rowid, embedding) VALUES (?, ?)", ((i, base[i].tobytes()) for i in range(n))
            )
        sql = "SELECT rowid FROM v WHERE embedding MATCH ? AND k = ? ORDER BY distance"
        rows.append(
            _measure(
                "sqlite-vec via apsw (brute force)",
                lambda q: [r[0] for r in conn.execute(sql, (q.tobytes(), K))],
                probes[:50],
                truth[:50],
            )
        )
    except ImportError:
        pass
    return rows


def _measure(name: str, query, probes: np.ndarray, truth: list[set]) -> list[str]:
    times, recalls = [], []
    for probe, expected in zip(probes, truth, strict=True):
        started = time.perf_counter()
        found = query(probe)
        times.append((time.perf_counter() - started) * 1000)
        recalls.append(len(set(int(x) for x in found) & expected) / len(expected))
    p50, p95 = percentiles(times)
    return [name, f"{p50:.2f}", f"{p95:.2f}", f"{np.mean(recalls):.3f}"]


# --- databases --------------------------------------------------------------------------------------------


class Servers:
    """The databases a size is measured on: a SQLite file, PostgreSQL 16 + pgvector (pgserver), PostgreSQL
    without pgvector (--pg-url). Each size gets fresh databases."""

    def __init__(self, tmp: Path, pg_url: str | None, use_pgserver: bool) -> None:
        self.tmp = tmp
        self.pg_url = pg_url
        self.pgserver = None
        self.versions: dict[str, str] = {"SQLite": f"SQLite {sqlite3.sqlite_version}"}
        if use_pgserver:
            try:
                import pgserver

                self.pgserver = pgserver.get_server(tmp / "pgdata", cleanup_mode="stop")
            except ImportError:
                print("pgserver is not installed: no pgvector rows")

    def pgvector_admin(self) -> str | None:
        if self.pgserver is None:
            return None
        socket_dir = self.pgserver.get_uri().split("host=")[1]
        return f"postgresql+asyncpg://postgres@/postgres?host={socket_dir}"

    async def fresh(self, admin_url: str) -> tuple[str, str]:
        """A new database on the server of `admin_url`: (url, name)."""
        from sqlalchemy.ext.asyncio import create_async_engine

        name = f"alp_bench_{uuid.uuid4().hex[:8]}"
        engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        await engine.dispose()
        if "?" in admin_url:
            head, query = admin_url.split("?", 1)
            return f"{head.rsplit('/', 1)[0]}/{name}?{query}", name
        return f"{admin_url.rsplit('/', 1)[0]}/{name}", name

    async def drop(self, admin_url: str, name: str) -> None:
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await engine.dispose()

    def close(self) -> None:
        if self.pgserver is not None:
            self.pgserver.cleanup()


async def server_version(db: Database, label: str, versions: dict[str, str]) -> None:
    async with db.session() as session:
        version = (await session.scalar(text("SHOW server_version"))).split()[0]
        vector = await session.scalar(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'"))
    versions[label] = f"PostgreSQL {version}" + (f" + pgvector {vector}" if vector else " (no pgvector)")


async def at_scale(w: Workload, servers: Servers) -> tuple[list[list[str]], list[list[str]]]:
    """Vector-backend rows and full-text / hybrid rows for one size, on every available database."""
    size = f"{w.n:,}"
    vector_rows = [[size, *row] for row in raw_stores(w)]
    text_rows = []

    def vector_row(label: str, p50: float, p95: float, recall: float) -> None:
        vector_rows.append([size, label, f"{p50:.2f}", f"{p95:.2f}", f"{recall:.3f}"])

    async def text_and_hybrid(label: str, db: Database, settings: Settings) -> None:
        f50, f95, matched, ranked = await measure_fulltext(db, w)
        service = KnowledgeService(settings=settings, db=db, embeddings=None)  # the query vector is given
        h50, h95 = await measure_hybrid(service, w)
        text_rows.append(
            [
                size,
                label,
                f"{matched:,} ({matched / w.n:.0%})",
                f"{ranked:,} ({ranked / w.n:.1%})",
                f"{f50:.1f}",
                f"{f95:.1f}",
                f"{h50:.1f}",
                f"{h95:.1f}",
            ]
        )

    # SQLite: hnswlib index file beside the database, FTS5
    folder = servers.tmp / f"sqlite{w.n}"
    folder.mkdir()
    settings = Settings(
        _env_file=None, data_dir=folder, database_url=f"sqlite+aiosqlite:///{folder}/bench.db"
    )
    db = Database(settings.resolved_database_url())
    await db.upgrade()
    load = await load_sqlite(db, w)
    started = time.perf_counter()
    backend, _ = await open_backend(db, DIMS, folder / INDEX_FILE)
    build = time.perf_counter() - started
    vector_row(
        f"SQLite: hnswlib via `HnswIndex` (load {load:.0f} s, build {build:.0f} s)",
        *await measure_backend(backend, w),
    )
    await text_and_hybrid(f"SQLite {sqlite3.sqlite_version}: FTS5 + hnswlib", db, settings)
    await db.close()

    # PostgreSQL 16 with pgvector (pgserver)
    admin = servers.pgvector_admin()
    if admin:
        url, name = await servers.fresh(admin)
        db = Database(url)
        await db.upgrade()
        await server_version(db, "PostgreSQL with pgvector", servers.versions)
        major = servers.versions["PostgreSQL with pgvector"].split()[1].split(".")[0]
        load, build = await load_postgres(db, w, pgvector=True)
        backend, detail = await open_backend(db, DIMS, servers.tmp / "unused.hnsw")
        assert backend.name == "pgvector", detail
        vector_row(
            f"PostgreSQL {major}: pgvector HNSW via `PgVectorIndex` (COPY {load:.0f} s, build {build:.0f} s)",
            *await measure_backend(backend, w),
        )
        pg = Settings(_env_file=None, data_dir=servers.tmp, database_url=url)
        await text_and_hybrid(f"PostgreSQL {major}: tsvector + pgvector", db, pg)
        await db.close()
        await servers.drop(admin, name)

    # PostgreSQL without pgvector: exact search in the app
    if servers.pg_url:
        try:
            url, name = await servers.fresh(servers.pg_url)
        except (OSError, DBAPIError) as exc:
            print(f"no PostgreSQL at --pg-url ({type(exc).__name__}: {exc}): no rows without pgvector")
            servers.pg_url = None
            return vector_rows, text_rows
        db = Database(url)
        await db.upgrade()
        await server_version(db, "PostgreSQL without pgvector", servers.versions)
        load, _ = await load_postgres(db, w, pgvector=False)
        started = time.perf_counter()
        backend, detail = await open_backend(db, DIMS, servers.tmp / "unused.hnsw")
        build = time.perf_counter() - started
        assert backend.name == "exact", detail
        major = servers.versions["PostgreSQL without pgvector"].split()[1].split(".")[0]
        vector_row(
            f"PostgreSQL {major}, no pgvector: exact in the app via `InMemoryIndex` (COPY {load:.0f} s, "
            f"load {build:.1f} s)",
            *await measure_backend(backend, w),
        )
        pg = Settings(_env_file=None, data_dir=servers.tmp, database_url=url)
        await text_and_hybrid(f"PostgreSQL {major}: tsvector + exact in the app", db, pg)
        await db.close()
        await servers.drop(servers.pg_url, name)
    return vector_rows, text_rows


# --- report -----------------------------------------------------------------------------------------------


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


async def run(args: argparse.Namespace) -> str:
    python = python_corpus(args.generated, args.seed)
    docs = {name: text for name, (text, _) in python.documents.items()}
    sets = python.sets
    handwritten = sets["hand-written"]
    found = [python] + ([] if args.no_man else [c for c in [man_corpus(seed=args.seed)] if c is not None])
    out: list[str] = []
    loads = [os.getloadavg()[0]]
    started = time.perf_counter()
    if not args.no_quality:
        out += await quality_tables(found)
    quality_s = time.perf_counter() - started
    loads.append(os.getloadavg()[0])

    vector_rows, text_rows, scale_rows, distractors = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        servers = Servers(Path(tmp), args.pg_url or None, not args.no_pgserver)
        try:
            if not args.no_scale:
                distractors = distractor_texts()
                scale_rows = await fulltext_at_scale(docs, sets, servers, distractors)
                print(table(SCALE_HEADER, scale_rows), flush=True)
                loads.append(os.getloadavg()[0])
            for size in [int(s) for s in args.sizes.split(",") if s]:
                w = workload(size, args.queries, docs, handwritten)
                v, t = await at_scale(w, servers)
                vector_rows += v
                text_rows += t
                loads.append(os.getloadavg()[0])
                print(f"... {size:,} chunks done", flush=True)
        finally:
            servers.close()
    total_s = time.perf_counter() - started
    if scale_rows:
        out.append(
            f"\n### Full-text search among distractors: the same questions over the {len(docs)} passages "
            f"alone and among {len(distractors):,} chunks of other documentation\n"
        )
        out.append(
            "The distractors are the docstrings (100 characters or more) of the rest of the standard library "
            "and of the packages installed in the environment, cut as the service cuts documents: real text "
            "that answers none of the questions. *before* is the previous full-text search (every content "
            "word OR-ed, every matching chunk scored); *now* is `knowledge.fulltext.search`; *limits scaled "
            "to 100k chunks* shrinks its candidate limit and scored-postings budget in proportion to the "
            "index, so a query may rank the same share of it as at 100k chunks. Latency over the "
            "hand-written questions; full-text only, no vectors.\n"
        )
        out.append(table(SCALE_HEADER, scale_rows))
    out.append(
        f"\n### Vector search: 384-d clustered unit vectors, top-{K}, {args.queries} queries, recall against "
        "exact search\n"
    )
    out.append(
        "The first rows query each library directly; the rows naming a class go through the knowledge "
        "service's vector backend on its database (a SQL round trip for pgvector).\n"
    )
    out.append(table(["chunks", "store", "p50 ms", "p95 ms", "recall@10 vs exact"], vector_rows))
    out.append(
        f"\n### Full-text and hybrid search: chunks of 400–1,000 characters sampled from the docstrings, "
        f"{args.queries} hand-written questions as queries, top-{FTS_DEPTH} full-text / top-{K} hybrid\n"
    )
    out.append(
        "Full-text is `knowledge.fulltext.search` (the chunks holding the query's rarest words ranked, at "
        f"most {fulltext.CANDIDATES['sqlite']:,} on SQLite and {fulltext.CANDIDATES['postgresql']:,} on "
        "PostgreSQL per pass, on every word; BM25 on FTS5, ts_rank on tsvector); hybrid is "
        "`KnowledgeService._search` (vector and full-text at once, reciprocal rank fusion, filters, "
        "feedback rerank, rows fetched) with the query vector given, so the query embedding is not "
        "included. *Matching any word*: the chunks the previous search scored (every content word OR-ed); "
        "*ranked*: the chunks the first pass ranks now.\n"
    )
    out.append(
        table(
            [
                "chunks",
                "database",
                "chunks matching any word (median)",
                "chunks ranked (median)",
                "full-text p50 ms",
                "full-text p95 ms",
                "hybrid p50 ms",
                "hybrid p95 ms",
            ],
            text_rows,
        )
    )
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = ", ".join(servers.versions.values())
    loads.append(os.getloadavg()[0])
    header = (
        f"Run {date.today()} on {platform.platform()} ({platform.machine()}), {cpus} CPUs, "
        f"Python {platform.python_version()}, {versions}; {total_s / 60:.0f} min "
        f"(quality {quality_s:.0f} s); load average (1 min) between sections "
        f"{', '.join(f'{x:.1f}' for x in loads)}\n"
    )
    return header + "\n" + "\n".join(out) + "\n"


SCALE_HEADER = [
    "database",
    "chunks",
    "full-text search",
    "hand-written recall@5",
    "hand-written recall@10",
    "hand-written MRR",
    "generated recall@10",
    "generated MRR",
    "p50 ms",
    "p95 ms",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-man", action="store_true", help="skip the manual-page corpus")
    parser.add_argument("--generated", type=int, default=300, help="generated known-item questions (0: none)")
    parser.add_argument(
        "--sizes", default="10000,100000", help="chunk counts for the latency tables ('' : none)"
    )
    parser.add_argument("--queries", type=int, default=200, help="queries per latency measurement")
    parser.add_argument(
        "--pg-url",
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL without pgvector, as an admin URL ('' to skip)",
    )
    parser.add_argument("--no-pgserver", action="store_true", help="skip PostgreSQL + pgvector (pgserver)")
    parser.add_argument(
        "--no-quality", action="store_true", help="skip the quality tables (and the embedding model)"
    )
    parser.add_argument("--no-scale", action="store_true", help="skip full-text quality among distractors")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", help="also write the report to this file")
    args = parser.parse_args()
    configure_logging("WARNING", False)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    report = asyncio.run(run(args))
    print(report)
    if args.out:
        Path(args.out).write_text(report)


if __name__ == "__main__":
    main()
