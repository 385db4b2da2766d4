"""Retrieval benchmark: quality of vector, full-text and hybrid search on a labelled question → passage set
built from Python's standard-library docstrings, and latency of the vector stores at 10k and 100k chunks.

    .venv/bin/python benchmarks/retrieval/run.py [--questions 300] [--sizes 10000,100000]

The questions are the first sentence of a function's docstring with the function's own name removed; the
labelled passage is that function's documentation chunk (name, signature and full docstring). That makes
it a known-item task: good for comparing modes and stores, generous to full-text (the words overlap).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import platform
import random
import re
import sqlite3
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

from agent_lightning.core.config import Settings
from agent_lightning.core.db import Database
from agent_lightning.core.logging import configure_logging
from agent_lightning.knowledge.schemas import ItemCreate, SearchRequest
from agent_lightning.knowledge.service import KnowledgeService
from agent_lightning.models.embeddings import LocalEmbedder
from agent_lightning.models.service import ModelService

MODULES = ["os", "os.path", "shutil", "json", "re", "string", "textwrap", "itertools", "functools", "collections",
           "heapq", "bisect", "math", "statistics", "random", "datetime", "calendar", "pathlib", "glob", "fnmatch",
           "tempfile", "csv", "hashlib", "base64", "binascii", "zlib", "gzip", "tarfile", "zipfile", "urllib.parse",
           "html", "email.utils", "uuid", "secrets", "operator", "copy", "pprint", "inspect", "ast", "dis",
           "threading", "queue", "subprocess", "socket", "select", "asyncio", "contextlib", "abc", "typing",
           "decimal", "fractions", "difflib", "unicodedata", "locale", "gettext", "logging", "warnings", "time"]


def documented_functions() -> list[tuple[str, str, str]]:
    """(qualified name, passage, question) for each public function with a one-sentence docstring head."""
    found = []
    for name in MODULES:
        module = importlib.import_module(name)
        for attr, obj in sorted(vars(module).items()):
            if attr.startswith("_") or not callable(obj) or getattr(obj, "__module__", name) not in (name, module.__name__):
                continue
            doc = inspect.getdoc(obj) or ""
            first = doc.split("\n\n")[0].replace("\n", " ").strip()
            if len(first.split()) < 6 or len(doc) > 3000:
                continue
            question = re.sub(rf"\b{re.escape(attr)}\b", "it", first.split(". ")[0]).rstrip(".") + "?"
            found.append((f"{name}.{attr}", f"{name}.{attr}\n\n{doc}", question))
    return found


def embedding_models(settings: Settings) -> ModelService:
    models = ModelService(settings=settings)
    models.embedder = LocalEmbedder(threads=2, batch_size=64)
    models.register_alias(settings.knowledge_embedding_model, provider="local", provider_model="all-MiniLM-L6-v2", kind="embedding")
    return models


async def quality(n_questions: int, seed: int) -> tuple[list[list[str]], int, int]:
    docs = documented_functions()
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(_env_file=None, data_dir=Path(tmp), database_url=f"sqlite+aiosqlite:///{tmp}/bench.db")
        db = Database(settings.resolved_database_url())
        await db.upgrade()
        knowledge = KnowledgeService(settings=settings, db=db, embeddings=embedding_models(settings))
        ids = {}
        for qualified, passage, _ in docs:
            result = await knowledge.create(ItemCreate(title=qualified, content=passage, source=qualified,
                                                       category="api_references"))
            ids[qualified] = result.item.id
        chunks = (await knowledge.stats()).chunks
        sample = rng.sample(docs, min(n_questions, len(docs)))
        rows = []
        for mode in ("vector", "fulltext", "hybrid"):
            ranks, latencies = [], []
            for qualified, _, question in sample:
                started = time.perf_counter()
                hits = (await knowledge.search(SearchRequest(query=question, k=10, mode=mode))).hits
                latencies.append((time.perf_counter() - started) * 1000)
                found = [h.item_id for h in hits]
                ranks.append(found.index(ids[qualified]) + 1 if ids[qualified] in found else None)
            rows.append(_quality_row(mode, ranks, latencies))
        await db.close()
    return rows, len(sample), chunks


def _quality_row(mode: str, ranks: list[int | None], latencies: list[float]) -> list[str]:
    n = len(ranks)
    r5 = sum(1 for r in ranks if r and r <= 5) / n
    r10 = sum(1 for r in ranks if r and r <= 10) / n
    mrr = sum(1 / r for r in ranks if r) / n
    p50 = statistics.median(latencies)
    return [mode, f"{r5:.3f}", f"{r10:.3f}", f"{mrr:.3f}", f"{p50:.1f}"]


def clustered(n: int, dims: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.normal(size=(max(1, n // 100), dims)).astype(np.float32)
    data = centres[rng.integers(0, len(centres), n)] + 0.35 * rng.normal(size=(n, dims)).astype(np.float32)
    return data / np.linalg.norm(data, axis=1, keepdims=True)


def stores(n: int, queries: int = 200, k: int = 10) -> list[list[str]]:
    """Latency p50/p95 and recall@10 against exact search for each vector store, at n vectors."""
    rng = np.random.default_rng(n)
    data = clustered(n + queries, 384, rng)
    base, probes = data[:n], data[n:]
    truth = [set(np.argsort(-(base @ q))[:k]) for q in probes]
    rows = [_measure("numpy exact (app)", lambda q: np.argpartition(-(base @ q), k)[:k], probes, truth)]
    from usearch.index import Index

    index = Index(ndim=384, metric="cos", dtype="f32", connectivity=16, expansion_add=128, expansion_search=96)
    started = time.perf_counter()
    index.add(np.arange(n, dtype=np.uint64), base)
    build = time.perf_counter() - started
    rows.append(_measure(f"usearch HNSW (build {build:.1f} s)", lambda q: index.search(q, k).keys, probes, truth))
    try:
        import hnswlib

        graph = hnswlib.Index(space="cosine", dim=384)
        graph.init_index(max_elements=n, ef_construction=128, M=16)
        started = time.perf_counter()
        graph.add_items(base, np.arange(n))
        build = time.perf_counter() - started
        graph.set_ef(96)
        rows.append(_measure(f"hnswlib HNSW (build {build:.1f} s)", lambda q: graph.knn_query(q, k)[0][0], probes, truth))
    except ImportError:
        pass
    try:
        import apsw
        import sqlite_vec

        conn = apsw.Connection(":memory:")
        conn.enable_load_extension(True)
        conn.load_extension(sqlite_vec.loadable_path())
        conn.execute("CREATE VIRTUAL TABLE v USING vec0(embedding float[384] distance_metric=cosine)")
        with conn:
            conn.executemany("INSERT INTO v(rowid, embedding) VALUES (?, ?)", ((i, base[i].tobytes()) for i in range(n)))
        sql = "SELECT rowid FROM v WHERE embedding MATCH ? AND k = ? ORDER BY distance"
        rows.append(_measure("sqlite-vec via apsw (brute force)", lambda q: [r[0] for r in conn.execute(sql, (q.tobytes(), k))],
                             probes[:50], truth[:50]))
    except ImportError:
        pass
    return [[f"{n:,}", *row] for row in rows]


def _measure(name: str, query, probes: np.ndarray, truth: list[set]) -> list[str]:
    times, recalls = [], []
    for probe, expected in zip(probes, truth):
        started = time.perf_counter()
        found = query(probe)
        times.append((time.perf_counter() - started) * 1000)
        recalls.append(len(set(int(x) for x in found) & expected) / len(expected))
    times.sort()
    return [name, f"{times[len(times) // 2]:.2f}", f"{times[int(len(times) * 0.95)]:.2f}", f"{np.mean(recalls):.3f}"]


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=300)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    configure_logging("WARNING", False)
    print(f"Run {date.today()} on {platform.machine()} {platform.system()}, Python {platform.python_version()}, "
          f"SQLite {sqlite3.sqlite_version}, {len(__import__('os').sched_getaffinity(0))} cores\n")
    rows, n, chunks = asyncio.run(quality(args.questions, args.seed))
    print(f"Quality: {n} questions over {chunks} chunks (stdlib docstrings), SQLite + usearch + FTS5\n")
    print(table(["mode", "recall@5", "recall@10", "MRR", "p50 ms (incl. embedding)"], rows))
    print("\nVector stores: 384-d clustered unit vectors, top-10, recall against exact search\n")
    store_rows = [row for size in args.sizes.split(",") for row in stores(int(size))]
    print(table(["chunks", "store", "p50 ms", "p95 ms", "recall@10 vs exact"], store_rows))


if __name__ == "__main__":
    main()
