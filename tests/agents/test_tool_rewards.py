"""Rewards see the steps: an answer reached after the agent misused its tools earns less; a tool's outage
costs the agent nothing."""

from __future__ import annotations

from agentkit import make_agent
from embedded import embedded_app
from support import wait_for_status


async def outcome_reward(client, agent_id: str) -> float:
    response = await client.post("/assign-task", json={"description": "Work it out", "agent_id": agent_id})
    task = await wait_for_status(client, response.json()["task_id"], timeout=60)
    assert task["status"] == "succeeded", task
    [reward] = [r for r in task["rewards"] if r["source"] == "outcome"]
    return reward["reward"]


async def test_misuse_costs_the_agent_and_an_outage_does_not(settings, caller):
    broken_sandbox = settings.model_copy(
        update={"sandbox_python": "/nonexistent/python3", "latency_target_s": 1e6}
    )
    async with embedded_app(broken_sandbox, caller) as client:
        for agent in ("clean", "misuser", "unlucky"):
            await make_agent(client, agent, ["knowledge_search", "python"])
        caller.script = [[("knowledge_search", {"query": "anything"})]]
        clean = await outcome_reward(client, "clean")
        caller.script = [[("knowledge_search", {"k": 0}), ("knowledge_search", "{oops")]]
        misused = await outcome_reward(client, "misuser")
        caller.script = [[("python", {"code": "print(1)"})]]
        outage = await outcome_reward(client, "unlucky")
    assert clean == outage == 1.0  # the sandbox being unavailable is not the agent's fault
    assert misused == 0.8  # two misused calls: 0.1 each
