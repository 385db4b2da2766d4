"""Search quality on labelled corpora: load a corpus into a knowledge service (SQLite, hnswlib, FTS5), ask
every question of every mode, and score document recall@5 / recall@10 / MRR. Shared by `run.py` (the
report) and `fusion.py` (choosing how hybrid search fuses its two rankings).

Corpora (`corpora.py` builds the documents):

- `python`: one item per documented public function or class of ~60 standard-library modules (qualified
  name, docstring). Question sets: `hand-written` (`questions.jsonl`, written the way users ask) and
  `generated` (a docstring's first sentence with the name removed: shares its words with the answer).
- `man`: ~420 manual pages of this machine (commands, configuration files, concepts, PostgreSQL's SQL
  commands), each page's first 30,000 characters, one item per page. Question sets: `hand-written`
  (`man_questions.jsonl`: paraphrased and keyword questions, typos) and `templates` (generated from each
  page's NAME line and option descriptions with a few sentence templates). `templates` is the tuning split
  of `fusion.py`; every other set is held out.

Embeddings of the documents' chunks are cached on disk (`--cache`, keyed by model and text), so that a
rerun does not embed ~8,000 chunks again on a 2-core machine; questions are embedded at search time.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sqlite3
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import corpora
import numpy as np

from agent_lightning.core.config import Settings
from agent_lightning.core.db import Database
from agent_lightning.core.tenancy import DEFAULT_TENANT
from agent_lightning.knowledge import fulltext
from agent_lightning.knowledge.schemas import Filters, ItemCreate, SearchRequest
from agent_lightning.knowledge.service import KnowledgeService
from agent_lightning.knowledge.tables import KnowledgeChunkRow
from agent_lightning.models.schemas import EmbeddingRequest, EmbeddingResult

HERE = Path(__file__).resolve().parent
K = 10
DEPTH = 40  # candidates collected per retriever for offline fusion (the service fuses max(2k, 20))
MAN_CHARS = 30_000
DEFAULT_CACHE = Path.home() / ".cache" / "agent-lightning-bench" / "embeddings.sqlite"


@dataclass
class Question:
    text: str
    keys: tuple[str, ...]


@dataclass
class Corpus:
    name: str
    documents: dict[str, tuple[str, str]]  # key → (content, format)
    sets: dict[str, list[Question]]
    notes: list[str] = field(default_factory=list)


# --- corpora and their question sets ---------------------------------------------------------------------


def labelled(path: Path, keys: set[str]) -> tuple[list[Question], int]:
    """A JSON Lines question set ({"q", "key", "also"}); questions whose answer is not in the corpus are
    left out (counted)."""
    questions, missing = [], 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        if record["key"] not in keys:
            missing += 1
            continue
        questions.append(
            Question(record["q"], tuple(k for k in (record["key"], *record.get("also", [])) if k in keys))
        )
    return questions, missing


def python_corpus(generated: int = 300, seed: int = 13) -> Corpus:
    docs = corpora.documented_functions()
    handwritten, missing = labelled(HERE / "questions.jsonl", set(docs))
    corpus = Corpus(
        "python", {name: (text, "text") for name, text in docs.items()}, {"hand-written": handwritten}
    )
    if generated:
        corpus.sets["generated"] = [
            Question(q, (key,)) for q, key in corpora.known_item_questions(docs, generated, seed)
        ]
    if missing:
        corpus.notes.append(
            f"{missing} hand-written questions left out: their function is not documented by this Python"
        )
    return corpus


def man_corpus(templates: int = 600, seed: int = 13) -> Corpus | None:
    pages = corpora.man_pages(corpora.MAN_PAGES)
    if len(pages) < 100:
        return None
    pages = {name: text[:MAN_CHARS] for name, text in corpora.distinct(pages).items()}
    handwritten, missing = labelled(HERE / "man_questions.jsonl", set(pages))
    generated = corpora.man_template_questions(pages, templates, seed)
    corpus = Corpus(
        "man",
        {name: (text, "markdown") for name, text in pages.items()},
        {"hand-written": handwritten, "templates": [Question(q, (key,)) for q, key in generated]},
    )
    if missing:
        corpus.notes.append(f"{missing} hand-written questions left out: their page is not installed")
    return corpus


# --- embeddings with a cache --------------------------------------------------------------------------------


class CachedEmbeddings:
    """An `EmbeddingGateway` that keeps the vectors of texts it has seen in a SQLite file."""

    def __init__(self, inner, path: Path) -> None:
        self.inner = inner
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB)")

    def _key(self, model: str, text: str) -> str:
        return hashlib.sha256(f"{model}\x1f{text}".encode()).hexdigest()

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        keys = [self._key(request.model, t) for t in request.input]
        found = dict(
            self.db.execute(
                f"SELECT key, vector FROM vectors WHERE key IN ({','.join('?' * len(keys))})", keys
            )
        )
        todo = [t for t, k in zip(request.input, keys, strict=True) if k not in found]
        result = None
        if todo:
            result = await self.inner.embed(request.model_copy(update={"input": todo}))
            fresh = {
                self._key(request.model, t): np.asarray(v, dtype="<f4").tobytes()
                for t, v in zip(todo, result.vectors, strict=True)
            }
            self.db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", fresh.items())
            self.db.commit()
            found.update(fresh)
        vectors = [np.frombuffer(found[k], dtype="<f4").tolist() for k in keys]
        return EmbeddingResult(
            model=request.model,
            provider=result.provider if result else "cache",
            provider_model=result.provider_model if result else "cache",
            vectors=vectors,
        )


def embedding_models(settings: Settings):
    from agent_lightning.models.embeddings import LocalEmbedder
    from agent_lightning.models.service import ModelService

    models = ModelService(settings=settings)
    models.embedder = LocalEmbedder(threads=settings.embedding_threads, batch_size=64)
    models.register_alias(
        settings.knowledge_embedding_model,
        provider="local",
        provider_model="all-MiniLM-L6-v2",
        kind="embedding",
    )
    return models


# --- a loaded corpus --------------------------------------------------------------------------------------


class Loaded:
    """A corpus stored through `KnowledgeService.create_many` in a temporary SQLite database."""

    def __init__(self, corpus: Corpus, cache: Path | None = DEFAULT_CACHE, backend: str = "auto") -> None:
        self.corpus = corpus
        self.cache = cache
        self.backend = backend

    async def __aenter__(self) -> Loaded:
        self.tmp = tempfile.TemporaryDirectory(prefix=f"alp-quality-{self.corpus.name}-")
        folder = Path(self.tmp.name)
        self.settings = Settings(
            _env_file=None,
            data_dir=folder,
            database_url=f"sqlite+aiosqlite:///{folder}/q.db",
            knowledge_vector_backend=self.backend,
        )
        self.db = Database(self.settings.resolved_database_url())
        await self.db.upgrade()
        self.models = embedding_models(self.settings)
        # onnxruntime's session before the vector index library is imported (usearch's wheels crash
        # onnxruntime when loaded first; the cache may leave the model unloaded until the first question).
        await self.models.embed(
            EmbeddingRequest(model=self.settings.knowledge_embedding_model, input=["warm up"])
        )
        embeddings = CachedEmbeddings(self.models, self.cache) if self.cache else self.models
        self.service = KnowledgeService(settings=self.settings, db=self.db, embeddings=embeddings)
        self.ids: dict[str, str] = {}
        started = time.perf_counter()
        names = list(self.corpus.documents)
        for start in range(0, len(names), 50):
            batch = names[start : start + 50]
            bodies = [
                ItemCreate(
                    title=name,
                    content=self.corpus.documents[name][0],
                    format=self.corpus.documents[name][1],
                    source=name,
                    category="technical_documentation",
                )
                for name in batch
            ]
            for name, result in zip(batch, await self.service.create_many(bodies), strict=True):
                self.ids[name] = result.item.id
        self.load_s = time.perf_counter() - started
        self.service.embeddings = self.models  # questions: embedded at search time, not cached
        exact = self.settings.model_copy(update={"knowledge_vector_backend": "exact"})
        self.exact = KnowledgeService(settings=exact, db=self.db, embeddings=self.models)
        async with self.db.session() as session:
            self.owner = {
                seq: item
                for seq, item in (
                    await session.execute(
                        KnowledgeChunkRow.__table__.select().with_only_columns(
                            KnowledgeChunkRow.seq, KnowledgeChunkRow.item_id
                        )
                    )
                )
            }
        return self

    async def __aexit__(self, *exc) -> None:
        await self.models.close()
        await self.db.close()
        self.tmp.cleanup()

    @property
    def chunks(self) -> int:
        return len(self.owner)

    def rank(self, question: Question, item_ids: list[str]) -> int | None:
        """The 1-based rank of the first hit that answers the question, within the top K."""
        wanted = {self.ids[key] for key in question.keys}
        return next((n for n, item in enumerate(item_ids[:K], start=1) if item in wanted), None)

    async def search_ranks(
        self, questions: list[Question], mode: str, *, exact: bool = False
    ) -> tuple[list[int | None], list[float]]:
        """Ranks and latencies (ms) of `KnowledgeService.search` in `mode` (with exact vector search)."""
        ranks, latencies = [], []
        service = self.exact if exact else self.service
        for question in questions:
            started = time.perf_counter()
            hits = (await service.search(SearchRequest(query=question.text, k=K, mode=mode))).hits
            latencies.append((time.perf_counter() - started) * 1000)
            ranks.append(self.rank(question, [hit.item_id for hit in hits]))
        return ranks, latencies

    async def rankings(self, questions: list[Question], depth: int = DEPTH) -> list[Rankings]:
        """Each question's vector and full-text candidates with their scores (what hybrid search fuses)."""
        out = []
        vectors = await self.service._embed([q.text for q in questions])
        for question, vector in zip(questions, vectors, strict=True):
            vector_hits = await self.service._vector_ranking(vector, Filters(), DEFAULT_TENANT, depth)
            async with self.db.session() as session:
                text_hits = await fulltext.search(session, question.text, Filters(), DEFAULT_TENANT, depth)
            out.append(Rankings(question, vector_hits, text_hits))
        return out


@dataclass
class Rankings:
    question: Question
    vector: list[tuple[int, float]]
    text: list[tuple[int, float]]


def scores(ranks: list[int | None]) -> tuple[float, float, float]:
    """recall@5, recall@10, MRR (over the top K)."""
    n = len(ranks)
    return (
        sum(1 for r in ranks if r and r <= 5) / n,
        sum(1 for r in ranks if r and r <= 10) / n,
        sum(1 / r for r in ranks if r) / n,
    )


def row(mode: str, ranks: list[int | None], latencies: list[float] | None = None) -> list[str]:
    r5, r10, mrr = scores(ranks)
    out = [mode, f"{r5:.3f}", f"{r10:.3f}", f"{mrr:.3f}"]
    return out + ([f"{statistics.median(latencies):.1f}"] if latencies is not None else [])


MODES = [
    ("vector (hnswlib HNSW)", "vector", False),
    ("vector (exact search, ceiling)", "vector", True),
    ("full-text (FTS5)", "fulltext", False),
    ("hybrid", "hybrid", False),
]


async def mode_table(loaded: Loaded, questions: list[Question]) -> list[list[str]]:
    """One row per search mode: recall@5, recall@10, MRR, p50 latency including the query embedding."""
    rows = []
    for label, mode, exact in MODES:
        ranks, latencies = await loaded.search_ranks(questions, mode, exact=exact)
        rows.append(row(label, ranks, latencies))
    return rows


def sample(questions: list[Question], n: int, seed: int) -> list[Question]:
    return random.Random(seed).sample(questions, min(n, len(questions)))


def words(text: str) -> int:
    return len(re.findall(r"\w+", text))
