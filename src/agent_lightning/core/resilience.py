"""Resilience helpers for calls between services: backoff with jitter, a circuit breaker, and an
HTTP caller that round-robins over replicas and falls back to a second endpoint."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx

from agent_lightning.core import tracing
from agent_lightning.core.errors import AppError, NotFound, Unavailable, UpstreamError
from agent_lightning.core.logging import CORRELATION_HEADER, current_correlation_id, get_logger

log = get_logger(__name__)

CONNECT_TIMEOUT_S = 5.0
"""At most this long to open a connection, whatever a call's own timeout: a host that is gone (its link cut,
SYNs dropped) fails the call in seconds, not when the answer's much longer timeout runs out."""


def backoff_delay(attempt: int, base: float, cap: float = 10.0, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base·2^attempt)]."""
    return (rng or random).uniform(0, min(cap, base * 2**attempt))


class CircuitBreaker:
    """Opens after `failures` consecutive failures; after `reset_s` lets one trial call through, and no other
    while it runs (for `reset_s` at most): its success closes the breaker, its failure opens it again."""

    def __init__(self, failures: int = 5, reset_s: float = 30.0) -> None:
        self.failures = failures
        self.reset_s = reset_s
        self._count = 0
        self._opened_at: float | None = None
        self._trial_at: float | None = None

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if time.monotonic() - self._opened_at >= self.reset_s:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        """Whether a call may go now: closed, or half-open with no trial call running."""
        state = self.state
        if state == "half_open":
            return self._trial_at is None or time.monotonic() - self._trial_at >= self.reset_s
        return state == "closed"

    def started(self) -> None:
        """A call goes out; when half-open, it is the trial. (Every call let through while half-open went to a
        replica that was likely still down, each waiting out its timeout: with one of two replicas cut off,
        half of the calls of every reset window hung.)"""
        if self.state == "half_open":
            self._trial_at = time.monotonic()

    def record_success(self) -> None:
        self._count = 0
        self._opened_at = None
        self._trial_at = None

    def record_failure(self) -> None:
        self._count += 1
        if self._count >= self.failures or self.state == "half_open":
            self._opened_at = time.monotonic()
        self._trial_at = None


class ServiceCaller:
    """Calls one logical service spread over replicas.

    Each call picks replicas round-robin, skips those whose breaker is open, retries transient failures
    (connection errors, timeouts, 5xx) with backoff on the next replica, and for each replica tries the
    given paths in order, moving to the next path when the first answers 404/405/5xx (the fallback
    endpoint). A 4xx answer in the error shape is a definite answer and is raised as that error.
    """

    def __init__(
        self,
        name: str,
        base_urls: Sequence[str],
        *,
        timeout_s: float = 30.0,
        retries: int = 3,
        backoff_s: float = 0.2,
        breaker_failures: int = 5,
        breaker_reset_s: float = 30.0,
        credentials: Callable[[], dict[str, str]] | None = None,
    ) -> None:
        if not base_urls:
            raise ValueError(f"{name}: at least one base URL is needed")
        self.name = name
        self.base_urls = [url.rstrip("/") for url in base_urls]
        self.retries = retries
        self.credentials = credentials  # headers that authenticate each call (with ALP_AUTH_ENABLED)
        self.backoff_s = backoff_s
        self.breakers = {url: CircuitBreaker(breaker_failures, breaker_reset_s) for url in self.base_urls}
        self._next = itertools.cycle(range(len(self.base_urls)))
        self._connect_s = min(timeout_s, CONNECT_TIMEOUT_S)
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=self._connect_s))
        tracing.instrument_client(self._client)  # with ALP_TRACING: a client span and `traceparent` per call

    async def close(self) -> None:
        await self._client.aclose()

    def _replicas(self) -> Iterator[str]:
        """The replicas to try in turn, from the next in the rotation, each let through by its breaker at the
        moment it is tried (so a half-open one gets a single trial however many calls run at once)."""
        start = next(self._next)
        ordered = self.base_urls[start:] + self.base_urls[:start]
        tried = False
        for url in ordered:
            if self.breakers[url].allow():
                self.breakers[url].started()
                tried = True
                yield url
        if not tried:
            yield from ordered  # all open: try anyway rather than fail without a call

    async def request(
        self,
        method: str,
        paths: Sequence[str],
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> httpx.Response:
        """Send the request with retries, replica rotation and path fallback; return a 2xx response."""
        last_error: Exception | None = None
        for attempt in range(self.retries + 1):
            for base in self._replicas():
                try:
                    return await self._try_paths(method, base, paths, json, params, timeout_s)
                except AppError:
                    raise
                except (httpx.TransportError, _Transient) as exc:
                    self.breakers[base].record_failure()
                    last_error = exc
                    log.warning("service_call_failed", service=self.name, base=base, error=str(exc))
                except asyncio.CancelledError:
                    # The caller gave up before this replica answered: a task's deadline ran out on it. It
                    # counts against the replica, as its own timeout would: one cut off mid-call never
                    # answers, and without this it kept its turn in the rotation, every call sent there
                    # waiting out a deadline. (Any success resets the count, so a rare cancel by a person
                    # does not take a healthy replica out.)
                    self.breakers[base].record_failure()
                    raise
            if attempt < self.retries:
                await asyncio.sleep(backoff_delay(attempt, self.backoff_s))
        raise Unavailable(f"The {self.name} service is unavailable.", details={"last_error": str(last_error)})

    async def _try_paths(self, method, base, paths, json, params, timeout_s) -> httpx.Response:
        headers = {CORRELATION_HEADER: current_correlation_id()}
        if self.credentials is not None:
            headers.update(self.credentials())
        response: httpx.Response | None = None
        for path in paths:
            kwargs: dict[str, Any] = {"json": json, "params": params, "headers": headers}
            if timeout_s is not None:  # a longer wait for the answer, not for the connection
                kwargs["timeout"] = httpx.Timeout(timeout_s, connect=min(timeout_s, self._connect_s))
            response = await self._client.request(method, base + path, **kwargs)
            if response.status_code < 400:
                self.breakers[base].record_success()
                return response
            if response.status_code in (404, 405) and path != paths[-1] and _route_missing(response):
                continue  # this replica does not have the endpoint: use the fallback path
            if response.status_code >= 500 and path != paths[-1]:
                log.warning("endpoint_failed_using_fallback", service=self.name, path=path)
                continue
            break
        if response is None:
            raise RuntimeError("no endpoint was tried")
        if response.status_code == 503 and not _route_missing(response):
            raise _as_app_error(response)  # the service is up and says a dependency of its is not
        if response.status_code >= 500:
            raise _Transient(f"{response.status_code} from {base}")
        raise _as_app_error(response)


class _Transient(Exception):
    pass


def _route_missing(response: httpx.Response) -> bool:
    """True when the server has no such route (as opposed to a domain 404 such as an unknown task)."""
    try:
        return response.json()["error"]["code"] in ("route_not_found", "method_not_allowed")
    except (ValueError, KeyError, TypeError):
        return True


def _as_app_error(response: httpx.Response) -> AppError:
    try:
        error = response.json()["error"]
        message, code, details = error["message"], error["code"], error.get("details")
    except (ValueError, KeyError, TypeError):
        return UpstreamError(
            f"Unexpected {response.status_code} answer.", details={"body": response.text[:500]}
        )
    exc_type = {404: NotFound}.get(response.status_code, AppError)
    exc = exc_type(message, details=details, code=code)
    exc.status = response.status_code
    if "retry-after" in response.headers:  # a busy service's advice travels on (503 model_overloaded, 429)
        exc.headers = {"Retry-After": response.headers["retry-after"]}
    return exc
