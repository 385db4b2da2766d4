"""Routing inside the gateway: try an alias's deployments, then its fallback aliases, in order; retry
transient failures with exponential backoff and jitter; cool down a deployment that keeps failing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from agent_lightning.core.errors import AppError, Unavailable
from agent_lightning.core.logging import get_logger
from agent_lightning.core.resilience import backoff_delay
from agent_lightning.models.deadline import call_deadline
from agent_lightning.models.providers.base import ProviderError
from agent_lightning.models.schemas import Deployment, ModelInfo

log = get_logger(__name__)
T = TypeVar("T")


@dataclass
class Target:
    """One deployment of one alias, with the provider that serves it."""

    alias: ModelInfo
    deployment: Deployment
    provider: Any

    @property
    def id(self) -> str:
        return self.deployment.id


class Cooldowns:
    """Counts consecutive failures per deployment; after `failures` of them it is skipped for `cooldown_s`."""

    def __init__(self, failures: int = 3, cooldown_s: float = 30.0) -> None:
        self.failures = failures
        self.cooldown_s = cooldown_s
        self._failures: dict[str, int] = {}
        self._until: dict[str, float] = {}

    def remaining(self, deployment_id: str) -> float:
        return max(0.0, self._until.get(deployment_id, 0.0) - time.monotonic())

    def consecutive_failures(self, deployment_id: str) -> int:
        return self._failures.get(deployment_id, 0)

    def success(self, deployment_id: str) -> None:
        self._failures.pop(deployment_id, None)
        self._until.pop(deployment_id, None)

    def failure(self, deployment_id: str) -> None:
        count = self._failures.get(deployment_id, 0) + 1
        self._failures[deployment_id] = count
        if count >= self.failures:
            self._until[deployment_id] = time.monotonic() + self.cooldown_s
            self._failures[deployment_id] = 0
            log.warning("deployment_cooling_down", deployment=deployment_id, seconds=self.cooldown_s)


@dataclass
class Outcome(Generic[T]):
    value: T
    target: Target
    attempts: int


class Router:
    """Runs a call against a chain of targets with retries, backoff, cooldown and a per-attempt timeout."""

    def __init__(
        self, cooldowns: Cooldowns, *, retries: int = 2, backoff_s: float = 0.25, timeout_s: float = 120.0
    ):
        self.cooldowns = cooldowns
        self.retries = retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s

    def order(self, targets: list[Target]) -> list[Target]:
        """Targets not cooling down, in order; if all are, all of them (better a try than a refusal)."""
        ready = [t for t in targets if not self.cooldowns.remaining(t.id)]
        return ready or sorted(targets, key=lambda t: self.cooldowns.remaining(t.id))

    async def run(
        self, targets: list[Target], call: Callable[[Target], Awaitable[T]], *, timeout_s: float | None = None
    ) -> Outcome[T]:
        deadline = time.monotonic() + timeout_s if timeout_s else None
        attempts = 0
        last: Exception | None = None
        for target in self.order(targets):
            for retry in range(self.retries + 1):
                attempts += 1
                budget = target.deployment.timeout_s or self.timeout_s
                if deadline is not None:
                    budget = min(budget, deadline - time.monotonic())
                    if budget <= 0:
                        raise _timed_out(target, timeout_s, last)
                token = call_deadline.set(time.monotonic() + budget)
                try:
                    async with asyncio.timeout(budget):
                        value = await call(target)
                except TimeoutError:
                    if deadline is not None and time.monotonic() >= deadline - 0.001:
                        raise _timed_out(target, timeout_s, last) from None
                    last = ProviderError(
                        f"{target.id} did not answer within {budget:.1f} s.",
                        code="upstream_timeout",
                        retryable=True,
                    )
                except ProviderError as exc:
                    last = exc
                except AppError:
                    raise
                else:
                    self.cooldowns.success(target.id)
                    return Outcome(value, target, attempts)
                finally:
                    call_deadline.reset(token)
                if not isinstance(last, ProviderError):
                    raise TypeError(f"unexpected failure {last!r}")
                log.warning(
                    "deployment_failed",
                    deployment=target.id,
                    code=last.code,
                    attempt=retry + 1,
                    error=last.message,
                )
                if not last.fallback:
                    raise _as_app_error(last)  # the request is wrong: no deployment will take it
                if last.code not in (
                    "context_length_exceeded",
                    "model_overloaded",
                ):  # not a broken deployment
                    self.cooldowns.failure(target.id)
                if not last.retryable or retry == self.retries or self.cooldowns.remaining(target.id):
                    break
                delay = max(backoff_delay(retry, self.backoff_s), min(last.retry_after_s or 0.0, 5.0))
                if deadline is not None and time.monotonic() + delay >= deadline:
                    break
                await asyncio.sleep(delay)
        if deadline is not None and time.monotonic() >= deadline:
            raise _timed_out(targets[0], timeout_s, last)
        raise _exhausted(targets, last)


def _as_app_error(exc: ProviderError) -> AppError:
    error = AppError(exc.message, code=exc.code)
    error.status = exc.status
    return error


def _timed_out(target: Target, timeout_s: float | None, last: Exception | None) -> AppError:
    return Unavailable(
        f"Model '{target.alias.id}' did not answer within {timeout_s} s.",
        code="model_timeout",
        details={"last_error": str(last) if last else None},
    )


def _exhausted(targets: list[Target], last: ProviderError | Exception | None) -> AppError:
    alias = targets[0].alias.id
    details = {"tried": [t.id for t in targets], "last_error": getattr(last, "message", str(last))}
    if isinstance(last, ProviderError) and last.status == 429:
        error: AppError = AppError(
            f"Every deployment of '{alias}' is rate limited.", code="rate_limited", details=details
        )
        error.status = 429
        return error
    if isinstance(last, ProviderError) and last.code in ("context_length_exceeded", "unsupported_content"):
        return AppError(last.message, code=last.code, details=details)
    if isinstance(last, ProviderError) and last.code == "model_overloaded":
        busy = Unavailable(last.message, code="model_overloaded", details=details)
        busy.headers = {"Retry-After": str(int(last.retry_after_s or 1))}
        return busy
    return Unavailable(
        f"No deployment of model '{alias}' could answer.", code="model_unavailable", details=details
    )
