"""The router's capability match sees the agents' tools: a task that needs one goes to an agent granted it."""

from __future__ import annotations

from agentkit import make_agent


async def test_tasks_that_need_a_tool_go_to_an_agent_that_has_it(aclient):
    preview = (await aclient.post("/route", json={"description": "What is 1234 * 5678?"})).json()
    assert preview["agent_id"] == "analyst" and "can use python" in preview["reason"], preview
    preview = (await aclient.post("/route", json={"description": "What is the capital of France?"})).json()
    assert preview["agent_id"] == "general_assistant", preview

    await make_agent(aclient, "web_reader", ["http_fetch"], expertise=["page"], base_confidence=0.9)
    preview = (
        await aclient.post("/route", json={"description": "Summarise https://example.org/news"})
    ).json()
    assert preview["agent_id"] == "web_reader" and "can use http_fetch" in preview["reason"], preview
