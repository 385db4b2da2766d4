"""Usage and cost accounting: prices, per-alias statistics in memory, and usage rows written in batches.

A usage row is accepted when `record` returns, which is before the answer it accounts for leaves the model
service: it is then in the journal (core/journal.py, in `ALP_DATA_DIR/usage-journal`), so that a killed
process loses no row; its batch is written within `ALP_USAGE_FLUSH_S`, a batch the database refused is written
again with the next one, and the rows a dead process left in its journal are written at the next start (each
row once: they carry their ids, and a row already stored is skipped)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from agent_lightning.core.db import Database, new_id, utcnow
from agent_lightning.core.journal import Journal
from agent_lightning.core.logging import get_logger
from agent_lightning.core.tenancy import all_tenants, tenant_is
from agent_lightning.models.schemas import Deployment, ModelStats
from agent_lightning.models.tables import UsageRow

log = get_logger(__name__)

LATENCY_WINDOW = 1000
FLUSH_CHUNK = 100
"""Usage rows per INSERT statement; the event loop serves requests between statements."""
_COLUMNS = [column.name for column in UsageRow.__table__.columns]
GROUPS = {
    "task": UsageRow.task_id,
    "agent": UsageRow.agent_id,
    "tenant": UsageRow.tenant_id,
    "model": UsageRow.model,
}


def price_of(deployment: Deployment, prices: dict[str, tuple[float, float]]) -> tuple[float, float]:
    """USD per million input and output tokens: the deployment's own, else the configured table, else free."""
    configured = (
        prices.get(f"{deployment.provider}/{deployment.model}") or prices.get(deployment.model) or (0.0, 0.0)
    )
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


_INSERTS: dict[tuple[str, str], str] = {}


def _insert_for(dialect: Dialect) -> tuple[str, Callable[[datetime], Any]]:
    """The usage row INSERT in `dialect`'s parameter style, skipping a row already stored (a batch written
    again after a crash or a lost reply), and how a timestamp is passed to its driver: SQLite stores the text
    SQLAlchemy's DATETIME writes (UTC, microseconds), PostgreSQL takes the aware datetime."""
    key = (dialect.name, dialect.paramstyle)
    if key not in _INSERTS:
        insert = (postgresql if dialect.name == "postgresql" else sqlite).insert(UsageRow.__table__)
        _INSERTS[key] = str(
            insert.on_conflict_do_nothing(index_elements=["id"]).compile(
                dialect=dialect, column_keys=_COLUMNS
            )
        )
    if dialect.name == "sqlite":
        return _INSERTS[key], _sqlite_timestamp
    return _INSERTS[key], lambda when: when


def _sqlite_timestamp(when: datetime) -> str:
    return when.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


class UsageRecorder:
    """Keeps live statistics per alias and writes a usage row per request, batched off the request path."""

    def __init__(
        self,
        db: Database | None,
        *,
        flush_s: float = 1.0,
        default_tenant: str = "default",
        journal_dir: Path | None = None,
    ) -> None:
        self.db = db
        self.flush_s = flush_s
        self.default_tenant = default_tenant
        self.journal = Journal(journal_dir, "usage") if db is not None and journal_dir is not None else None
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
        row = {
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
        if self.journal is not None:
            self.journal.append(row)  # accepted from here on: a killed process does not lose it
        self._pending.append(row)
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
        """Write every buffered usage row; rows the database refused are kept for the next batch."""
        if self.db is None:
            return
        async with self._flush_lock:
            rows, self._pending = self._pending, []
            if not rows:
                return
            mark = self.journal.seal() if self.journal is not None else 0
            try:
                await self._insert(rows)
            except Exception as exc:
                log.warning("usage_flush_failed", rows=len(rows), error=f"{type(exc).__name__}: {exc}")
                self._pending = rows + self._pending
                return
            if self.journal is not None:
                self.journal.release(mark)

    async def recover(self) -> int:
        """Write the rows that dead processes left in the journal; how many there were."""
        if self.journal is None:
            return 0
        recovered = 0
        for rows in self.journal.orphans():
            for row in rows:
                row["created_at"] = datetime.fromisoformat(row["created_at"])
            await self._insert(rows)
            recovered += len(rows)
        return recovered

    async def _insert(self, rows: list[dict[str, Any]]) -> None:
        """Insert rows (those already stored are skipped).

        Rows go to the driver as tuples (`exec_driver_sql`), FLUSH_CHUNK per statement, yielding to the event
        loop between statements: SQLAlchemy's per-row parameter processing, about 20 µs a row in the event
        loop, made a second's worth of rows (1,000 at 1,000 requests/s) one pause of 20 ms or more for the
        requests waiting on it (benchmarks/gateway)."""
        async with self.db.session() as session:
            conn = await session.connection()
            statement, when = _insert_for(conn.dialect)
            for start in range(0, len(rows), FLUSH_CHUNK):
                values = [
                    tuple(when(row[c]) if c == "created_at" else row[c] for c in _COLUMNS)
                    for row in rows[start : start + FLUSH_CHUNK]
                ]
                await conn.exec_driver_sql(statement, values)
                await asyncio.sleep(0)

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

    async def summary(
        self, group_by: str, *, tenant_id: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
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
            query = query.where(tenant_is(UsageRow, tenant_id))
        else:  # a platform admin's view of every tenant (models/api.py)
            query = all_tenants(query, "usage of every tenant, for a platform admin")
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
