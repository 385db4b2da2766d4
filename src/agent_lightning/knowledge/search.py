"""Full-text search per dialect (SQLite FTS5, PostgreSQL tsvector), visibility filters, and reciprocal
rank fusion."""

from __future__ import annotations

import math
import re
from datetime import datetime

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from agent_lightning.core.db import UTCDateTime, utcnow
from agent_lightning.knowledge.schemas import Filters

RRF_K = 60
STOPWORDS = frozenset(
    "a an and are as at be by can do does for from how i if in into is it its me my of on or our should "
    "that the their them then there these this to use used using was what when where which who why will "
    "with you your".split()
)


def terms(query: str, limit: int = 32) -> list[str]:
    """The query's distinct content words, in order."""
    seen: list[str] = []
    for word in re.findall(r"[A-Za-z0-9_]+", query.lower()):
        if word not in STOPWORDS and word not in seen and len(word) > 1:
            seen.append(word)
    return seen[:limit]


def visibility(filters: Filters, tenant: str) -> tuple[str, dict]:
    """A SQL condition on `i` (knowledge_items) for what the tenant (and agent) may see, plus filters."""
    params: dict = {"tenant": tenant}
    if filters.agent_id:
        clause = "((i.tenant_id = :tenant AND (i.agent_id IS NULL OR i.agent_id = :agent)) OR i.scope = 'shared')"
        params["agent"] = filters.agent_id
    else:
        clause = "(i.tenant_id = :tenant OR i.scope = 'shared')"
    parts = [clause]
    if filters.category:
        names = [f":cat{n}" for n in range(len(filters.category))]
        parts.append(f"i.category IN ({', '.join(names)})")
        params.update({f"cat{n}": c for n, c in enumerate(filters.category)})
    if filters.source:
        parts.append("i.source = :source")
        params["source"] = filters.source
    if filters.created_after:
        parts.append("i.created_at >= :after")
        params["after"] = filters.created_after
    if filters.created_before:
        parts.append("i.created_at < :before")
        params["before"] = filters.created_before
    return " AND ".join(parts), params


def _typed(sql: str, params: dict):
    statement = text(sql)
    for name in ("after", "before"):
        if name in params:
            statement = statement.bindparams(bindparam(name, type_=UTCDateTime))
    return statement


async def fulltext(session: AsyncSession, query: str, filters: Filters, tenant: str, k: int) -> list[tuple[int, float]]:
    """Chunk keys matching any query term, best first (BM25 on SQLite, ts_rank on PostgreSQL)."""
    words = terms(query)
    if not words:
        return []
    condition, params = visibility(filters, tenant)
    params["k"] = k
    if session.bind.dialect.name == "sqlite":
        params["q"] = " OR ".join(f'"{w}"' for w in words)
        sql = ("SELECT f.rowid, bm25(knowledge_chunks_fts) AS s FROM knowledge_chunks_fts f "
               "JOIN knowledge_chunks c ON c.seq = f.rowid JOIN knowledge_items i ON i.id = c.item_id "
               f"WHERE knowledge_chunks_fts MATCH :q AND {condition} ORDER BY s LIMIT :k")
        rows = await session.execute(_typed(sql, params), params)
        return [(int(seq), -float(score)) for seq, score in rows]
    params["q"] = " | ".join(words)
    sql = ("SELECT c.seq, ts_rank(c.tsv, q) AS s FROM knowledge_chunks c "
           "JOIN knowledge_items i ON i.id = c.item_id, to_tsquery('english', :q) q "
           f"WHERE c.tsv @@ q AND {condition} ORDER BY s DESC LIMIT :k")
    rows = await session.execute(_typed(sql, params), params)
    return [(int(seq), float(score)) for seq, score in rows]


async def visible(session: AsyncSession, keys: list[int], filters: Filters, tenant: str, model: str) -> set[int]:
    """Which of `keys` pass the filters (and were embedded with the active model)."""
    if not keys:
        return set()
    condition, params = visibility(filters, tenant)
    names = [f":s{n}" for n in range(len(keys))]
    params.update({f"s{n}": key for n, key in enumerate(keys)})
    params["model"] = model
    sql = ("SELECT c.seq FROM knowledge_chunks c JOIN knowledge_items i ON i.id = c.item_id "
           f"WHERE c.seq IN ({', '.join(names)}) AND c.embedding_model = :model AND {condition}")
    return {int(seq) for (seq,) in await session.execute(_typed(sql, params), params)}


def fuse(*rankings: list[int], k: int = RRF_K) -> dict[int, float]:
    """Reciprocal rank fusion: each list adds 1 / (k + rank) to the keys it ranks."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
    return scores


def feedback_factor(relevance: float, usage_count: int, last_used: datetime | None, created: datetime,
                    half_life_days: float) -> float:
    """How much feedback moves an item: its learned relevance, a little for use, less when idle for long."""
    idle_days = max(0.0, (utcnow() - (last_used or created)).total_seconds() / 86400)
    freshness = max(0.5, 0.5 ** (idle_days / half_life_days)) if half_life_days > 0 else 1.0
    return relevance * freshness * (1.0 + 0.05 * math.log1p(usage_count))
