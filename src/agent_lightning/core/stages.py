"""Time spent per stage of a task's way through the platform (intake, routing, queue wait, execution,
persistence, learning), for `alp_task_stage_seconds` and benchmarks/throughput.

Services report with `observe` or `timed`; the metrics of each application listen (`listen`). Nothing
is kept here: with no listener a report costs one function call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

STAGES = ("intake", "routing", "queue_wait", "execution", "persistence", "learning")

Listener = Callable[[str, float], None]
_listeners: list[Listener] = []


def listen(listener: Listener) -> Callable[[], None]:
    """Call `listener(stage, seconds)` with every report; returns the function that stops it."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener) if listener in _listeners else None


def observe(stage: str, seconds: float) -> None:
    """Report `seconds` spent in `stage` (one of `STAGES`) for one task."""
    for listener in _listeners:
        listener(stage, seconds)


@contextmanager
def timed(stage: str) -> Iterator[None]:
    """Report the time the block took as `stage` (also when it raises)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        observe(stage, time.perf_counter() - started)
