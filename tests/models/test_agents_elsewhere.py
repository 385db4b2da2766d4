"""An agent that runs in another process or on another machine: its endpoint speaks the OpenAI chat API and
is registered as a model alias; the agent names that alias. Routing, execution, usage, rewards and the
fallback when that endpoint is down all go through the platform as for any agent (real HTTP throughout)."""

from __future__ import annotations

from support import running_app, wait_for_status
from upstream import FakeUpstream, Step

TASK = "Review this Helm chart for our kubernetes cluster"


async def register_remote_agent(client, upstream: FakeUpstream, fallbacks: list[str]) -> None:
    alias = {
        "id": "remote-reviewer",
        "deployments": [
            {
                "provider": "openai-compatible",
                "model": "reviewer-v3",
                "base_url": f"{upstream.url}/v1",
                "api_key": "sk-remote-agent-123456",
                "timeout_s": 5,
            }
        ],
        "fallbacks": fallbacks,
        "description": "The platform team's reviewer agent, served by its own service.",
    }
    assert (await client.post("/models", json=alias)).status_code == 201
    agent = {
        "id": "helm_reviewer",
        "name": "Helm Reviewer",
        "role": "reviewer",
        "model": "remote-reviewer",
        "system_prompt": "You review Helm charts.",
        "expertise": ["helm", "chart", "kubernetes"],
        "base_confidence": 0.95,
    }
    created = await client.post("/api/v2/agents", json=agent)
    assert created.status_code == 201, created.text


async def test_a_task_routed_to_an_agent_served_elsewhere(model_settings, fake_openai):
    async with running_app(model_settings.model_copy(update={"usage_flush_s": 0.05})) as client:
        default_model = (await client.get("/api/v2/agents/general_assistant")).json()["model"]
        await register_remote_agent(client, fake_openai, fallbacks=[default_model])

        submitted = (await client.post("/assign-task", json={"description": TASK})).json()
        assert submitted["assigned_agent"] == "helm_reviewer"
        task = await wait_for_status(client, submitted["task_id"])
        assert task["status"] == "succeeded"
        assert task["result"] == f"openai-a says: {TASK}"  # the remote endpoint's answer
        sent = fake_openai.requests[0]
        assert sent["model"] == "reviewer-v3" and sent["messages"][0]["content"].startswith(
            "You review Helm charts."
        )
        assert fake_openai.headers[0]["authorization"] == "Bearer sk-remote-agent-123456"

        # The endpoint goes down: the alias's fallback (here the platform's default model) answers instead,
        # and the next task still succeeds.
        fake_openai.push(*[Step(503, {"error": {"message": "down for maintenance"}})] * 3)
        again = (await client.post("/assign-task", json={"description": TASK + " again"})).json()
        task = await wait_for_status(client, again["task_id"])
        assert task["status"] == "succeeded" and not task["result"].startswith("openai-a says")
        stats = (await client.get("/models/remote-reviewer/stats")).json()
        assert stats["requests"] == 2 and stats["fallbacks"] == 1


async def test_without_a_fallback_a_down_agent_fails_its_attempts(model_settings, fake_openai):
    settings = model_settings.model_copy(update={"max_attempts": 2})
    async with running_app(settings) as client:
        await register_remote_agent(client, fake_openai, fallbacks=[])
        fake_openai.push(*[Step(503, {"error": {"message": "down"}})] * 20)
        submitted = (await client.post("/assign-task", json={"description": TASK})).json()
        task = await wait_for_status(client, submitted["task_id"], timeout=20)
        assert task["status"] == "failed"
        assert len(task["attempts"]) == 2
        assert all(a["agent_id"] == "helm_reviewer" and a["error"] for a in task["attempts"])
