"""Fallback, retries, cooldown, timeouts and cost accounting, proven against fake upstreams over real HTTP."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select
from upstream import FakeUpstream, Step

from agent_lightning.core.errors import AppError, NotFound
from agent_lightning.models.schemas import ChatMessage, ChatRequest, Deployment, ModelCreate
from agent_lightning.models.tables import UsageRow


def ask(model: str, text: str = "hello", **kwargs) -> ChatRequest:
    return ChatRequest(
        model=model, messages=[ChatMessage(role="user", content=text)], max_tokens=16, **kwargs
    )


def openai_deployment(upstream: FakeUpstream, model: str = "gpt-test", **kwargs) -> Deployment:
    return Deployment(
        provider="openai-compatible",
        model=model,
        base_url=f"{upstream.url}/v1",
        api_key="sk-test-123456789",
        **kwargs,
    )


def anthropic_deployment(upstream: FakeUpstream, model: str = "claude-test", **kwargs) -> Deployment:
    return Deployment(
        provider="anthropic", model=model, base_url=upstream.url, api_key="sk-ant-secret-987654321", **kwargs
    )


async def test_openai_compatible_answers_and_cost_is_recorded(service, fake_openai):
    await service.create_model(
        ModelCreate(
            id="gpt", deployments=[openai_deployment(fake_openai, input_price=2.0, output_price=10.0)]
        )
    )
    result = await service.chat(
        ask("gpt", "ping", metadata={"task_id": "t1", "agent_id": "coder", "tenant_id": "acme"})
    )
    assert result.content == "openai-a says: ping"
    assert (result.prompt_tokens, result.completion_tokens) == (10, 5)
    assert result.cost_usd == pytest.approx((10 * 2.0 + 5 * 10.0) / 1e6)
    assert fake_openai.headers[0]["authorization"] == "Bearer sk-test-123456789"
    assert fake_openai.requests[0]["model"] == "gpt-test" and fake_openai.requests[0]["max_tokens"] == 16

    await service.usage.flush()
    async with service.db.session() as session:
        rows = (await session.execute(select(UsageRow))).scalars().all()
    assert len(rows) == 1
    row = rows[0]
    assert (row.task_id, row.agent_id, row.tenant_id, row.status) == ("t1", "coder", "acme", "ok")
    assert row.cost_usd == pytest.approx(result.cost_usd)
    by_agent = await service.usage_summary("agent")
    assert by_agent == [
        {
            "agent": "coder",
            "requests": 1,
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "cost_usd": pytest.approx(result.cost_usd),
        }
    ]


async def test_retries_a_500_then_succeeds_on_the_same_deployment(service, fake_openai):
    await service.create_model(ModelCreate(id="gpt", deployments=[openai_deployment(fake_openai)]))
    fake_openai.push(
        Step(500, {"error": {"message": "boom"}}), Step(502, {"error": {"message": "bad gateway"}})
    )
    result = await service.chat(ask("gpt"))
    assert result.content.startswith("openai-a says")
    assert len(fake_openai.requests) == 3
    stats = await service.stats("gpt")
    assert stats.requests == 1 and stats.errors == 0 and stats.fallbacks == 1


async def test_falls_back_to_the_next_deployment_after_retries(service, fake_openai, fake_anthropic):
    await service.create_model(
        ModelCreate(
            id="smart",
            deployments=[
                openai_deployment(fake_openai),
                anthropic_deployment(fake_anthropic, input_price=3.0, output_price=15.0),
            ],
        )
    )
    fake_openai.push(*[Step(429, {"error": {"message": "slow down"}}, headers={"retry-after": "0"})] * 3)
    result = await service.chat(ask("smart", "who answers?"))
    assert result.content == "anthropic says: who answers?"
    assert result.provider == "anthropic" and result.deployment.startswith("anthropic/claude-test")
    assert len(fake_openai.requests) == 3  # one try and two retries
    assert result.cost_usd == pytest.approx((12 * 3.0 + 6 * 15.0) / 1e6)
    sent = fake_anthropic.requests[0]
    assert sent["model"] == "claude-test" and sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "who answers?"}]}
    ]
    assert fake_anthropic.headers[0]["x-api-key"] == "sk-ant-secret-987654321"


async def test_cooldown_skips_a_failing_deployment(service, fake_openai, fake_openai_b):
    service.router.retries = 0
    await service.create_model(
        ModelCreate(
            id="pair",
            deployments=[openai_deployment(fake_openai), openai_deployment(fake_openai_b, model="backup")],
        )
    )
    fake_openai.push(*[Step(503, {"error": {"message": "down"}})] * 3)
    for _ in range(3):
        assert (await service.chat(ask("pair"))).content.startswith("openai-b")
    assert len(fake_openai.requests) == 3
    stats = await service.stats("pair")
    first = stats.deployments[0]
    assert first.cooling_down_s > 0 and not first.available
    # Cooling down: the first deployment is not even tried, although it would answer now.
    assert (await service.chat(ask("pair"))).content.startswith("openai-b")
    assert len(fake_openai.requests) == 3
    # Once the cooldown is over it is used again.
    service.cooldowns.success(first.deployment)
    assert (await service.chat(ask("pair"))).content.startswith("openai-a")


async def test_fallback_alias_and_context_length_errors(service, fake_openai, fake_openai_b):
    await service.create_model(
        ModelCreate(id="big", deployments=[openai_deployment(fake_openai_b, model="long-context")])
    )
    await service.create_model(
        ModelCreate(id="small", deployments=[openai_deployment(fake_openai)], fallbacks=["big"])
    )
    fake_openai.push(
        Step(
            400,
            {
                "error": {
                    "message": "This model's maximum context length is 8 tokens",
                    "code": "context_length_exceeded",
                }
            },
        )
    )
    result = await service.chat(ask("small", "a long prompt"))
    assert result.content == "openai-b says: a long prompt"
    assert result.model == "small" and result.provider_model == "long-context"
    assert len(fake_openai.requests) == 1  # a context-length error is not retried on the same deployment


async def test_a_bad_request_is_not_retried_nor_sent_elsewhere(service, fake_openai, fake_openai_b):
    await service.create_model(
        ModelCreate(id="pair", deployments=[openai_deployment(fake_openai), openai_deployment(fake_openai_b)])
    )
    fake_openai.push(Step(400, {"error": {"message": "Invalid 'tool_choice'", "code": "invalid_value"}}))
    with pytest.raises(AppError) as caught:
        await service.chat(ask("pair"))
    assert caught.value.status == 400 and "tool_choice" in caught.value.message
    assert len(fake_openai.requests) == 1 and fake_openai_b.requests == []


async def test_timeouts_fall_back_and_the_request_deadline_holds(service, fake_openai, fake_openai_b):
    await service.create_model(
        ModelCreate(
            id="pair",
            deployments=[openai_deployment(fake_openai, timeout_s=0.2), openai_deployment(fake_openai_b)],
        )
    )
    fake_openai.push(*[Step(200, {"never": "used"}, delay_s=2.0)] * 3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await service.chat(ask("pair"))
    assert result.content.startswith("openai-b")
    assert loop.time() - started < 1.5

    await service.create_model(
        ModelCreate(id="slow", deployments=[openai_deployment(fake_openai, model="slow")])
    )
    fake_openai.push(Step(200, {"never": "used"}, delay_s=2.0))
    started = loop.time()
    with pytest.raises(AppError) as caught:
        await service.chat(ask("slow", timeout_s=0.3))
    assert caught.value.code == "model_timeout" and loop.time() - started < 1.0


async def test_everything_rate_limited_is_a_429(service, fake_openai):
    service.router.retries = 1
    await service.create_model(ModelCreate(id="gpt", deployments=[openai_deployment(fake_openai)]))
    fake_openai.push(*[Step(429, {"error": {"message": "quota"}})] * 2)
    with pytest.raises(AppError) as caught:
        await service.chat(ask("gpt"))
    assert caught.value.status == 429
    stats = await service.stats("gpt")
    assert stats.errors == 1 and stats.error_rate == 1.0


async def test_unknown_model_and_missing_key(service, model_settings):
    with pytest.raises(NotFound):
        await service.chat(ask("nope"))
    await service.create_model(
        ModelCreate(id="real-openai", deployments=[Deployment(provider="openai", model="gpt-4o-mini")])
    )
    with pytest.raises(AppError) as caught:
        await service.chat(ask("real-openai"))
    assert caught.value.status == 503 and "API key" in caught.value.message


async def test_anthropic_streaming_and_openai_streaming(service, fake_openai, fake_anthropic):
    await service.create_model(ModelCreate(id="claude", deployments=[anthropic_deployment(fake_anthropic)]))
    await service.create_model(ModelCreate(id="gpt", deployments=[openai_deployment(fake_openai)]))
    for alias, name, usage in (("claude", "anthropic", (12, 6)), ("gpt", "openai-a", (10, 5))):
        deltas = [d async for d in await service.open_stream(ask(alias, "stream me"))]
        text = "".join(d.content for d in deltas)
        assert text.strip() == f"{name} says: stream me"
        assert deltas[-1].finish_reason == "stop"
        assert (deltas[-1].prompt_tokens, deltas[-1].completion_tokens) == usage


async def test_a_stream_with_a_deadline_relays_every_delta(service, fake_openai):
    # The deadline of a stream bounds each wait for the next delta (models/service.py `_relay`).
    await service.create_model(ModelCreate(id="gpt", deployments=[openai_deployment(fake_openai)]))
    deltas = [d async for d in await service.open_stream(ask("gpt", "stream me", timeout_s=5))]
    assert "".join(d.content for d in deltas).strip() == "openai-a says: stream me"
    assert deltas[-1].finish_reason == "stop"


async def test_exact_match_cache_is_off_by_default_and_works_when_on(service, fake_openai):
    await service.create_model(ModelCreate(id="gpt", deployments=[openai_deployment(fake_openai)]))
    await service.chat(ask("gpt", "same"))
    await service.chat(ask("gpt", "same"))
    assert len(fake_openai.requests) == 2

    from agent_lightning.models.cache import ResponseCache

    service.cache = ResponseCache()
    first = await service.chat(ask("gpt", "cached?", temperature=0))
    second = await service.chat(ask("gpt", " cached? ", temperature=0, metadata={"task_id": "other"}))
    third = await service.chat(ask("gpt", "cached?", temperature=0.5))
    assert len(fake_openai.requests) == 4  # the first and the third (different temperature) went upstream
    assert second.cached and not first.cached and second.content == first.content and second.cost_usd == 0
    assert not third.cached
    assert (await service.stats("gpt")).cache_hits == 1
