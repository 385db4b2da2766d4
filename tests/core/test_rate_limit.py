"""Rate limiting over the running app: budgets per client (authenticated principal or address), the headers,
the 429, exempt paths, the stricter write budget, counters shared through a real Redis (ALP_TEST_REDIS_URL,
default 127.0.0.1:6379/0, a key prefix of its own per test) and failing open when Redis is away."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import redis.asyncio as redis
from structlog.testing import capture_logs
from support import running_app
from test_auth import add_user, bearer, with_auth

from agent_lightning.core import ratelimit
from agent_lightning.core.config import Settings
from agent_lightning.core.logging import configure_logging
from agent_lightning.core.ratelimit import RateLimiter, RateLimitMiddleware, parse_limit

REDIS_URL = os.environ.get("ALP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def limited(settings: Settings, limit: str = "5/minute", write: str = "", **updates: str) -> Settings:
    return settings.model_copy(update={"rate_limit": limit, "rate_limit_write": write, **updates})


@asynccontextmanager
async def client_at(client: httpx.AsyncClient, ip: str) -> AsyncIterator[httpx.AsyncClient]:
    """Another client of the same running app, connecting from `ip`."""
    transport = httpx.ASGITransport(app=client.app, client=(ip, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://alp") as other:
        yield other


async def test_headers_count_down_then_429_with_retry_after(settings: Settings) -> None:
    async with running_app(limited(settings)) as client:
        for expected in (4, 3, 2, 1, 0):
            response = await client.get("/tasks")
            assert response.status_code == 200
            assert response.headers["X-RateLimit-Limit"] == "5"
            assert response.headers["X-RateLimit-Remaining"] == str(expected)
            assert time.time() < int(response.headers["X-RateLimit-Reset"]) <= time.time() + 61
        response = await client.get("/tasks")
        assert response.status_code == 429
        retry_after = int(response.headers["Retry-After"])
        assert 1 <= retry_after <= 60
        assert response.headers["X-RateLimit-Remaining"] == "0"
        assert response.headers["X-Correlation-ID"]
        error = response.json()["error"]
        assert error["code"] == "rate_limited"
        assert error["details"] == {"limit": "5 per 1 minute", "retry_after_s": retry_after}
        assert "5 per 1 minute" in error["message"]


async def test_rate_limit_comes_before_validation(settings: Settings) -> None:
    async with running_app(limited(settings, "2/minute")) as client:
        assert [(await client.post("/route", json={})).status_code for _ in range(3)] == [422, 422, 429]


async def test_a_new_api_key_per_request_buys_no_new_budget(settings: Settings) -> None:
    """Issue 13: with auth off a random X-API-Key per request bypassed the limit. Keys that do not
    authenticate count as their address; with auth off every request counts as its address."""
    for secured in (False, True):
        app_settings = with_auth(limited(settings, "3/minute")) if secured else limited(settings, "3/minute")
        async with running_app(app_settings) as client:
            statuses = [
                (await client.get("/tasks", headers={"X-API-Key": f"alp_{uuid.uuid4().hex}"})).status_code
                for _ in range(5)
            ]
            assert statuses[3:] == [429, 429], (secured, statuses)
            async with client_at(client, "10.0.0.3") as other:  # another address has its own budget
                assert (await other.get("/tasks")).status_code != 429


async def test_each_principal_and_each_address_has_its_own_budget(settings: Settings) -> None:
    async with running_app(with_auth(limited(settings, "2/minute"))) as client:
        await add_user(client, "alice", "operator")
        await add_user(client, "bob", "operator")
        async with client_at(client, "10.1.0.1") as login_a, client_at(client, "10.1.0.2") as login_b:
            alice, bob = (
                await bearer(login_a, "alice"),
                await bearer(login_b, "bob"),
            )  # logins count per address
        assert [(await client.get("/tasks", headers=alice)).status_code for _ in range(3)] == [200, 200, 429]
        assert (await client.get("/tasks", headers=bob)).status_code == 200
        # A principal's budget follows it from any address; without a credential, the address's budget counts.
        async with client_at(client, "10.0.0.2") as other:
            assert (await other.get("/tasks", headers=alice)).status_code == 429
            assert [(await other.get("/tasks")).status_code for _ in range(3)] == [401, 401, 429]
        async with client_at(client, "10.0.0.3") as third:
            assert (await third.get("/tasks", headers=bob)).status_code == 200


async def test_exempt_paths_websockets_and_options_are_never_limited(settings: Settings) -> None:
    async with running_app(limited(settings, "1/minute")) as client:
        for _ in range(4):
            for path in ("/health", "/health/ready", "/metrics", "/docs", "/openapi.json"):
                response = await client.get(path)
                assert response.status_code == 200, path
                assert "X-RateLimit-Limit" not in response.headers
            assert (await client.options("/tasks")).status_code != 429
        assert (await client.get("/tasks")).status_code == 200
        assert (await client.get("/tasks")).status_code == 429

    reached = []

    async def inner(scope, receive, send) -> None:
        reached.append(scope["type"])

    middleware = RateLimitMiddleware(inner, RateLimiter(limit="1/minute"))
    for _ in range(3):
        await middleware({"type": "websocket", "path": "/ws/events", "headers": []}, None, None)
    assert reached == ["websocket"] * 3


async def test_writes_have_a_stricter_budget_of_their_own(settings: Settings) -> None:
    async with running_app(limited(settings, "5/minute", write="2/minute")) as client:
        first = await client.post("/route", json={})
        assert first.status_code == 422
        assert first.headers["X-RateLimit-Limit"] == "2"
        assert (await client.post("/route", json={})).status_code == 422
        refused = await client.post("/route", json={})
        assert refused.status_code == 429
        assert refused.json()["error"]["details"]["limit"] == "2 per 1 minute"
        assert (await client.delete("/tasks/nope")).status_code == 429
        read = await client.get("/tasks")  # reads still have their own five
        assert read.status_code == 200
        assert read.headers["X-RateLimit-Limit"] == "5"
        assert read.headers["X-RateLimit-Remaining"] == "4"


async def test_searches_posted_as_json_spend_the_read_budget(settings: Settings) -> None:
    # A knowledge search is a POST only because its query is a body: a client that used up its writes (as
    # `alp knowledge add` does under a low write limit) can still search.
    async with running_app(limited(settings, "5/minute", write="1/minute")) as client:
        assert (await client.post("/route", json={})).status_code == 422
        assert (await client.post("/route", json={})).status_code == 429
        for path in ("/knowledge/search", "/memory/memories/search", "/validation/scan"):
            read = await client.post(path, json={})  # a bad body: refused by validation, not by the limiter
            assert read.status_code == 422, read.text
            assert read.headers["X-RateLimit-Limit"] == "5"


async def test_off_when_empty_or_zero(settings: Settings) -> None:
    for off in ("", "0"):
        async with running_app(limited(settings, off, write="1/minute")) as client:
            responses = [await client.post("/route", json={}) for _ in range(3)]
            assert [r.status_code for r in responses] == [422] * 3
            assert all("X-RateLimit-Limit" not in r.headers for r in responses)


async def test_openai_routes_answer_429_in_openai_shape(settings: Settings) -> None:
    async with running_app(limited(settings, "1/minute")) as client:
        assert (await client.get("/v1/models")).status_code == 200
        response = await client.get("/v1/models")
        assert response.status_code == 429
        assert response.headers["Retry-After"]
        assert response.json()["error"]["type"] == "rate_limit_error"
        assert response.json()["error"]["code"] == "rate_limited"


async def test_openapi_documents_the_429(settings: Settings) -> None:
    async with running_app(settings) as client:
        schema = (await client.get("/openapi.json")).json()
        assert "429" in schema["paths"]["/assign-task"]["post"]["responses"]


def test_limit_strings() -> None:
    assert parse_limit("120/minute").amount == 120
    assert parse_limit("10 per second").get_expiry() == 1
    assert parse_limit("") is None and parse_limit("0") is None and parse_limit(" 0/minute ") is None
    for bad in ("lots", "5/fortnight", "1/second;10/minute"):
        with pytest.raises(ValueError, match="Invalid rate limit"):
            parse_limit(bad)
    with pytest.raises(ValueError, match="Unsupported rate limit storage"):
        RateLimiter(limit="1/minute", storage_url="memcached://127.0.0.1:11211")


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own on the test Redis; its keys are removed afterwards."""
    conn = redis.from_url(REDIS_URL)
    try:
        await conn.ping()
    except (redis.ConnectionError, OSError):
        await conn.aclose()
        pytest.skip(f"no Redis at {REDIS_URL}")
    prefix = f"alp.ratelimit.test.{uuid.uuid4().hex[:12]}"
    yield prefix
    keys = [key async for key in conn.scan_iter(match=f"{prefix}*")]
    if keys:
        await conn.delete(*keys)
    await conn.aclose()


async def test_two_instances_share_one_budget_through_redis(settings: Settings, redis_prefix: str) -> None:
    shared = with_auth(
        limited(settings, "4/minute", rate_limit_storage_url=REDIS_URL, rate_limit_prefix=redis_prefix)
    )
    async with running_app(shared) as first, running_app(shared) as second:
        assert first.app is not second.app
        await add_user(first, "ci", "admin")
        created = await first.post(
            "/auth/api-keys", headers=await bearer(first, "ci"), json={"name": "shared"}
        )
        key = {"X-API-Key": created.json()["key"]}
        statuses = []
        for client in (first, second, first, second, first, second):
            statuses.append((await client.get("/tasks", headers=key)).status_code)
        assert statuses == [200, 200, 200, 200, 429, 429]
        async with client_at(second, "10.9.9.9") as elsewhere:  # by address: its own budget
            assert (await elsewhere.get("/tasks")).headers["X-RateLimit-Remaining"] == "3"
    conn = redis.from_url(REDIS_URL)
    stored = [key async for key in conn.scan_iter(match=f"{redis_prefix}*")]
    await conn.aclose()
    assert stored, "the counters live in Redis"
    assert not any(key["X-API-Key"].encode() in k for k in stored), "the raw API key is never stored"


async def test_unreachable_redis_fails_open_and_warns_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ratelimit, "STORAGE_RETRY_S", 0.0)  # try Redis on every request: still one warning
    unreachable = limited(settings, "1/minute", rate_limit_storage_url="redis://127.0.0.1:1/0")
    async with running_app(unreachable) as client:
        with capture_logs() as logs:
            started = time.monotonic()
            responses = [await client.get("/tasks") for _ in range(4)]
            elapsed = time.monotonic() - started
    assert [r.status_code for r in responses] == [200] * 4
    assert all("X-RateLimit-Limit" not in r.headers for r in responses)
    assert elapsed < 4
    warnings = [entry for entry in logs if entry["event"] == "rate_limit_storage_unavailable"]
    assert len(warnings) == 1 and warnings[0]["log_level"] == "warning"


async def test_storage_outage_then_recovery(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "STORAGE_RETRY_S", 0.0)
    limiter = RateLimiter(limit="3/minute")
    healthy = limiter._strategy.hit
    failing = True

    async def hit(*args, **kwargs):
        if failing:
            raise ConnectionError("storage down")
        return await healthy(*args, **kwargs)

    monkeypatch.setattr(limiter._strategy, "hit", hit)
    configure_logging("INFO")  # the recovery is logged at info
    with capture_logs() as logs:
        assert await limiter.check("GET", "ip:1.2.3.4") is None
        assert await limiter.check("GET", "ip:1.2.3.4") is None
        failing = False
        decision = await limiter.check("GET", "ip:1.2.3.4")
        failing = True
        assert await limiter.check("GET", "ip:1.2.3.4") is None
    await limiter.aclose()
    assert decision is not None and decision.allowed and decision.remaining == 2
    events = [entry["event"] for entry in logs]
    assert events == [
        "rate_limit_storage_unavailable",
        "rate_limit_storage_recovered",
        "rate_limit_storage_unavailable",
    ]
