"""Forget and update act on every memory kind (issue 13).

The attack: "Forget that our project is written in Rust" deleted the semantic fact, but four episodic
memories mentioning Rust stayed and three of them went into the next prompt; after a fact update, the old
value was still recalled from episodes. Now a forget removes the value from every kind of memory (semantic,
episodic, working), from the running summaries and from the conversation's messages; an update removes the
old value from episodes, working memories and summaries.
"""

from __future__ import annotations

import re

from support import wait_for_status
from test_memory_api import exchange

RUST = re.compile(r"rust", re.IGNORECASE)


async def memories(client, user_id="ana") -> list[dict]:
    return (await client.get("/memory/memories", params={"user_id": user_id})).json()


async def test_forget_removes_the_value_from_every_memory_kind_and_the_next_prompt(
    mclient, quoting, settings
):
    await mclient.post("/memory/sessions", json={"user_id": "ana", "id": "s-1"})
    for text in (
        "Our project is written in Rust.",
        "Can you review the Rust error handling in our parser?",
        "We compile our Rust crates with cargo on CI.",
        "How should we profile the Rust service?",
        "My cat is called Miso.",
    ):
        await exchange(mclient, "s-1", text, "Sure: " + text.lower())
    await mclient.post(
        "/memory/memories",
        json={
            "user_id": "ana",
            "kind": "working",
            "ttl_s": 3600,
            "content": "Open file: parser.rs of the Rust crate",
        },
    )
    assert sum(bool(RUST.search(m["content"])) for m in await memories(mclient)) >= 6, "the attack's setup"

    forgot = await exchange(mclient, "s-1", "Forget that our project is written in Rust.")
    [op] = forgot["facts"]
    assert op["op"] == "delete" and "Rust" in op["replaced"] and op["also_forgotten"] >= 5

    left = await memories(mclient)
    assert not [m for m in left if RUST.search(m["content"])], left
    assert any("Miso" in m["content"] for m in left), "other memories stay"
    session = (await mclient.get("/memory/sessions/s-1", params={"recent": 20})).json()
    assert not RUST.search(session["summary"]) and not [
        m for m in session["recent"] if RUST.search(m["content"])
    ]

    task = await mclient.post(
        "/assign-task",
        json={
            "description": "Which language should the new module of our project use?",
            "metadata": {"user_id": "ana", "session_id": "s-2"},
            "force_execute": True,
        },
    )
    assert task.status_code == 200, task.text
    done = await wait_for_status(mclient, task.json()["task_id"], timeout=30)
    assert done["status"] == "succeeded", done
    prompt = "\n".join(m.content for m in quoting.calls[-1].messages)
    assert "Miso" in prompt, "the prompt carries the user's memories"
    assert not RUST.search(prompt), prompt


async def test_an_update_stops_the_old_value_being_recalled_from_episodes(mclient):
    await mclient.post("/memory/sessions", json={"user_id": "ana", "id": "s-1"})
    await exchange(mclient, "s-1", "I live in Lyon.", "Lyon is lovely.")
    await exchange(
        mclient, "s-1", "Can you recommend a bakery near my flat in Lyon?", "Try the one in Lyon's old town."
    )
    await mclient.post("/memory/sessions", json={"user_id": "ana", "id": "s-2"})
    moved = await exchange(mclient, "s-2", "I live in Porto now.", "Welcome to Porto.")
    [op] = moved["facts"]
    assert op["op"] == "update" and "Lyon" in op["replaced"] and op["also_forgotten"] >= 2

    left = await memories(mclient)
    assert not [m for m in left if "Lyon" in m["content"]], left
    context = (
        await mclient.post(
            "/memory/context",
            json={"user_id": "ana", "session_id": "s-3", "query": "Where do I live?", "budget_tokens": 600},
        )
    ).json()
    assert "Porto" in context["text"] and "Lyon" not in context["text"], context["text"]
    history = (await mclient.get("/memory/sessions/s-1", params={"recent": 10})).json()["recent"]
    assert any("Lyon" in m["content"] for m in history), "an update keeps the conversation as it was said"
