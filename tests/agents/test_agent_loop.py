"""The agent loop: tool calls proposed by the model run, their results go back, every step is stored, served
at GET /api/v2/actions/{task_id} and published as `task.step`; misuse comes back to the model as an error."""

from __future__ import annotations

from agentkit import make_agent
from support import wait_for_status

POOL_DOC = (
    "# Connection pools\n\n## Sizing\nKeep the connection pool small: twice the number of CPU cores is "
    "a good start for PostgreSQL.\n"
)


async def submit(client, description: str, agent_id: str, **metadata) -> dict:
    response = await client.post(
        "/assign-task", json={"description": description, "agent_id": agent_id, "metadata": metadata}
    )
    assert response.status_code == 200, response.text
    return await wait_for_status(client, response.json()["task_id"], timeout=60)


async def test_a_tool_call_runs_and_every_step_is_stored_served_and_published(aclient, caller):
    await aclient.post("/knowledge/upload", params={"filename": "pools.md"}, content=POOL_DOC.encode())
    await make_agent(aclient, "librarian", ["knowledge_search"])
    caller.script = [[("knowledge_search", {"query": "how large should a connection pool be"})]]

    task = await submit(aclient, "How large should my connection pool be?", "librarian")

    assert task["status"] == "succeeded", task
    assert "twice the number of CPU cores" in task["result"]  # the tool's result reached the answer
    first_call = caller.calls[0]
    assert [t["function"]["name"] for t in first_call.tools] == ["knowledge_search"]
    log = (await aclient.get(f"/api/v2/actions/{task['task_id']}")).json()
    steps = log["steps"]
    assert [(s["number"], s["kind"], s["status"]) for s in steps] == [
        (1, "model", "succeeded"),
        (2, "tool", "succeeded"),
        (3, "model", "succeeded"),
    ]
    assert steps[0]["tool_calls"][0]["function"]["name"] == "knowledge_search"
    assert steps[1]["name"] == "knowledge_search" and steps[1]["arguments"] == {
        "query": "how large should a connection pool be"
    }
    assert "twice the number of CPU cores" in steps[1]["output"] and steps[1]["latency_ms"] >= 0
    assert steps[2]["output"] == task["result"]
    # the second model call saw the tool's result as a tool message answering the call
    tool_message = next(m for m in caller.calls[1].messages if m.role == "tool")
    assert (
        tool_message.tool_call_id == steps[0]["tool_calls"][0]["id"]
        and tool_message.name == "knowledge_search"
    )

    events = [
        e
        for e in aclient.app.state.platform.bus.recent(500)
        if e.type == "task.step" and e.data["task_id"] == task["task_id"]
    ]
    assert [(e.data["number"], e.data["kind"], e.data["status"]) for e in events] == [
        (1, "model", "succeeded"),
        (2, "tool", "succeeded"),
        (3, "model", "succeeded"),
    ]
    assert events[1].data["arguments"] == {"query": "how large should a connection pool be"}
    assert events[0].data["tool_calls"] == ["knowledge_search"]
    execution = (await aclient.get(f"/api/v1/tasks/{task['task_id']}")).json()
    assert execution["result"]["steps"]["tool_calls"] == 1
    assert execution["result"]["prompt_tokens"] == steps[0]["prompt_tokens"] + steps[2]["prompt_tokens"]


async def test_misused_and_unknown_tools_come_back_to_the_model_as_errors(aclient, caller):
    await make_agent(aclient, "clumsy", ["knowledge_search"])
    caller.script = [[("knowledge_search", {"k": 99}), ("knowledge_search", "{not json"), ("rm_rf", {})]]

    task = await submit(aclient, "Find something", "clumsy")

    assert task["status"] == "succeeded"
    steps = (await aclient.get(f"/api/v2/actions/{task['task_id']}")).json()["steps"]
    tools = [s for s in steps if s["kind"] == "tool"]
    assert [(s["number"], s["status"], s["error_kind"]) for s in tools] == [
        (2, "failed", "misuse"),
        (3, "failed", "misuse"),
        (4, "failed", "misuse"),
    ]
    assert (
        "'query' is a required property" in tools[0]["error"]
        and "99 is greater than the maximum" in tools[0]["error"]
    )
    assert "not valid JSON" in tools[1]["error"] and tools[1]["arguments"] == {"raw": "{not json"}
    assert "no tool named 'rm_rf'" in tools[2]["error"]
    assert "Error: Invalid arguments" in task["result"]  # the model was told
    execution = (await aclient.get(f"/api/v1/tasks/{task['task_id']}")).json()
    assert execution["result"]["steps"]["misuse"] == 3


async def test_parallel_calls_and_the_step_limit(aclient, caller):
    await make_agent(aclient, "busy", ["knowledge_search", "memory"], max_steps=2)
    caller.script = [
        [
            ("memory_remember", {"fact": "The deploy window is Tuesday 10:00."}),
            ("knowledge_search", {"query": "deploy"}),
        ]
    ] * 5

    task = await submit(aclient, "Keep working", "busy")

    assert task["status"] == "succeeded"
    steps = (await aclient.get(f"/api/v2/actions/{task['task_id']}")).json()["steps"]
    assert [(s["kind"], s["name"]) for s in steps] == [
        ("model", "local"),
        ("tool", "memory_remember"),
        ("tool", "knowledge_search"),
        ("model", "local"),
        ("tool", "memory_remember"),
        ("tool", "knowledge_search"),
        ("model", "local"),
    ]
    assert steps[1]["output"] == "Remembered." and steps[4]["output"] == "Already known."
    last = caller.calls[-1]
    assert last.tool_choice == "none" and "used every step" in last.messages[-1].content


async def test_memory_tools_keep_facts_across_tasks(aclient, caller):
    await make_agent(aclient, "keeper", ["memory"])
    caller.script = [[("memory_remember", {"fact": "The staging database is called orca."})]]
    await submit(aclient, "Note the staging database name", "keeper")
    caller.script = [[("memory_recall", {"query": "what is the staging database called"})]]

    task = await submit(aclient, "What is the staging database called?", "keeper")

    assert "orca" in task["result"]
    caller.script = [
        [("memory_forget", {"fact": "the staging database is called orca"})],
        [("memory_recall", {"query": "what is the staging database called"})],
    ]
    task = await submit(aclient, "Forget the staging database name", "keeper")
    assert "Forgot: 'The staging database is called orca.'" in task["result"]
    assert "Nothing remembered about that." in task["result"]


async def test_agents_may_only_be_granted_tools_that_exist(aclient):
    body = {
        "id": "ghost",
        "name": "Ghost",
        "system_prompt": "x",
        "tools": ["knowledge_search", "teleport", "mcp:nowhere"],
    }
    response = await aclient.post("/api/v2/agents", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "unknown_tool" and error["details"]["unknown"] == ["mcp:nowhere", "teleport"]
    assert (await aclient.get("/api/v2/agents/ghost")).status_code == 404


async def test_the_steps_of_an_unknown_task_are_a_404(aclient):
    response = await aclient.get("/api/v2/actions/nope")
    assert response.status_code == 404 and response.json()["error"]["code"] == "task_not_found"
