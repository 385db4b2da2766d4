"""A local journal for records that are written to the database in batches: each record is appended to a file
before the work it describes is answered, so that a killed process loses none of them.

Each process appends JSON lines to a segment of its own (`PREFIX-PID-RANDOM.jsonl` in the directory), held
under a file lock while the process lives (released by the operating system when it dies). A batch `seal`s the
current segment (later records go to a new one) and, once the batch is in the database, `release` deletes the
sealed segments. At start, `orphans` yields the segments whose lock is free: what a dead process left
unwritten, to be written (idempotently: records carry their ids) and deleted.

A record is durable once `append` returns: it is in the operating system's page cache, which a killed process
does not lose (a power cut can lose the records of the last few seconds; the database write follows within
the batch interval).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from filelock import FileLock, Timeout

from agent_lightning.core.logging import get_logger

log = get_logger(__name__)


class _Segment:
    def __init__(self, path: Path, lock: FileLock) -> None:
        self.path = path
        self.lock = lock
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def remove(self) -> None:
        os.close(self.fd)
        self.path.unlink(missing_ok=True)
        _unlock(self.lock)


def _unlock(lock: FileLock) -> None:
    Path(lock.lock_file).unlink(missing_ok=True)  # removed while held: nobody can take a stale one
    lock.release()


class Journal:
    """Append-only JSON-lines segments of one kind of record (see the module doc)."""

    def __init__(self, directory: Path, prefix: str) -> None:
        self.directory = directory
        self.prefix = prefix
        self._current: _Segment | None = None
        self._sealed: list[_Segment] = []

    def append(self, record: dict[str, Any]) -> None:
        """Write one record (a single `write`: a killed process leaves whole lines)."""
        if self._current is None:
            self._current = self._open()
        os.write(self._current.fd, orjson.dumps(record) + b"\n")

    def seal(self) -> int:
        """Start a new segment for later records; the mark to `release` the records appended until now."""
        if self._current is not None:
            self._sealed.append(self._current)
            self._current = None
        return len(self._sealed)

    def release(self, mark: int) -> None:
        """The records sealed up to `mark` are stored: delete their segments."""
        for segment in self._sealed[:mark]:
            segment.remove()
        del self._sealed[:mark]

    def orphans(self) -> Iterator[list[dict[str, Any]]]:
        """The records of each segment left by a dead process; the segment is deleted once the caller has
        taken them (when the loop moves on), kept if it raises."""
        if not self.directory.is_dir():
            return
        for path in sorted(self.directory.glob(f"{self.prefix}-*.jsonl")):
            if (self._current is not None and path == self._current.path) or any(
                s.path == path for s in self._sealed
            ):
                continue
            lock = FileLock(f"{path}.lock")
            try:
                lock.acquire(timeout=0)
            except Timeout:
                continue  # its process is alive
            try:
                if not path.exists():
                    continue  # another process took it meanwhile
                records = _read(path)
                yield records
                path.unlink(missing_ok=True)
                log.info("journal_recovered", segment=path.name, records=len(records))
            finally:
                _unlock(lock)

    def _open(self) -> _Segment:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{self.prefix}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        lock = FileLock(f"{path}.lock")
        lock.acquire(timeout=0)
        return _Segment(path, lock)


def _read(path: Path) -> list[dict[str, Any]]:
    records = []
    for line in path.read_bytes().splitlines():
        try:
            records.append(orjson.loads(line))
        except orjson.JSONDecodeError:  # a line cut by a power loss: the rest of the segment still counts
            log.warning("journal_line_skipped", segment=path.name)
    return records
