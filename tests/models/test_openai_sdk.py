"""The official openai SDK against our server over real HTTP: chat, streaming, embeddings, models, errors."""

from __future__ import annotations

import math

import httpx
import openai
import pytest
from upstream import FakeUpstream


@pytest.fixture(scope="module")
def sdk(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="not-needed", max_retries=0, timeout=60)


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (
        math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    )


def test_chat_with_the_local_model(sdk):
    answer = sdk.chat.completions.create(
        model="local",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=12,
        temperature=0,
    )
    assert answer.object == "chat.completion" and answer.model == "local"
    assert answer.choices[0].message.role == "assistant" and answer.choices[0].message.content.strip()
    assert answer.usage.prompt_tokens > 0 and 0 < answer.usage.completion_tokens <= 12
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens


def test_streaming_with_usage(sdk):
    stream = sdk.chat.completions.create(
        model="local",
        messages=[{"role": "user", "content": "Count from one to five."}],
        max_tokens=10,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes in (["length"], ["stop"])
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage.completion_tokens > 0 and usage.prompt_tokens > 0
    # the same request without stream_options has no usage chunk, as with OpenAI
    plain = list(
        sdk.chat.completions.create(
            model="local", messages=[{"role": "user", "content": "Hi"}], max_tokens=4, stream=True
        )
    )
    assert all(c.choices for c in plain) and all(c.usage is None for c in plain)


def test_embeddings_float_and_base64(sdk):
    texts = ["The cat sits on the mat.", "A cat is sitting on a rug.", "Stock prices fell sharply on Monday."]
    floats = sdk.embeddings.create(model="all-minilm-l6-v2", input=texts, encoding_format="float")
    b64 = sdk.embeddings.create(model="all-minilm-l6-v2", input=texts)  # the SDK asks for base64 by default
    assert len(floats.data) == 3 and len(floats.data[0].embedding) == 384 and floats.usage.prompt_tokens > 0
    for a, b in zip(floats.data, b64.data, strict=True):
        assert a.embedding == pytest.approx(b.embedding, abs=1e-6)
    vectors = [d.embedding for d in floats.data]
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.3


def test_models_list_and_retrieve(sdk):
    ids = [m.id for m in sdk.models.list().data]
    assert "local" in ids and "all-minilm-l6-v2" in ids
    assert sdk.models.retrieve("local").owned_by == "local"


def test_errors_in_openai_shape(sdk, server):
    with pytest.raises(openai.NotFoundError) as missing:
        sdk.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.code == "model_not_found" and missing.value.type == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as bad:
        sdk.chat.completions.create(
            model="local", messages=[{"role": "user", "content": "hi"}], temperature=3.5
        )
    assert bad.value.param == "temperature" and bad.value.code == "invalid_value"
    with pytest.raises(openai.BadRequestError) as empty:
        sdk.chat.completions.create(model="local", messages=[])
    assert empty.value.param == "messages"
    with pytest.raises(openai.BadRequestError):
        sdk.embeddings.create(model="local", input="chat models do not embed")
    raw = httpx.post(
        f"{server.url}/v1/chat/completions",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert raw.status_code == 400 and set(raw.json()["error"]) == {"message", "type", "param", "code"}
    # the management API keeps the platform's own error shape
    ours = httpx.get(f"{server.url}/models/no-such-model")
    assert ours.status_code == 404 and ours.json()["error"]["code"] == "model_not_found"


def test_tools_pass_through_and_streaming_via_an_upstream(sdk, server):
    fake = FakeUpstream("upstream").start()
    try:
        created = httpx.post(
            f"{server.url}/models",
            json={
                "id": "proxied",
                "deployments": [
                    {
                        "provider": "openai-compatible",
                        "model": "m1",
                        "base_url": f"{fake.url}/v1",
                        "api_key": "sk-proxied-abcdef123456",
                    }
                ],
            },
        )
        assert created.status_code == 201
        assert created.json()["deployments"][0]["api_key"] == "sk-…3456"
        tools = [
            {
                "type": "function",
                "function": {
                    "name": "weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ]
        answer = sdk.chat.completions.create(
            model="proxied", messages=[{"role": "user", "content": "weather?"}], tools=tools, seed=7
        )
        assert answer.choices[0].finish_reason == "tool_calls"
        assert answer.choices[0].message.tool_calls[0].function.name == "weather"
        assert fake.requests[-1]["tools"] == tools and fake.requests[-1]["seed"] == 7
        stream = sdk.chat.completions.create(
            model="proxied", messages=[{"role": "user", "content": "go"}], stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream).strip() == "upstream says: go"
    finally:
        fake.stop()


async def test_models_client_implements_the_gateway_over_http(server):
    from agent_lightning.core.errors import NotFound
    from agent_lightning.core.resilience import ServiceCaller
    from agent_lightning.models.client import ModelsClient
    from agent_lightning.models.schemas import ChatMessage, ChatRequest, EmbeddingRequest

    client = ModelsClient(ServiceCaller("models", [server.url], retries=0))
    try:
        assert (await client.ready()).ok
        assert "local" in [m.id for m in await client.list_models()]
        result = await client.chat(
            ChatRequest(
                model="local",
                messages=[ChatMessage(role="user", content="Say hello.")],
                max_tokens=6,
                metadata={"agent_id": "a1"},
            )
        )
        assert result.content and result.provider == "local" and result.completion_tokens > 0
        with pytest.raises(NotFound):
            await client.chat(ChatRequest(model="missing", messages=[ChatMessage(role="user", content="x")]))
        vectors = (await client.embed(EmbeddingRequest(model="all-minilm-l6-v2", input=["one"]))).vectors
        assert len(vectors[0]) == 384
    finally:
        await client.caller.close()
