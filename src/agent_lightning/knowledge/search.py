"""Visibility filters, the fusion of hybrid search and the feedback factor of search (full-text search itself
is in `knowledge.fulltext`)."""

from __future__ import annotations

import math
import statistics
from datetime import datetime

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from agent_lightning.core.db import UTCDateTime, utcnow
from agent_lightning.knowledge.schemas import Filters

RRF_K = 60  # the score of a single-mode search: 1 / (RRF_K + rank)
# Hybrid search: the weight of vector search when both rankings are equally sure of their best hit, and how
# strongly that sureness moves the weight (both chosen by benchmarks/retrieval/fusion.py).
VECTOR_PRIOR = 0.6
CONFIDENCE_POWER = 0.5


def visibility(filters: Filters, tenant: str) -> tuple[str, dict]:
    """A SQL condition on `i` (knowledge_items) for what the tenant (and agent) may see, plus filters. Shared
    items only with `filters.include_shared`, which `KnowledgeService` clears unless the tenant opted in."""
    params: dict = {"tenant": tenant}
    shared = " OR i.scope = 'shared'" if filters.include_shared else ""  # the service sets it from the opt-in
    if filters.agent_id:
        clause = f"((i.tenant_id = :tenant AND (i.agent_id IS NULL OR i.agent_id = :agent)){shared})"
        params["agent"] = filters.agent_id
    else:
        clause = f"(i.tenant_id = :tenant{shared})"
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


def typed_sql(sql: str, params: dict):
    """A text statement whose time parameters are bound as UTC datetimes."""
    statement = text(sql)
    for name in ("after", "before"):
        if name in params:
            statement = statement.bindparams(bindparam(name, type_=UTCDateTime))
    return statement


async def visible(
    session: AsyncSession, keys: list[int], filters: Filters, tenant: str, model: str | None = None
) -> set[int]:
    """Which of `keys` pass the filters (and, given a model, were embedded with it)."""
    if not keys:
        return set()
    condition, params = visibility(filters, tenant)
    names = [f":s{n}" for n in range(len(keys))]
    params.update({f"s{n}": key for n, key in enumerate(keys)})
    if model is not None:
        params["model"] = model
        condition += " AND c.embedding_model = :model"
    # CROSS JOIN makes SQLite start from the keys: without table statistics its planner otherwise switches,
    # from about 40 keys on, to reading every item of the tenant (200 ms at 100k chunks).
    join = "CROSS JOIN" if session.bind.dialect.name == "sqlite" else "JOIN"
    sql = (
        f"SELECT c.seq FROM knowledge_chunks c {join} knowledge_items i ON i.id = c.item_id "
        f"WHERE c.seq IN ({', '.join(names)}) AND {condition}"
    )
    return {int(seq) for (seq,) in await session.execute(typed_sql(sql, params), params)}


def _z_scores(ranking: list[tuple[int, float]]) -> dict[int, float]:
    values = [score for _, score in ranking]
    mean, spread = statistics.fmean(values), statistics.pstdev(values) or 1.0
    return {key: (score - mean) / spread for key, score in ranking}


def _sureness(z: dict[int, float]) -> float:
    """How far a ranking's best hit stands out of the rest: its z-score minus the mean of the next four."""
    values = sorted(z.values(), reverse=True)
    return max(0.0, values[0] - statistics.fmean(values[1:5])) if len(values) > 1 else 0.0


def fuse(vector: list[tuple[int, float]], text: list[tuple[int, float]]) -> dict[int, float]:
    """Hybrid search's score of each chunk from the vector and full-text rankings, each (key, score) best
    first: the scores as z-scores within their ranking, weighed for this query by how sure each ranking is of
    its best hit (around `VECTOR_PRIOR` for vector search); a chunk one ranking lacks counts as that ranking's
    lowest. Returned as exp(fused), positive, so that feedback scales it. Reciprocal rank fusion, which this
    replaced, ignored the scores and lost to vector search alone on hand-written questions and to full-text
    search alone on keyword ones (benchmarks/retrieval/results-fusion.md)."""
    if not vector or not text:
        return {key: math.exp(z) for key, z in _z_scores(vector or text).items()} if vector or text else {}
    v, t = _z_scores(vector), _z_scores(text)
    sure_v = (VECTOR_PRIOR * _sureness(v)) ** CONFIDENCE_POWER
    sure_t = ((1 - VECTOR_PRIOR) * _sureness(t)) ** CONFIDENCE_POWER
    w = sure_v / (sure_v + sure_t) if sure_v + sure_t > 0 else VECTOR_PRIOR
    v_floor, t_floor = min(v.values()), min(t.values())
    return {
        key: math.exp(w * v.get(key, v_floor) + (1 - w) * t.get(key, t_floor)) for key in v.keys() | t.keys()
    }


def feedback_factor(
    relevance: float, usage_count: int, last_used: datetime | None, created: datetime, half_life_days: float
) -> float:
    """How much feedback moves an item: its learned relevance, a little for use, less when idle for long."""
    idle_days = max(0.0, (utcnow() - (last_used or created)).total_seconds() / 86400)
    freshness = max(0.5, 0.5 ** (idle_days / half_life_days)) if half_life_days > 0 else 1.0
    return relevance * freshness * (1.0 + 0.05 * math.log1p(usage_count))
