"""Admission in front of a model with few slots (the in-process llama.cpp model): at most `slots` requests
run, up to `queue_size` more wait in arrival order (FIFO), and a request that cannot be served is refused at
once with a Retry-After, never left to time out in the queue.

A request is refused when the queue is full, or when the wait ahead of it plus its own expected generation
(its `max_tokens`, capped by what answers have needed so far, at the measured token rate) would pass its
deadline. A request cancelled while it waits (its caller timed out or went away) leaves the queue.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from agent_lightning.models.providers.base import ProviderError


class Overloaded(ProviderError):
    """The model's queue cannot take this request now (503, with the seconds to wait before trying again)."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(
            message,
            status=503,
            code="model_overloaded",
            retryable=False,
            fallback=True,
            retry_after_s=max(1.0, math.ceil(retry_after_s)),
        )


@dataclass
class ServiceEstimate:
    """What a generation costs here, learned from the finished ones (exponentially weighted)."""

    tokens_per_s: float = 30.0
    overhead_s: float = 0.5  # prompt evaluation and the rest of a call
    answer_tokens: float = 256.0  # completion tokens an answer needs
    samples: int = 0
    weight: float = 0.2

    def record(self, *, seconds: float, completion_tokens: int, aborted: bool = False) -> None:
        if completion_tokens > 0 and seconds > 0:
            rate = completion_tokens / seconds
            self.tokens_per_s = (
                rate if not self.samples else self.tokens_per_s + self.weight * (rate - self.tokens_per_s)
            )
        if not aborted:
            self.answer_tokens += (completion_tokens - self.answer_tokens) * (
                self.weight if self.samples else 1.0
            )
            self.samples += 1

    def seconds(self, max_tokens: int) -> float:
        """Expected seconds of one generation asked for at most `max_tokens`."""
        return self.overhead_s + min(max_tokens, self.answer_tokens) / max(self.tokens_per_s, 1e-3)


@dataclass
class _Waiter:
    future: asyncio.Future
    expected_s: float


@dataclass
class Admission:
    """A bounded FIFO queue in front of `slots` concurrent generations."""

    slots: int = 1
    queue_size: int = 16
    estimate: ServiceEstimate = field(default_factory=ServiceEstimate)
    admitted: int = 0
    rejected: int = 0
    aborted: int = 0
    _running: dict[int, float] = field(default_factory=dict)  # ticket -> expected seconds, while it runs
    _waiting: deque[_Waiter] = field(default_factory=deque)
    _tickets: int = 0
    _handed: int = 0  # slots given to woken waiters that have not resumed yet

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def expected_wait_s(self) -> float:
        """Seconds until a request arriving now would start (every running and waiting request served)."""
        ahead = sum(self._running.values()) + sum(w.expected_s for w in self._waiting)
        return ahead / max(self.slots, 1)

    @asynccontextmanager
    async def slot(self, *, max_tokens: int, deadline: float | None = None) -> AsyncIterator[None]:
        """Hold one slot for the body; wait for it in arrival order, or raise `Overloaded` at once."""
        expected = self.estimate.seconds(max_tokens)
        if len(self._running) + self._handed >= self.slots or self._waiting:
            await self._queue(expected, deadline)
            self._handed -= 1
        self._tickets += 1
        ticket = self._tickets
        self._running[ticket] = expected
        self.admitted += 1
        try:
            yield
        finally:
            del self._running[ticket]
            self._wake()

    async def _queue(self, expected: float, deadline: float | None) -> None:
        wait = self.expected_wait_s()
        if len(self._waiting) >= self.queue_size:
            self.rejected += 1
            raise Overloaded(
                f"The model is busy: {self.running} running and {self.waiting} waiting (the most "
                f"that may wait). Try again in about {math.ceil(wait)} s.",
                wait,
            )
        if deadline is not None and self.estimate.samples and time.monotonic() + wait + expected > deadline:
            self.rejected += 1
            raise Overloaded(
                f"The model is busy: the {self.running + self.waiting} requests ahead need about "
                f"{math.ceil(wait)} s, and this one {math.ceil(expected)} s more, past its timeout. "
                f"Try again in about {math.ceil(wait)} s.",
                wait,
            )
        waiter = _Waiter(asyncio.get_running_loop().create_future(), expected)
        self._waiting.append(waiter)
        try:
            await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                self._handed -= 1
                self._wake()  # woken just as it was cancelled: the next one takes the turn
            else:
                self._waiting.remove(waiter)
            raise

    def _wake(self) -> None:
        """Let the longest-waiting request in when a slot is free."""
        while self._waiting and len(self._running) + self._handed < self.slots:
            waiter = self._waiting.popleft()
            if not waiter.future.done():
                waiter.future.set_result(None)
                self._handed += 1
