"""Helpers of the agent tests."""

from __future__ import annotations


async def make_agent(client, agent_id: str, tools: list[str], **spec) -> dict:
    body = {
        "id": agent_id,
        "name": agent_id.replace("_", " ").title(),
        "system_prompt": "You use tools well.",
        "model": "local",
        "tools": tools,
        **spec,
    }
    response = await client.post("/api/v2/agents", json=body)
    assert response.status_code == 201, response.text
    return response.json()
