"""Human in the loop: a tool marked requires_approval pauses the task in awaiting_approval (holding no lease)
with the proposed call; approve runs it and the run goes on, deny tells the agent; the timeout policy decides
for nobody; a failed or cancelled task can be retried."""

from __future__ import annotations

import asyncio

from agentkit import make_agent
from embedded import embedded_app
from support import wait_for_status


async def submit(client, description: str, agent_id: str) -> str:
    response = await client.post("/assign-task", json={"description": description, "agent_id": agent_id})
    assert response.status_code == 200, response.text
    return response.json()["task_id"]


async def steps(client, task_id: str) -> list[dict]:
    return (await client.get(f"/api/v2/actions/{task_id}")).json()["steps"]


async def test_a_call_that_needs_approval_pauses_the_task_until_an_operator_decides(aclient, caller):
    await make_agent(aclient, "careful", ["memory", "knowledge_search"], require_approval=["memory_remember"])
    caller.script = [
        [
            ("memory_remember", {"fact": "Deploys happen on Tuesdays."}),
            ("knowledge_search", {"query": "deploy days"}),
        ],
        [("memory_recall", {"query": "when do deploys happen"})],
    ]
    task_id = await submit(aclient, "Remember the deploy day", "careful")

    task = await wait_for_status(aclient, task_id, {"awaiting_approval"}, timeout=30)
    assert task["attempts"][-1]["status"] == "awaiting_approval"
    row = (await aclient.get(f"/tasks/{task_id}")).json()
    assert row["status"] == "awaiting_approval"
    waiting = [s for s in await steps(aclient, task_id) if s["status"] == "awaiting_approval"]
    assert [(s["number"], s["name"], s["arguments"]) for s in waiting] == [
        (2, "memory_remember", {"fact": "Deploys happen on Tuesdays."})
    ]
    search = next(s for s in await steps(aclient, task_id) if s["name"] == "knowledge_search")
    assert search["status"] == "succeeded"  # calls that need no approval ran
    bus = aclient.app.state.platform.bus
    paused = [
        e for e in bus.recent(500) if e.type == "task.awaiting_approval" and e.data["task_id"] == task_id
    ]
    assert paused and paused[0].data["steps"] == [2]
    assert (await aclient.post(f"/tasks/{task_id}/steps/3/approve")).json()["error"][
        "code"
    ] == "step_not_awaiting_approval"

    decided = await aclient.post(f"/tasks/{task_id}/steps/2/approve")
    assert decided.status_code == 200 and decided.json()["status"] == "approved"
    assert decided.json()["decided_by"] == "anonymous:anonymous"
    task = await wait_for_status(aclient, task_id, timeout=30)
    assert task["status"] == "succeeded", task
    after = await steps(aclient, task_id)
    remember = next(s for s in after if s["number"] == 2)
    assert remember["status"] == "succeeded" and remember["output"] == "Remembered."
    assert "Deploys happen on Tuesdays." in task["result"]  # the recall after the approved call found it
    again = await aclient.post(f"/tasks/{task_id}/steps/2/approve")
    assert again.status_code == 409 and again.json()["error"]["code"] == "task_not_awaiting_approval"


async def test_a_denied_call_is_reported_to_the_agent(aclient, caller):
    await make_agent(aclient, "careful2", ["memory"], require_approval=["memory_forget"])
    caller.script = [[("memory_forget", {"fact": "everything"})]]
    task_id = await submit(aclient, "Forget everything", "careful2")
    await wait_for_status(aclient, task_id, {"awaiting_approval"}, timeout=30)

    denied = await aclient.post(f"/tasks/{task_id}/steps/2/deny")
    assert denied.json()["status"] == "denied"
    task = await wait_for_status(aclient, task_id, timeout=30)
    assert task["status"] == "succeeded" and "The operator denied this call" in task["result"]
    step = next(s for s in await steps(aclient, task_id) if s["number"] == 2)
    assert step["status"] == "denied" and step["error_kind"] == "denied"


async def test_the_timeout_policy_decides_when_nobody_does(settings, caller):
    for action, outcome in (("deny", "succeeded"), ("fail", "failed")):
        quick = settings.model_copy(update={"approval_timeout_s": 0.5, "approval_timeout_action": action})
        caller.script = [[("memory_forget", {"fact": "everything"})]]
        async with embedded_app(quick, caller) as client:
            await make_agent(client, f"slow_{action}", ["memory"], require_approval=["memory"])
            task_id = await submit(client, "Forget everything", f"slow_{action}")
            await wait_for_status(client, task_id, {"awaiting_approval"}, timeout=30)
            orchestrator = client.app.state.platform.orchestrator
            for _ in range(100):
                if await orchestrator.lifecycle.expire_approvals():
                    break
                await asyncio.sleep(0.1)
            task = await wait_for_status(client, task_id, timeout=30)
            assert task["status"] == outcome, task
            step = next(s for s in await steps(client, task_id) if s["number"] == 2)
            assert step["status"] == "denied" and step["decided_by"] == "approval timeout"
            if action == "fail":
                assert task["error"].startswith("approval_timeout")


async def test_failed_and_cancelled_tasks_can_be_retried(aclient, caller):
    caller.failures = 10
    task_id = await submit(aclient, "Write a haiku", "general_assistant")
    task = await wait_for_status(aclient, task_id, timeout=30)
    assert task["status"] == "failed"
    caller.failures = 0
    retried = await aclient.post(f"/tasks/{task_id}/retry")
    assert retried.status_code == 200 and retried.json()["status"] == "queued"
    task = await wait_for_status(aclient, task_id, timeout=30)
    assert task["status"] == "succeeded" and task["error"] is None
    assert [a["status"] for a in task["attempts"]][-1] == "succeeded"
    again = await aclient.post(f"/tasks/{task_id}/retry")
    assert again.status_code == 409 and again.json()["error"]["code"] == "task_not_retryable"
