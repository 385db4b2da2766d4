"""The agent registry over HTTP: fleet, create, version, specialise, validate, lifecycle."""

from __future__ import annotations

NEW_AGENT = {
    "id": "rust_developer",
    "name": "Rust Developer",
    "role": "developer",
    "system_prompt": "You write safe, idiomatic Rust.",
    "capabilities": ["write_code"],
    "expertise": ["rust", "cargo", "borrow checker"],
}


async def test_default_fleet_is_seeded_with_distinct_specialists(client):
    agents = (await client.get("/api/v2/agents")).json()["items"]
    assert len(agents) >= 7
    assert len({a["system_prompt"] for a in agents}) == len(agents)
    assert len({a["role"] for a in agents}) == len(agents)
    for agent in agents:
        assert agent["status"] == "active" and agent["version"] == 1
        assert agent["capabilities"] and agent["model"] == "local"
        assert agent["max_tokens"] > 0 and 0 <= agent["temperature"] <= 2


async def test_create_update_makes_a_new_version_and_keeps_the_old(client):
    created = await client.post("/api/v2/agents", json=NEW_AGENT)
    assert created.status_code == 201, created.text
    assert created.json()["version"] == 1

    updated = await client.patch(
        "/api/v2/agents/rust_developer", json={"temperature": 0.1, "expertise": ["Rust", "tokio"]}
    )
    assert updated.status_code == 200
    assert updated.json()["version"] == 2
    assert updated.json()["expertise"] == ["rust", "tokio"]

    old = (await client.get("/api/v2/agents/rust_developer", params={"version": 1})).json()
    assert old["temperature"] == 0.7 and old["version"] == 1
    versions = (await client.get("/api/v2/agents/rust_developer/versions")).json()["items"]
    assert [v["version"] for v in versions] == [1, 2]

    renamed = await client.patch("/api/v2/agents/rust_developer", json={"description": "Systems code"})
    assert renamed.json()["version"] == 2, "metadata alone does not make a version"


async def test_specialize_inherits_everything_but_the_overrides(client):
    response = await client.post(
        "/api/v2/agents/security_expert/specialize",
        json={
            "id": "web_security_expert",
            "name": "Web Security Expert",
            "expertise": ["xss", "csrf", "cors"],
        },
    )
    assert response.status_code == 201, response.text
    child = response.json()
    parent = (await client.get("/api/v2/agents/security_expert")).json()
    assert child["parent_id"] == "security_expert"
    assert child["system_prompt"] == parent["system_prompt"]
    assert child["expertise"] == ["xss", "csrf", "cors"]


async def test_validation_errors(client):
    models = client.app.state.platform.model_service
    models.register_alias("an-embedder", provider="scripted", provider_model="e", kind="embedding")
    cases = [
        ({**NEW_AGENT, "model": "no-such-model"}, 422, "unknown_model"),
        ({**NEW_AGENT, "model": "an-embedder"}, 422, "unknown_model"),
        ({**NEW_AGENT, "system_prompt": "   "}, 422, "validation_error"),
        ({**NEW_AGENT, "temperature": 3}, 422, "validation_error"),
        ({**NEW_AGENT, "max_tokens": 0}, 422, "validation_error"),
        ({**NEW_AGENT, "id": "Bad Id"}, 422, "validation_error"),
        ({**NEW_AGENT, "id": "full_stack_developer"}, 409, "agent_exists"),
        ({**NEW_AGENT, "name": "Security Expert"}, 409, "agent_name_taken"),
    ]
    for body, status, code in cases:
        response = await client.post("/api/v2/agents", json=body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["error"]["code"] == code
    agents = (await client.get("/api/v2/agents")).json()["items"]
    assert "rust_developer" not in {a["id"] for a in agents}, "nothing half-written"


async def test_lifecycle_draft_active_retired(client):
    draft = await client.post("/api/v2/agents", json={**NEW_AGENT, "status": "draft"})
    assert draft.json()["status"] == "draft"
    assert (await client.post("/api/v2/agents/rust_developer/activate")).json()["status"] == "active"
    assert (await client.post("/api/v2/agents/rust_developer/retire")).json()["status"] == "retired"
    back = await client.post("/api/v2/agents/rust_developer/activate")
    assert back.status_code == 409 and back.json()["error"]["code"] == "invalid_transition"
    change = await client.patch("/api/v2/agents/rust_developer", json={"temperature": 0.2})
    assert change.status_code == 409
    active = (await client.get("/api/v2/agents", params={"status": "active"})).json()["items"]
    assert "rust_developer" not in {a["id"] for a in active}


async def test_unknown_agent_is_404(client):
    response = await client.get("/api/v2/agents/nobody")
    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": "agent_not_found", "message": "Unknown agent 'nobody'.", "details": None}
    }
