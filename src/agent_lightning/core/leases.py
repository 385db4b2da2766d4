"""Leases on work rows: the one way a task, an execution or a workflow run is claimed, kept, fenced and
taken over when the process working on it dies.

A leased row (`LeaseMixin`) has a `status`, a `lease_until` and a `lease_token`:

- `claim` moves a waiting row to `running` in one UPDATE: the token goes up by one (a new generation)
  and the lease runs `lease_s` from now. Only one claim can win; the others get None.
- `hold` renews the lease every `heartbeat_s` while the work runs (one statement renews every lease a process
  holds on the table). When a renewal misses a row, its lease is lost (the row was cancelled, or taken over
  after a stall) and `on_lost` stops the work.
- Every write of the holder's outcome carries `fenced(lease)`: the row's id, the holder's token and
  `running`. A late result from a presumed-dead worker matches nothing and is dropped.
- `expire` (the sweep) takes over running rows whose lease has run out, except those this process holds:
  requeued, or failed when the caller's `exhausted` condition holds. A dead worker's row is taken over at
  most `lease_s` plus one sweep interval after its last heartbeat.
- `release` ends the lease at once: a process that stops before its work is done gives it up this way
  (`hold` does when its task is cancelled), and the next sweep anywhere takes the row over.

The clocks of the processes sharing a database are assumed in sync to well within `lease_s` (NTP).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Integer, and_, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from agent_lightning.core.db import Database, UTCDateTime, utcnow
from agent_lightning.core.logging import get_logger
from agent_lightning.core.tenancy import ALL_TENANTS

log = get_logger(__name__)

RUNNING = "running"
FAILED = "failed"  # the statuses every leased table shares (each domain names them in its own enum)
RELEASE_WAIT_S = 5.0  # a stopping process's last write about a lease it gives up


class LeaseMixin:
    """The columns of a row that one worker at a time may hold."""

    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lease_token: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


@dataclass(frozen=True)
class Lease:
    """A claim on one row: its id and the generation this holder got."""

    id: str
    token: int


EVERY_TENANT = {
    ALL_TENANTS: "leases: the queue delivers rows of every tenant; a lease is held by id and token"
}


class LeasedWork(Protocol):
    """A service whose work rows are leased: what to queue again after a takeover, and how to queue a row."""

    enqueue: Callable[[str], Awaitable[None]]

    async def recoverable(self, *, sole_worker: bool, include_waiting: bool = True) -> list[str]: ...


class Leases:
    """Claims, heartbeats, fencing and takeover for the rows of one table (see the module doc)."""

    def __init__(
        self,
        db: Database,
        table: type[Any],
        *,
        lease_s: float,
        heartbeat_s: float,
        waiting: Sequence[str] = ("queued",),
    ) -> None:
        self.db = db
        self.table = table
        self.lease_s = lease_s
        self.heartbeat_s = heartbeat_s
        self.waiting = tuple(waiting)
        self._held: dict[str, tuple[int, Callable[[], Any]]] = {}  # row id -> (token, on_lost) held here
        self._heartbeat: asyncio.Task | None = None  # one for every lease of this table held here

    def _until(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.lease_s)

    def fenced(self, lease: Lease) -> ColumnElement[bool]:
        """The condition every write of the holder's outcome carries."""
        t = self.table
        return and_(t.id == lease.id, t.lease_token == lease.token, t.status == RUNNING)

    async def claim(
        self, session: AsyncSession, row_id: str, *, statuses: Sequence[str] | None = None, **values: Any
    ) -> Lease | None:
        """Move a waiting row (or one in `statuses`) to running under a new lease, in the caller's
        transaction, with `values` set too; None when another claim won or the row is not waiting."""
        t = self.table
        token = await session.scalar(
            update(t)
            .where(t.id == row_id, t.status.in_(statuses or self.waiting))
            .values(
                status=RUNNING, lease_token=t.lease_token + 1, lease_until=self._until(utcnow()), **values
            )
            .returning(t.lease_token)
            .execution_options(synchronize_session=False, **EVERY_TENANT)
        )
        return None if token is None else Lease(row_id, token)

    def start(self) -> dict[str, Any]:
        """The column values of a row created already running under its first lease."""
        return {"status": RUNNING, "lease_token": 1, "lease_until": self._until(utcnow())}

    async def release(self, lease: Lease) -> None:
        """End the lease now, leaving the row running for the next sweep to take over."""
        async with self.db.session() as session:
            await session.execute(
                update(self.table)
                .where(self.fenced(lease))
                .values(lease_until=utcnow())
                .execution_options(synchronize_session=False, **EVERY_TENANT)
            )

    @contextlib.asynccontextmanager
    async def hold(self, lease: Lease, on_lost: Callable[[], Any]) -> AsyncIterator[None]:
        """Renew `lease` every `heartbeat_s` while the block runs; call `on_lost` once if it is lost. A
        process renews all the leases it holds on the table in one statement per heartbeat."""
        self._held[lease.id] = (lease.token, on_lost)
        if self._heartbeat is None:
            self._heartbeat = asyncio.create_task(self._beat(), name=f"leases:{self.table.__tablename__}")
        try:
            yield
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():  # this process stops: other processes take it over now
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.release(lease), RELEASE_WAIT_S)
            raise
        finally:
            if self._held.get(lease.id, (None,))[0] == lease.token:
                del self._held[lease.id]
            if not self._held and self._heartbeat is not None:
                self._heartbeat.cancel()
                self._heartbeat = None

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            held = {row_id: token for row_id, (token, _) in self._held.items()}
            try:
                renewed = await self._renew(held)
            except Exception as exc:  # the database is away: keep working; the fenced writes decide
                log.warning("lease_renewal_failed", table=self.table.__tablename__, error=type(exc).__name__)
                continue
            for row_id, token in held.items():
                entry = self._held.get(row_id)
                if row_id in renewed or entry is None or entry[0] != token:
                    continue
                log.warning("lease_lost", table=self.table.__tablename__, row_id=row_id, token=token)
                del self._held[row_id]
                entry[1]()

    async def _renew(self, held: dict[str, int]) -> set[str]:
        """Extend the leases still held (id and token match, still running); the ids renewed."""
        if not held:
            return set()
        t = self.table
        async with self.db.session() as session:
            renewed = await session.scalars(
                update(t)
                .where(t.status == RUNNING, tuple_(t.id, t.lease_token).in_(list(held.items())))
                .values(lease_until=self._until(utcnow()))
                .returning(t.id)
                .execution_options(synchronize_session=False, **EVERY_TENANT)
            )
            return set(renewed)

    def _expired(self, now: datetime, sole_worker: bool) -> ColumnElement[bool]:
        t = self.table
        if sole_worker:
            return t.status == RUNNING
        expired = and_(t.status == RUNNING, or_(t.lease_until.is_(None), t.lease_until < now))
        if self._held:  # a renewal held up (a busy database) does not make this process's own work an orphan
            expired = and_(expired, t.id.not_in(list(self._held)))
        return expired

    async def expire(
        self,
        session: AsyncSession,
        *,
        sole_worker: bool = False,
        exhausted: ColumnElement[bool] | None = None,
        failed: dict[str, Any] | None = None,
        requeued: dict[str, Any] | None = None,
    ) -> tuple[list[str], list[str]]:
        """Take over running rows whose lease ran out (every running row for a sole worker, at its start),
        in the caller's transaction: those matching `exhausted` become `failed` (with `failed` values), the
        others waiting again (with `requeued` values). Returns the requeued ids and the failed ids."""
        t = self.table
        now = utcnow()
        expired = self._expired(now, sole_worker)
        # Read first: a sweep that finds nothing takes no write lock (SQLite has one writer at a time).
        if not (
            await session.scalars(select(t.id).where(expired).limit(1), execution_options=EVERY_TENANT)
        ).first():
            return [], []
        lost: list[str] = []
        if exhausted is not None:
            lost = list(
                await session.scalars(
                    update(t)
                    .where(expired, exhausted)
                    .values(status=FAILED, lease_until=None, **(failed or {}))
                    .returning(t.id)
                    .execution_options(synchronize_session=False, **EVERY_TENANT)
                )
            )
        again = list(
            await session.scalars(
                update(t)
                .where(expired)
                .values(status=self.waiting[0], lease_until=None, **(requeued or {}))
                .returning(t.id)
                .execution_options(synchronize_session=False, **EVERY_TENANT)
            )
        )
        if lost or again:
            log.info("leases_expired", table=t.__tablename__, requeued=len(again), failed=len(lost))
        return again, lost

    async def stale(self, session: AsyncSession, *, older_than_s: float | None) -> list[str]:
        """Waiting rows to queue again (their message may have been lost): all of them, or those not
        touched for `older_than_s` (touched now, so that they are not queued again before that)."""
        t = self.table
        query = select(t.id).where(t.status.in_(self.waiting))
        touch = hasattr(t, "updated_at")
        if older_than_s is not None:
            if not touch:
                return []  # no way to tell how long they waited: queued again at start-up only
            query = query.where(t.updated_at < utcnow() - timedelta(seconds=older_than_s))
        ids = list(await session.scalars(query, execution_options=EVERY_TENANT))
        if ids and touch:
            await session.execute(
                update(t)
                .where(t.id.in_(ids), t.status.in_(self.waiting))
                .values(updated_at=utcnow())
                .execution_options(synchronize_session=False, **EVERY_TENANT)
            )
        return ids
