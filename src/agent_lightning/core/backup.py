"""Backup and restore of a deployment's state (`alp db backup FILE`, `alp db restore FILE`).

A backup is one tar file:

- ``manifest.json``: format version, backend, when, the package version and the database's migration head;
- ``database.sqlite``: an online copy of the SQLite database made with SQLite's backup API (consistent while
  the platform runs), or ``database.pgdump``: ``pg_dump --format=custom`` of the PostgreSQL database;
- ``data/…``: with SQLite, the other files of the data directory (the knowledge index beside the database; it
  is derived from the vectors in the database and checked against them when opened, so a copy taken a moment
  later than the database is detected as stale and rebuilt, never trusted blindly).

Restore puts everything back: stop the platform first (a restore replaces the database under it). A backup
only restores onto the same kind of backend.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from agent_lightning import __version__

FORMAT = 1


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why."""


@dataclass(frozen=True)
class BackupInfo:
    path: Path
    backend: str
    bytes: int
    files: int


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("An in-memory SQLite database has nothing to back up.")
    return Path(database)


def _libpq(url: str) -> tuple[list[str], dict[str, str]]:
    """pg_dump/pg_restore connection arguments (and PGPASSWORD) from a SQLAlchemy URL."""
    parsed = make_url(url)
    args = ["--dbname", parsed.database or "postgres"]
    if parsed.host:
        args += ["--host", parsed.host]
    if parsed.port:
        args += ["--port", str(parsed.port)]
    if parsed.username:
        args += ["--username", parsed.username]
    env = {**os.environ}
    if parsed.password:
        env["PGPASSWORD"] = parsed.password
    return args, env


def _run(command: list[str], env: dict[str, str]) -> None:
    if not shutil.which(command[0]):
        raise BackupError(
            f"{command[0]} is not installed (PostgreSQL's client tools are needed for PostgreSQL)."
        )
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise BackupError(f"{command[0]} failed: {result.stderr.strip()[-2000:]}")


def _is_database_file(path: Path, database: Path) -> bool:
    return path.name in {
        database.name,
        f"{database.name}-wal",
        f"{database.name}-shm",
        f"{database.name}-journal",
    }


def backup(url: str, data_dir: Path, target: Path, *, migration_head: str | None) -> BackupInfo:
    """Write a backup of the database at `url` (and, with SQLite, the data dir's other files) to `target`."""
    backend = "postgresql" if make_url(url).get_backend_name() == "postgresql" else "sqlite"
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        staged = Path(scratch)
        members: list[tuple[Path, str]] = []
        if backend == "sqlite":
            database = _sqlite_path(url)
            if not database.exists():
                raise BackupError(f"No database at {database}.")
            copy = staged / "database.sqlite"
            source = sqlite3.connect(database)
            destination = sqlite3.connect(copy)
            try:
                source.backup(destination)  # consistent even while the platform writes
            finally:
                destination.close()
                source.close()
            members.append((copy, "database.sqlite"))
            for path in sorted(Path(data_dir).glob("*")):
                if (
                    path.is_file()
                    and not _is_database_file(path, database)
                    and path.resolve() != target.resolve()
                ):
                    members.append((path, f"data/{path.name}"))
        else:
            dump = staged / "database.pgdump"
            args, env = _libpq(url)
            _run(["pg_dump", "--format=custom", "--no-owner", "--file", str(dump), *args], env)
            members.append((dump, "database.pgdump"))
        manifest = staged / "manifest.json"
        manifest.write_text(
            json.dumps(
                {
                    "format": FORMAT,
                    "backend": backend,
                    "created_at": datetime.now(UTC).isoformat(),
                    "version": __version__,
                    "migration_head": migration_head,
                    "files": [name for _, name in members],
                },
                indent=2,
            )
        )
        partial = target.with_name(target.name + ".partial")
        with tarfile.open(partial, "w") as archive:
            archive.add(manifest, "manifest.json")
            for path, name in members:
                archive.add(path, name)
        partial.replace(target)  # a backup file is complete or absent, never half-written
    return BackupInfo(path=target, backend=backend, bytes=target.stat().st_size, files=len(members))


def read_manifest(source: Path) -> dict:
    """The manifest of a backup file (raises BackupError when it is not one)."""
    try:
        with tarfile.open(source, "r:") as archive:
            member = archive.extractfile("manifest.json")
            manifest = json.loads(member.read()) if member else None
    except (tarfile.TarError, KeyError, ValueError, OSError) as exc:
        raise BackupError(f"{source} is not an Agent Lightning backup (no readable manifest.json).") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{source}: unknown backup format.")
    return manifest


def restore(url: str, data_dir: Path, source: Path) -> dict:
    """Replace the database at `url` (and, with SQLite, the data dir's files) with the backup in `source`."""
    manifest = read_manifest(source)
    backend = "postgresql" if make_url(url).get_backend_name() == "postgresql" else "sqlite"
    if manifest["backend"] != backend:
        raise BackupError(f"This backup is of a {manifest['backend']} database; the target is {backend}.")
    with tempfile.TemporaryDirectory() as scratch, tarfile.open(source, "r") as archive:
        archive.extractall(scratch, filter="data")  # no absolute paths, links out or devices
        staged = Path(scratch)
        if backend == "sqlite":
            database = _sqlite_path(url)
            database.parent.mkdir(parents=True, exist_ok=True)
            source_db = sqlite3.connect(staged / "database.sqlite")
            target_db = sqlite3.connect(database)
            try:
                source_db.backup(target_db)  # page by page under SQLite's locks, WAL included
                target_db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                target_db.close()
                source_db.close()
            data = staged / "data"
            Path(data_dir).mkdir(parents=True, exist_ok=True)
            for path in sorted(data.glob("*")) if data.exists() else []:
                shutil.copyfile(path, Path(data_dir) / path.name)
        else:
            args, env = _libpq(url)
            _run(
                [
                    "pg_restore",
                    "--clean",
                    "--if-exists",
                    "--no-owner",
                    "--single-transaction",
                    *args,
                    str(staged / "database.pgdump"),
                ],
                env,
            )
    return manifest
