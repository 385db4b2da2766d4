"""The management API: register, change, default, stats, usage, key masking, persistence."""

from __future__ import annotations

import httpx
import pytest
from upstream import FakeUpstream

from agent_lightning.app import create_app
from agent_lightning.models.schemas import ChatMessage, ChatRequest


@pytest.fixture
async def api(model_settings):
    app = create_app(model_settings, services=["models"])
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        yield client, app.state.platform.model_service


def deployment(upstream: FakeUpstream, model: str, **kwargs) -> dict:
    return {"provider": "openai-compatible", "model": model, "base_url": f"{upstream.url}/v1", **kwargs}


async def test_register_switch_and_persist(api, model_settings, fake_openai, fake_openai_b):
    client, models = api
    created = await client.post(
        "/models",
        json={
            "id": "team/writer",
            "scope": "platform",
            "params": {"temperature": 0.1},
            "deployments": [deployment(fake_openai, "w1", api_key="sk-live-0123456789abcdef")],
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["version"] == 1 and body["deployments"][0]["api_key"] == "sk-…cdef"
    assert "0123456789" not in (await client.get("/models")).text
    assert (
        await client.post(
            "/models",
            json={"id": "team/writer", "scope": "platform", "deployments": [deployment(fake_openai, "w1")]},
        )
    ).status_code == 409
    bad = await client.post(
        "/models", json={"id": "x", "deployments": [{"provider": "openai-compatible", "model": "m"}]}
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "base_url_required"
    bad = await client.post(
        "/models", json={"id": "y", "deployments": [deployment(fake_openai, "m")], "fallbacks": ["missing"]}
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "unknown_fallback"

    request = ChatRequest(model="team/writer", messages=[ChatMessage(role="user", content="draft")])
    assert (await models.chat(request)).content == "openai-a says: draft"
    assert fake_openai.requests[-1]["temperature"] == 0.1  # the alias's default parameters apply

    # Switch the alias to another upstream without a restart: the next request goes there.
    patched = await client.patch(
        "/models/team/writer",
        params={"scope": "platform"},
        json={"deployments": [deployment(fake_openai_b, "w2")]},
    )
    assert patched.status_code == 200 and patched.json()["version"] == 2
    assert (await models.chat(request)).content == "openai-b says: draft"

    stats = (await client.get("/models/team/writer/stats")).json()
    assert stats["requests"] == 2 and stats["errors"] == 0 and stats["latency_p50_ms"] > 0
    assert stats["cost_usd"] == 0 and stats["deployments"][0]["deployment"].startswith("openai-compatible/w2")

    assert (await client.post("/models/team/writer/default")).status_code == 200
    disable = await client.patch(
        "/models/team/writer", params={"scope": "platform"}, json={"status": "disabled"}
    )
    assert disable.status_code == 409
    usage = (await client.get("/model-usage", params={"group_by": "model"})).json()
    assert {"model": "team/writer", "requests": 2}.items() <= usage["rows"][0].items()

    # A new process on the same database sees the registry and the default.
    app = create_app(model_settings, services=["models"])
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as again:
            listed = {m["id"]: m for m in (await again.get("/models")).json()["items"]}
            assert listed["team/writer"]["is_default"] and listed["team/writer"]["version"] == 2
            assert not listed["local"]["is_default"]
            assert (await again.post("/inference/chat", json=request.model_dump(mode="json"))).json()[
                "content"
            ] == "openai-b says: draft"


async def test_disabled_models_are_not_served(api, fake_openai):
    client, _ = api
    await client.post("/models", json={"id": "old", "deployments": [deployment(fake_openai, "m")]})
    await client.patch("/models/old", json={"status": "disabled"})
    answer = await client.post(
        "/v1/chat/completions", json={"model": "old", "messages": [{"role": "user", "content": "x"}]}
    )
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "model_disabled"
    assert "old" not in [m["id"] for m in (await client.get("/v1/models")).json()["data"]]
