"""Rate limiting per client, in front of request validation (see docs "Rate limiting").

The counting is the `limits` library's moving window (an exact sliding window: one timestamp per
request, checked and recorded atomically; in Redis by a Lua script). Counters live in this process by
default, or in Redis so that every replica shares them. When Redis does not answer, requests pass
(fail open) and one warning is logged per outage.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent_lightning.core.http import error_response
from agent_lightning.core.logging import get_logger

log = get_logger(__name__)

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
"""Methods limited by the write limit (when one is set)."""
QUERY_PATHS = frozenset(
    {"/knowledge/search", "/memory/context", "/memory/memories/search", "/validation/scan", "/batch-validate"}
)
"""POST routes that only read (a query too large for a URL): they spend the read budget, not the write one."""

EXEMPT_PATHS = frozenset(
    {"/health", "/health/ready", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
)
"""Probes, scrapes and the API documentation are never limited."""
EXEMPT_PREFIXES = ("/static-offline-docs/",)
"""The documentation's assets (Swagger UI, ReDoc), served from the fastapi-offline package."""

REDIS_TIMEOUT_S = 0.5
"""Connect and read timeout of one Redis call: a slow Redis must not hold requests up."""

STORAGE_RETRY_S = 5.0
"""During a storage outage, requests pass unchecked and the storage is tried again after this long."""

OPENAI_PREFIX = "/v1/"
"""The OpenAI-compatible routes: their 429 is in OpenAI's error shape, which OpenAI clients read."""


def parse_limit(text: str | None) -> RateLimitItem | None:
    """One limit such as ``120/minute`` or ``10 per second``; None when empty or zero (no limit)."""
    text = (text or "").strip()
    if text in ("", "0"):
        return None
    try:
        items = parse_many(text)
    except ValueError as exc:
        raise ValueError(f"Invalid rate limit {text!r}: expected one limit such as '120/minute'.") from exc
    if len(items) != 1:
        raise ValueError(f"Invalid rate limit {text!r}: give one limit, such as '120/minute'.")
    return items[0] if items[0].amount > 0 else None


def make_storage(url: str, prefix: str) -> tuple[Storage, object | None]:
    """The counters' storage: this process's memory (empty URL) or Redis (``redis://``, ``rediss://``).

    Returns the storage and, for Redis, the connection pool to close at shutdown.
    """
    url = url.strip().removeprefix("async+")
    if not url or url == "memory://":
        return MemoryStorage(), None
    if url.split("://", 1)[0] not in ("redis", "rediss"):
        raise ValueError(
            f"Unsupported rate limit storage {url!r}: use redis://host:6379/0 or leave it empty."
        )
    from redis.asyncio import ConnectionPool
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    # No retries and short timeouts: when Redis is away the request passes rather than waits.
    pool = ConnectionPool.from_url(
        url,
        socket_connect_timeout=REDIS_TIMEOUT_S,
        socket_timeout=REDIS_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
    )
    storage = RedisStorage(
        f"async+{url}",
        implementation="redispy",
        key_prefix=prefix,
        wrap_exceptions=True,
        connection_pool=pool,
    )
    return storage, pool


@dataclass(frozen=True)
class Decision:
    """The outcome of one request's check."""

    item: RateLimitItem
    allowed: bool
    remaining: int
    reset_at: float  # Unix time at which the window frees a request

    def retry_after_s(self) -> int:
        return max(1, math.ceil(self.reset_at - time.time()))

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.item.amount),
            "X-RateLimit-Remaining": str(max(0, self.remaining)),
            "X-RateLimit-Reset": str(math.ceil(self.reset_at)),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_s())
        return headers


class RateLimiter:
    """Budgets per client: `limit` for every request, or for reads only when `write_limit` gives
    POST/PUT/PATCH/DELETE a budget of their own. No `limit`, no limiting at all."""

    def __init__(
        self, *, limit: str, write_limit: str = "", storage_url: str = "", prefix: str = "alp.ratelimit"
    ):
        self.limit = parse_limit(limit)
        self.write_limit = parse_limit(write_limit) if self.limit is not None else None
        self.storage: Storage | None = None
        self._pool = None
        if self.limit is not None:
            self.storage, self._pool = make_storage(storage_url, prefix)
            self._strategy = MovingWindowRateLimiter(self.storage)
        self._retry_at = 0.0  # monotonic time before which the storage is not tried (outage)
        self._outage = False

    @property
    def enabled(self) -> bool:
        return self.limit is not None

    async def check(self, method: str, client: str, path: str = "") -> Decision | None:
        """Count one request of `client`; None when it was not counted (storage unavailable)."""
        if method in WRITE_METHODS and path not in QUERY_PATHS and self.write_limit is not None:
            item, budget = self.write_limit, "write"
        else:
            item, budget = self.limit, "all"
        if time.monotonic() < self._retry_at:
            return None
        try:
            allowed = await self._strategy.hit(item, budget, client)
            stats = await self._strategy.get_window_stats(item, budget, client)
        except Exception as exc:  # any storage failure: fail open
            self._retry_at = time.monotonic() + STORAGE_RETRY_S
            if not self._outage:
                self._outage = True
                log.warning(
                    "rate_limit_storage_unavailable",
                    error=f"{type(exc).__name__}: {exc}",
                    detail="requests pass unlimited until it answers again",
                )
            return None
        if self._outage:
            self._outage = False
            log.info("rate_limit_storage_recovered")
        return Decision(item=item, allowed=allowed, remaining=stats.remaining, reset_at=stats.reset_time)

    async def aclose(self) -> None:
        """Release the storage's connections (and the memory storage's expiry task)."""
        timer = getattr(self.storage, "timer", None)
        if timer is not None and not timer.done():
            timer.cancel()
        if self._pool is not None:
            await self._pool.disconnect()


Identify = Callable[[Scope], Awaitable[str | None]]
"""The authenticated principal a request's credential belongs to (an id, never the credential), or None."""


def client_key(scope: Scope, principal: str | None = None) -> str:
    """Who a request counts against: its authenticated principal, else its address. A credential that does not
    authenticate counts as its address, so inventing a new key per request buys no new budget."""
    if principal:
        return f"principal:{principal}"
    client = scope.get("client")
    return f"ip:{client[0] if client else 'unknown'}"


class RateLimitMiddleware:
    """Counts each HTTP request against its client's budget before it reaches validation and routing:
    `X-RateLimit-*` headers on every counted response, 429 with `Retry-After` once the budget is spent.
    WebSockets, OPTIONS and `EXEMPT_PATHS` pass uncounted. `identify` resolves the request's credential
    (with authentication on)."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter, identify: Identify | None = None) -> None:
        self.app = app
        self.limiter = limiter
        self.identify = identify

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or not self.limiter.enabled
            or scope["method"] == "OPTIONS"
            or scope["path"] in EXEMPT_PATHS
            or scope["path"].startswith(EXEMPT_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        principal = await self.identify(scope) if self.identify is not None else None
        decision = await self.limiter.check(scope["method"], client_key(scope, principal), scope["path"])
        if decision is None:
            await self.app(scope, receive, send)
            return
        headers = decision.headers()
        if not decision.allowed:
            retry_after = int(headers["Retry-After"])
            message = f"Too many requests: the limit is {decision.item}. Retry in {retry_after} s."
            if scope["path"].startswith(OPENAI_PREFIX):
                body = {
                    "error": {
                        "message": message,
                        "type": "rate_limit_error",
                        "param": None,
                        "code": "rate_limited",
                    }
                }
                response = JSONResponse(body, status_code=429)
            else:
                details = {"limit": str(decision.item), "retry_after_s": retry_after}
                response = error_response(429, "rate_limited", message, details)
            response.headers.update(headers)
            await response(scope, receive, send)
            return
        raw = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *raw]
            await send(message)

        await self.app(scope, receive, send_with_headers)
