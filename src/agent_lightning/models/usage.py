"""Usage and cost accounting: prices, per-alias statistics in memory, and usage rows written in batches."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from agent_lightning.core.db import Database, new_id, utcnow
from agent_lightning.core.logging import get_logger
from agent_lightning.models.schemas import Deployment, ModelStats
from agent_lightning.models.tables import UsageRow

log = get_logger(__name__)

LATENCY_WINDOW = 1000
GROUPS = {"task": UsageRow.task_id, "agent": UsageRow.agent_id, "tenant": UsageRow.tenant_id, "model": UsageRow.model}


def price_of(deployment: Deployment, prices: dict[str, tuple[float, float]]) -> tuple[float, float]:
    """USD per million input and output tokens: the deployment's own, else the configured table, else free."""
    configured = prices.get(f"{deployment.provider}/{deployment.model}") or prices.get(deployment.model) or (0.0, 0.0)
    return (
        deployment.input_price if deployment.input_price is not None else configured[0],
        deployment.output_price if deployment.output_price is not None else configured[1],
    )


def cost_of(prompt_tokens: int, completion_tokens: int, price: tuple[float, float]) -> float:
    return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1_000_000


@dataclass
class Usage:
    """What one request cost, and to whom it is attributed."""

    model: str
    status: str  # ok | error
    kind: str = "chat"
    provider: str | None = None
    provider_model: str | None = None
    deployment: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    error_code: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    generation_ms: float = 0.0
    attempts: int = 1
    stream: bool = False
    cached: bool = False


@dataclass
class _Stats:
    requests: int = 0
    errors: int = 0
    cache_hits: int = 0
    fallbacks: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    generation_s: float = 0.0
    latencies: deque = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class UsageRecorder:
    """Keeps live statistics per alias and writes a usage row per request, batched off the request path."""

    def __init__(self, db: Database | None, *, flush_s: float = 1.0, default_tenant: str = "default") -> None:
        self.db = db
        self.flush_s = flush_s
        self.default_tenant = default_tenant
        self._stats: dict[str, _Stats] = {}
        self._pending: list[dict[str, Any]] = []
        self._flusher: asyncio.Task | None = None
        self._flush_lock = asyncio.Lock()
        self.listeners: list[Callable[[Usage], None]] = []  # e.g. the Prometheus metrics

    def record(self, usage: Usage) -> None:
        """Count the request now (and tell the listeners); its row is written with the next batch."""
        for listener in self.listeners:
            listener(usage)
        stats = self._stats.setdefault(usage.model, _Stats())
        stats.requests += 1
        if usage.status != "ok":
            stats.errors += 1
        else:
            stats.latencies.append(usage.latency_ms)
            stats.completion_tokens += usage.completion_tokens
            if usage.completion_tokens and usage.generation_ms and not usage.cached:
                stats.generation_s += usage.generation_ms / 1000
        if usage.cached:
            stats.cache_hits += 1
        if usage.attempts > 1:
            stats.fallbacks += 1
        stats.prompt_tokens += usage.prompt_tokens
        stats.cost_usd += usage.cost_usd
        if self.db is None:
            return
        meta = usage.metadata
        self._pending.append(
            {
                "id": new_id(),
                "tenant_id": meta.get("tenant_id") or self.default_tenant,
                "task_id": meta.get("task_id") or None,
                "agent_id": meta.get("agent_id") or None,
                "model": usage.model,
                "kind": usage.kind,
                "provider": usage.provider,
                "provider_model": usage.provider_model,
                "deployment": usage.deployment,
                "status": usage.status,
                "error_code": usage.error_code,
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "cost_usd": usage.cost_usd,
                "latency_ms": usage.latency_ms,
                "attempts": usage.attempts,
                "stream": usage.stream,
                "cached": usage.cached,
                "created_at": utcnow(),
            }
        )
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        """Write a batch every `flush_s` until none is left: rows recorded while a batch was being written
        go with the next one (this task is still running then, so `record` starts no other)."""
        while True:
            await asyncio.sleep(self.flush_s)
            await self.flush()
            if not self._pending:
                return

    async def flush(self) -> None:
        """Write every buffered usage row."""
        if self.db is None:
            return
        async with self._flush_lock:
            rows, self._pending = self._pending, []
            if not rows:
                return
            try:
                async with self.db.session() as session:
                    await session.execute(UsageRow.__table__.insert(), rows)
            except Exception:
                log.exception("usage_flush_failed", rows=len(rows))

    async def close(self) -> None:
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()

    def stats(self, model: str) -> ModelStats:
        """Live statistics of one alias."""
        stats = self._stats.get(model, _Stats())
        latencies = list(stats.latencies)
        return ModelStats(
            model=model,
            requests=stats.requests,
            errors=stats.errors,
            error_rate=stats.errors / stats.requests if stats.requests else 0.0,
            cache_hits=stats.cache_hits,
            fallbacks=stats.fallbacks,
            latency_p50_ms=_percentile(latencies, 0.5),
            latency_p95_ms=_percentile(latencies, 0.95),
            tokens_per_s=stats.completion_tokens / stats.generation_s if stats.generation_s else None,
            prompt_tokens=stats.prompt_tokens,
            completion_tokens=stats.completion_tokens,
            cost_usd=round(stats.cost_usd, 8),
        )

    async def summary(self, group_by: str, *, tenant_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Requests, tokens and cost from the database, grouped by task, agent, tenant or model."""
        if self.db is None:
            return []
        await self.flush()
        key = GROUPS[group_by]
        query = (
            select(
                key.label("key"),
                func.count().label("requests"),
                func.sum(UsageRow.prompt_tokens).label("prompt_tokens"),
                func.sum(UsageRow.completion_tokens).label("completion_tokens"),
                func.sum(UsageRow.cost_usd).label("cost_usd"),
            )
            .group_by(key)
            .order_by(func.sum(UsageRow.cost_usd).desc(), func.count().desc())
            .limit(limit)
        )
        if tenant_id:
            query = query.where(UsageRow.tenant_id == tenant_id)
        async with self.db.session() as session:
            result = await session.execute(query)
            return [
                {
                    group_by: row.key,
                    "requests": row.requests,
                    "prompt_tokens": int(row.prompt_tokens or 0),
                    "completion_tokens": int(row.completion_tokens or 0),
                    "cost_usd": round(float(row.cost_usd or 0.0), 8),
                }
                for row in result
            ]
