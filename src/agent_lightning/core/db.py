"""Storage base: the declarative base, the async engine and session factory, and migrations."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import asyncpg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from filelock import AsyncFileLock
from sqlalchemy import JSON, DateTime, MetaData, String, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, DisconnectionError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from agent_lightning.core.config import Settings

MIGRATION_LOCK_KEY = 0x616C705F6D6967  # "alp_mig": the PostgreSQL advisory lock taken around migrations
MIGRATION_LOCK_WAIT_S = 600.0  # how long a process waits for another's migrations (SQLite lock file)
PING_IDLE_S = 10.0  # a pooled PostgreSQL connection idle this long is pinged before it is used again

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class SchemaOutdated(RuntimeError):
    """The database lacks migrations of this version, and this process does not migrate
    (ALP_MIGRATE_ON_START)."""


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar = {dict: JSON, list: JSON}


def utcnow() -> datetime:
    """Now, timezone-aware in UTC."""
    return datetime.now(UTC)


def new_id() -> str:
    """A new random record id."""
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator):
    """Timestamps stored in UTC and always read back timezone-aware (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class TenantMixin:
    """Every record belongs to a tenant, so isolation is a filter, not a migration."""

    tenant_id: Mapped[str] = mapped_column(String(64), index=True, default="default")


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Database:
    """An async engine with its session factory. `pool_size` connections are kept open (PostgreSQL), and as
    many more opened under load: size it for the jobs and requests a process runs at once.

    `timeout_s` bounds how long a statement waits for a locked SQLite file, and for a PostgreSQL connection
    (to connect, or from the pool); past it the statement fails with an error that `unavailable` recognises.
    The pool checks a connection before each use (a PostgreSQL restart costs no request) and reconnects by
    itself: one the driver saw close is replaced, one idle for `PING_IDLE_S` or more is pinged first (a round
    trip before every session was a quarter of a task's round trips).
    """

    def __init__(self, url: str, *, pool_size: int | None = None, timeout_s: float = 30.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.engine: AsyncEngine = create_async_engine(url, connect_args={"timeout": timeout_s})
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            self.engine.sync_engine.dialect.do_terminate = _stop_aiosqlite  # type: ignore[method-assign]
        else:
            sizing = {"pool_size": pool_size, "max_overflow": pool_size} if pool_size else {}
            self.engine = create_async_engine(
                url, pool_timeout=timeout_s, connect_args={"timeout": timeout_s}, **sizing
            )
            event.listen(self.engine.sync_engine.pool, "checkin", _idle_since)
            event.listen(self.engine.sync_engine.pool, "checkout", _usable)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def configured(cls, settings: Settings) -> Database:
        """The database the settings name (ALP_DATABASE_URL or the SQLite file), with ALP_DB_TIMEOUT_S."""
        return cls(
            settings.resolved_database_url(),
            pool_size=settings.resolved_pool_size(),
            timeout_s=settings.db_timeout_s,
        )

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    def insert(self, entity: Any) -> postgresql.Insert | sqlite.Insert:
        """An INSERT in this database's dialect, which can say what to do ON CONFLICT (an upsert in one
        statement, with no race between a read and a write)."""
        return (sqlite if self.is_sqlite else postgresql).insert(entity)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A unit of work: committed when the block ends, rolled back on any error."""
        async with self.sessions() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    async def upgrade(self) -> None:
        """Apply Alembic migrations up to every head (services add their own branches off 0001), under a lock
        so that processes started together migrate one after the other (the later ones find nothing left to
        do): on PostgreSQL an advisory lock held by the migration's transaction, on SQLite a lock file beside
        the database."""
        async with self._migration_lock(), self.engine.begin() as conn:
            if not self.is_sqlite:
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            await conn.run_sync(_upgrade)

    def _migration_lock(self) -> contextlib.AbstractAsyncContextManager:
        path = self.url.split("///", 1)[-1] if self.is_sqlite else ""
        if not path or path == ":memory:":
            return contextlib.nullcontext()
        return AsyncFileLock(f"{path}.migrate.lock", timeout=MIGRATION_LOCK_WAIT_S)

    async def pending_migrations(self) -> list[str]:
        """The migrations this version has that the database lacks (none: the schema is current)."""
        async with self.engine.connect() as conn:
            return await conn.run_sync(_pending)

    async def ping(self) -> None:
        """Raise if the database cannot answer (within `timeout_s`)."""
        async with asyncio.timeout(self.timeout_s):
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

    async def compact(self, tables: Iterable[str] = ()) -> dict[str, bool]:
        """Leave no copy of deleted or overwritten rows in the files. SQLite: checkpoint the WAL into the
        database, VACUUM (the file is rewritten without its free pages) and truncate the WAL, retrying the
        checkpoint while readers hold old frames. PostgreSQL: VACUUM `tables` (dead row versions are removed
        from their pages; WAL segments and backups follow the server's retention)."""
        names = [t for t in tables if re.fullmatch(r"[a-z_][a-z0-9_]*", t)]
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            if not self.is_sqlite:
                await conn.exec_driver_sql(
                    "VACUUM " + ", ".join(f'"{n}"' for n in names) if names else "VACUUM"
                )
                return {"compacted": True, "vacuumed": True, "wal_checkpointed": False}
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            await conn.exec_driver_sql("VACUUM")
            for _ in range(50):
                busy = (await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")).first()[0]
                if not busy:
                    return {"compacted": True, "vacuumed": True, "wal_checkpointed": True}
                await asyncio.sleep(0.1)
        return {"compacted": False, "vacuumed": True, "wal_checkpointed": False}

    async def close(self) -> None:
        await self.engine.dispose()


def _stop_aiosqlite(dbapi_connection) -> None:
    """A connection the pool gives up (a task cancelled in the middle of a statement) is stopped, not closed
    "gracefully": SQLAlchemy's graceful close awaits aiosqlite's `close()` in a task of its own, and when the
    task of the statement is cancelled again meanwhile (a shutdown cancels its background loops twice) it
    also stops the connection's thread, after which that close waits for ever on a thread that has gone; the
    event loop could then never finish (the process hung at its exit). Stopping queues the close behind the
    statement on the connection's thread and waits for nothing; a file has no server to say goodbye to."""
    dbapi_connection._terminate_force_close()


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(
        "PRAGMA synchronous=NORMAL"
    )  # with WAL: durable at checkpoints, consistent always; no fsync per commit
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


_SQLITE_UNAVAILABLE = (
    "database is locked",
    "database table is locked",
    "unable to open database file",
    "disk i/o error",
    "database or disk is full",
)
_PG_UNAVAILABLE = ("57P01", "57P02", "57P03", "53300")  # shut down, crashed, starting, too many connections


UNAVAILABLE_TYPES: tuple[type[BaseException], ...] = (
    SQLAlchemyError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
)
"""The exception types a database outage surfaces as (`unavailable` tells whether one is an outage)."""
_DRIVERS = ("sqlalchemy.", "asyncpg.", "aiosqlite.", "sqlite3.", __name__)


def _network(exc: BaseException) -> bool:
    if isinstance(exc, (ConnectionError, TimeoutError, socket.gaierror)):
        return True
    return isinstance(exc, OSError) and exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EHOSTDOWN)


def _raised_by_driver(exc: BaseException) -> bool:
    """Whether the database's driver (or this module) raised it, rather than some other network call."""
    frame = exc.__traceback__
    while frame is not None:
        if frame.tb_frame.f_globals.get("__name__", "").startswith(_DRIVERS):
            return True
        frame = frame.tb_next
    return False


def unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be reached or used right now (down, restarting, unreachable,
    locked past the timeout) rather than that a statement was wrong: the caller may retry later."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            return True
        if isinstance(exc, PoolTimeout):  # no free connection in the pool
            return True
        if _network(exc) and _raised_by_driver(exc):  # refused, reset, unreachable, timed out
            return True
        sqlstate = getattr(exc, "sqlstate", None)
        if isinstance(sqlstate, str) and (sqlstate.startswith("08") or sqlstate in _PG_UNAVAILABLE):
            return True
        if type(exc).__name__ in ("ConnectionDoesNotExistError", "InterfaceError") and "closed" in str(exc):
            return True  # asyncpg: the connection went away under the statement
        if type(exc).__module__ == "sqlite3" and any(m in str(exc).lower() for m in _SQLITE_UNAVAILABLE):
            return True
        exc = getattr(exc, "orig", None) or exc.__cause__ or exc.__context__
    return False


def _idle_since(dbapi_connection, record) -> None:
    record.info["idle_since"] = time.monotonic()


def _usable(dbapi_connection, record, proxy) -> None:
    """Refuse a pooled connection the driver saw close, or one idle for long that does not answer a ping: the
    pool then opens another (SQLAlchemy's pool_pre_ping, without a round trip for a connection in use)."""
    idle_s = time.monotonic() - record.info.get("idle_since", time.monotonic())
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("The connection was closed.")
    if idle_s >= PING_IDLE_S:
        try:
            dbapi_connection.ping()
        except Exception as exc:
            raise DisconnectionError("The connection does not answer.") from exc


def alembic_config() -> Config:
    """Alembic configuration pointing at the migrations shipped inside the package."""
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("agent_lightning") / "migrations"))
    return cfg


def _pending(connection: Connection) -> list[str]:
    script = ScriptDirectory.from_config(alembic_config())
    applied: set[str] = set()
    for head in MigrationContext.configure(connection).get_current_heads():
        try:
            applied |= {revision.revision for revision in script.iterate_revisions(head, "base")}
        except CommandError:  # a revision of a newer version of the platform: nothing this one lacks
            continue
    return sorted(set(script.get_heads()) - applied)


def _upgrade(connection: Connection) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "heads")
