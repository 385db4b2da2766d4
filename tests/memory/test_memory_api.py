"""The memory service over HTTP: durable sessions, the context builder, semantic add/update/delete/ignore,
working memory with TTL, the running summary, pruning, export and erasure."""

from __future__ import annotations

import asyncio


async def exchange(
    client, session_id: str, user: str, assistant: str = "Noted.", user_id: str = "ana"
) -> dict:
    response = await client.post(
        "/memory/exchanges",
        json={"session_id": session_id, "user_id": user_id, "user": user, "assistant": assistant},
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_sessions_are_durable_and_recent_turns_fit_the_budget(mclient):
    created = await mclient.post(
        "/memory/sessions", json={"user_id": "ana", "agent_id": "coder", "id": "s-1"}
    )
    assert created.status_code == 201
    assert (await mclient.post("/memory/sessions", json={"user_id": "ana", "id": "s-1"})).status_code == 409
    turns = [
        {"role": "user" if n % 2 == 0 else "assistant", "content": f"turn {n} " + "word " * 30}
        for n in range(10)
    ]
    appended = await mclient.post("/memory/sessions/s-1/messages", json={"messages": turns})
    assert appended.json()["messages"] == 10
    context = (
        await mclient.post(
            "/memory/context", json={"session_id": "s-1", "query": "next", "budget_tokens": 200}
        )
    ).json()
    assert 0 < len(context["turns"]) < 10
    assert context["turns"][-1]["content"].startswith("turn 9") and context["tokens"] <= 200
    bigger = (
        await mclient.post(
            "/memory/context", json={"session_id": "s-1", "query": "next", "budget_tokens": 4000}
        )
    ).json()
    assert len(bigger["turns"]) == 10
    sessions = (await mclient.get("/memory/sessions", params={"user_id": "ana"})).json()
    assert [s["id"] for s in sessions] == ["s-1"]
    assert (await mclient.get("/memory/sessions/nope")).status_code == 404


async def test_semantic_memory_adds_updates_deletes_and_ignores(mclient):
    async def remember(text: str) -> dict:
        return (await mclient.post("/memory/memories", json={"user_id": "ana", "content": text})).json()

    assert (await remember("The user's favourite editor is Vim."))["op"] == "add"
    assert (await remember("The user's favourite editor is Vim."))["op"] == "ignore"
    updated = await remember("The user's favourite editor is Emacs.")
    assert updated["op"] == "update" and updated["replaced"] == "The user's favourite editor is Vim."
    assert (await remember("The user is allergic to peanuts."))["op"] == "add"
    facts = [
        m["content"]
        for m in (await mclient.get("/memory/memories", params={"user_id": "ana", "kind": "semantic"})).json()
    ]
    assert sorted(facts) == ["The user is allergic to peanuts.", "The user's favourite editor is Emacs."]

    await mclient.post("/memory/sessions", json={"user_id": "ana", "id": "s-f"})
    result = await exchange(mclient, "s-f", "I live in Lyon. Can you recommend a bakery?")
    assert [op["op"] for op in result["facts"]] == ["add"]
    moved = await exchange(mclient, "s-f", "I live in Porto now.")
    assert (
        moved["facts"][0]["op"] == "update"
        and moved["facts"][0]["memory"]["content"] == "The user lives in Porto now."
    )
    forgot = await exchange(mclient, "s-f", "Forget that I live in Porto.")
    assert forgot["facts"][0]["op"] == "delete"
    facts = [
        m["content"]
        for m in (await mclient.get("/memory/memories", params={"user_id": "ana", "kind": "semantic"})).json()
    ]
    assert not any("Porto" in f or "Lyon" in f for f in facts)


async def test_older_sessions_are_recalled_by_meaning(mclient):
    await mclient.post("/memory/sessions", json={"user_id": "ben", "id": "old"})
    await exchange(mclient, "old", "My cat is called Miso and she is twelve.", user_id="ben")
    await exchange(mclient, "old", "Our CI runs on GitLab runners.", user_id="ben")
    context = (
        await mclient.post(
            "/memory/context",
            json={
                "user_id": "ben",
                "session_id": "new",
                "query": "What is my pet's name?",
                "budget_tokens": 600,
            },
        )
    ).json()
    assert context["session_id"] == "new" and context["turns"] == []
    assert "Miso" in context["memories"][0]["memory"]["content"]
    assert "[M1]" in context["text"] and "Miso" in context["text"]
    other = (
        await mclient.post("/memory/context", json={"user_id": "cy", "query": "What is my pet's name?"})
    ).json()
    assert other["memories"] == []


async def test_running_summary_is_written_by_the_model_incrementally(mclient, quoting):
    await mclient.post("/memory/sessions", json={"user_id": "ana", "id": "long"})
    for n in range(6):
        result = await exchange(mclient, "long", f"Step {n}: configure part {n}.", f"Done with part {n}.")
    assert result["summarized"] is True
    summary_calls = [c for c in quoting.calls if c.metadata.get("purpose") == "memory_summary"]
    assert len(summary_calls) == 1 and "Step 0" in summary_calls[0].messages[-1].content
    session = (await mclient.get("/memory/sessions/long")).json()
    assert session["summary"]
    await exchange(mclient, "long", "Step 6.", "ok")
    assert (await exchange(mclient, "long", "Step 7.", "ok"))["summarized"] is False
    for n in range(8, 11):
        result = await exchange(mclient, "long", f"Step {n}.", "ok")
    later = [c for c in quoting.calls if c.metadata.get("purpose") == "memory_summary"]
    assert len(later) == 2 and "Step 0" not in later[1].messages[-1].content


async def test_working_memory_expires_and_pruning(mclient):
    added = (
        await mclient.post(
            "/memory/memories",
            json={"user_id": "ana", "kind": "working", "content": "Draft id is 42", "ttl_s": 0.05},
        )
    ).json()
    assert added["op"] == "add" and added["memory"]["expires_at"]
    await mclient.post(
        "/memory/memories", json={"user_id": "ana", "kind": "episodic", "content": "Asked about pools"}
    )
    await mclient.post(
        "/memory/memories", json={"user_id": "ana", "kind": "episodic", "content": "Asked about queues"}
    )
    await asyncio.sleep(0.1)
    live = (await mclient.get("/memory/memories", params={"user_id": "ana"})).json()
    assert [m["kind"] for m in live] == ["episodic", "episodic"]
    pruned = (await mclient.post("/memory/prune", json={"max_per_user": 1})).json()
    assert pruned["expired"] == 1 and pruned["over_size"] == 1
    assert len((await mclient.get("/memory/memories", params={"user_id": "ana"})).json()) == 1


async def test_export_and_erase_a_user(mclient):
    await mclient.post("/memory/sessions", json={"user_id": "dan", "id": "d-1"})
    await exchange(mclient, "d-1", "My team uses Rust for the ingestion service.", user_id="dan")
    await mclient.post("/memory/sessions", json={"user_id": "eve", "id": "e-1"})
    await exchange(mclient, "e-1", "I like tea.", user_id="eve")
    exported = (await mclient.get("/memory/users/dan/export")).json()
    assert exported["sessions"][0]["id"] == "d-1" and len(exported["sessions"][0]["messages"]) == 2
    assert {m["kind"] for m in exported["memories"]} == {"episodic", "semantic"}
    erased = (await mclient.delete("/memory/users/dan")).json()
    assert {k: erased[k] for k in ("user_id", "sessions", "messages", "memories")} == {
        "user_id": "dan",
        "sessions": 1,
        "messages": 2,
        "memories": 2,
    }
    empty = (await mclient.get("/memory/users/dan/export")).json()
    assert empty["sessions"] == [] and empty["memories"] == []
    assert len((await mclient.get("/memory/users/eve/export")).json()["memories"]) == 2
