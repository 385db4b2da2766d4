"""A tenant's tool policy (issue 14), over HTTP with authentication on and two tenants: an admin sets which
tool permissions the tenant's agents may have; an agent asking for a denied one is a 422, an agent that holds
one already has its calls denied at run time; one tenant's policy never touches another's."""

from __future__ import annotations

import asyncio

from embedded import embedded_app
from tenants import account
from test_auth import with_auth

from agent_lightning.agents.schemas import ToolPolicy
from agent_lightning.core.tenancy import set_tenant

POLICY = "/api/v2/agents/tool-policy"


def agent(agent_id: str, tools: list[str]) -> dict:
    return {
        "id": agent_id,
        "name": agent_id,
        "system_prompt": "You use tools.",
        "model": "local",
        "tools": tools,
    }


async def run(client, headers: dict, agent_id: str) -> list[dict]:
    """A task for the agent, run to its end: its tool steps."""
    response = await client.post(
        "/assign-task",
        json={"description": "Remember that the pool holds 20.", "agent_id": agent_id},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    task_id = response.json()["task_id"]
    for _ in range(500):
        task = (await client.get(f"/tasks/{task_id}", headers=headers)).json()
        if task["status"] in ("succeeded", "failed"):
            break
        await asyncio.sleep(0.02)
    steps = (await client.get(f"/api/v2/actions/{task_id}", headers=headers)).json()["steps"]
    return [step for step in steps if step["kind"] == "tool"]


async def test_a_tenant_policy_is_checked_at_create_and_at_run_time_and_stays_in_its_tenant(settings, caller):
    caller.script = [[("memory_remember", {"fact": "The pool holds 20."})]]
    async with embedded_app(with_auth(settings), caller) as client:
        a = await account(client, "ann", "admin", "a")
        b = await account(client, "bob", "admin", "b")
        a_operator = await account(client, "otto", "operator", "a")

        assert (await client.get(POLICY, headers=a)).json() == {"allow": None, "deny": []}
        # an agent granted memory before the policy changes
        assert (
            await client.post(
                "/api/v2/agents", json=agent("keeper", ["memory", "knowledge_search"]), headers=a
            )
        ).status_code == 201

        denied = await client.put(POLICY, json={"deny": ["python", "memory"]}, headers=a)
        assert denied.status_code == 200, denied.text
        assert denied.json() == {"allow": None, "deny": ["memory", "python"]}
        assert (await client.put(POLICY, json={"deny": []}, headers=a_operator)).status_code == 403
        assert (await client.get(POLICY, headers=b)).json() == {"allow": None, "deny": []}

        refused = await client.post(
            "/api/v2/agents", json=agent("coder", ["python", "http_fetch"]), headers=a
        )
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["code"] == "tool_denied" and error["details"]["denied"] == ["python"]
        assert "python" in error["message"]
        changed = await client.patch("/api/v2/agents/keeper", json={"tools": ["memory_recall"]}, headers=a)
        assert changed.status_code == 422 and changed.json()["error"]["details"]["denied"] == [
            "memory_recall"
        ]
        # the other tenant is not touched by a's policy
        assert (
            await client.post("/api/v2/agents", json=agent("coder", ["python"]), headers=b)
        ).status_code == 201
        assert (
            await client.post(
                "/api/v2/agents", json=agent("keeper-b", ["memory", "knowledge_search"]), headers=b
            )
        ).status_code == 201

        # at run time: the agent that holds memory has the call denied, as a step with error_kind denied
        steps = await run(client, a, "keeper")
        assert [(s["name"], s["status"], s["error_kind"]) for s in steps] == [
            ("memory_remember", "failed", "denied")
        ]
        assert "tool policy" in steps[0]["error"]
        tools_offered = {t["function"]["name"] for t in caller.calls[-2].tools or []}
        assert tools_offered == {"knowledge_search"}  # the denied tools are not offered to the model
        steps = await run(client, b, "keeper-b")
        assert [(s["name"], s["status"], s["error_kind"]) for s in steps] == [
            ("memory_remember", "succeeded", None)
        ]

        # an allow list: only what it names (a tool name counts under its permission)
        only = await client.put(POLICY, json={"allow": ["memory", "mcp:github"]}, headers=a)
        assert only.status_code == 200 and only.json() == {"allow": ["mcp:github", "memory"], "deny": []}
        assert (
            await client.post("/api/v2/agents", json=agent("reader", ["memory_recall"]), headers=a)
        ).status_code == 201
        refused = await client.post("/api/v2/agents", json=agent("searcher", ["knowledge_search"]), headers=a)
        assert refused.status_code == 422 and refused.json()["error"]["details"]["denied"] == [
            "knowledge_search"
        ]

        for body, code in [
            ({"deny": ["no_such_tool"]}, "unknown_tool"),
            ({"deny": ["Not a name!"]}, "validation_error"),
        ]:
            bad = await client.put(POLICY, json=body, headers=a)
            assert bad.status_code == 422 and bad.json()["error"]["code"] == code, bad.text
        assert (await client.get(POLICY, headers=a)).json()["allow"] == ["mcp:github", "memory"]  # unchanged


async def test_first_policies_set_at_once_all_succeed_and_one_of_them_stays(settings, caller):
    """Eight admins' first PUTs of the tenant's policy at the same moment: each is a 200 (none races into a
    duplicate row), and the stored policy is one of those sent."""
    async with embedded_app(with_auth(settings), caller) as client:
        admin = await account(client, "ann", "admin", "a")
        sent = [
            {"allow": None, "deny": [tool]}
            for tool in ("python", "memory", "knowledge_search")
            for _ in range(3)
        ][:8]
        answers = await asyncio.gather(*(client.put(POLICY, json=body, headers=admin) for body in sent))
        assert [r.status_code for r in answers] == [200] * 8, [r.text for r in answers]
        assert (await client.get(POLICY, headers=admin)).json() in sent
        # and below HTTP, where nothing else spaces the calls apart: another tenant's first policies at once
        agents = client.app.state.platform.agent_service
        set_tenant("b")
        policies = [ToolPolicy.model_validate(body) for body in sent]
        assert await asyncio.gather(*(agents.set_tool_policy(p) for p in policies)) == policies
        assert await agents.tool_policy() in policies
