"""A recorded turn with an empty side was stored and then made its session and its user's export a 500 on
every read (a message must not be empty): it is refused with 422, and the conversation stays readable."""

from __future__ import annotations


async def test_an_exchange_with_an_empty_turn_is_refused_and_the_session_stays_readable(mclient):
    session = (
        await mclient.post("/memory/sessions", json={"user_id": "ana", "agent_id": "general_assistant"})
    ).json()
    turn = {"session_id": session["id"], "user_id": "ana", "agent_id": "general_assistant"}
    for user, assistant in (("", "Hello."), ("Hi", "")):
        response = await mclient.post(
            "/memory/exchanges", json={**turn, "user": user, "assistant": assistant}
        )
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "validation_error"

    response = await mclient.post(
        "/memory/exchanges", json={**turn, "user": "I live in Lyon.", "assistant": "Noted."}
    )
    assert response.status_code == 200, response.text
    detail = await mclient.get(f"/memory/sessions/{session['id']}")
    assert detail.status_code == 200, detail.text
    assert [m["content"] for m in detail.json()["recent"]] == ["I live in Lyon.", "Noted."]
    export = await mclient.get("/memory/users/ana/export")
    assert export.status_code == 200, export.text
    assert [m["content"] for m in export.json()["sessions"][0]["messages"]] == ["I live in Lyon.", "Noted."]
