"""Facts are read from what the user says in the third person, questions are matched in the facts' own
person, and the context builder spends what the nearest memories leave of its budget on the user's facts."""

from __future__ import annotations

from agent_lightning.memory import facts


def test_facts_keep_abbreviations_drop_openers_and_speak_of_the_user():
    assert facts.extract("My supervisor Dr. Huber wants the methods chapter first.") == [
        ("The user's supervisor Dr. Huber wants the methods chapter first.", False)
    ]
    assert facts.extract("Back on Harbor. Quick update: we migrated from MySQL to PostgreSQL last week.") == [
        ("The user's team migrated from MySQL to PostgreSQL last week.", False)
    ]
    assert facts.extract("Yes, we created one test account per shard.") == [
        ("The user's team created one test account per shard.", False)
    ]
    assert facts.extract("I'm a freelance illustrator and I'm trying to organise my week.") == [
        ("The user is a freelance illustrator and they're trying to organise their week.", False)
    ]
    assert facts.extract("I'll go there Monday to Wednesday.") == [
        ("The user will go there Monday to Wednesday.", False)
    ]
    assert facts.extract("I run the platform team. We use Django and our database is MySQL.") == [
        ("The user runs the platform team.", False),
        ("The user's team uses Django and their database is MySQL.", False),
    ]
    assert facts.extract("I found a coworking space near home.") == [
        ("The user found a coworking space near home.", False)
    ]
    assert facts.extract("Forget that I live in Porto.") == [("The user lives in Porto.", True)]
    assert facts.extract("What database do I use?") == []


def test_questions_are_put_in_the_facts_person():
    assert facts.as_facts_speak("What am I allergic to?") == "What is the user allergic to?"
    assert facts.as_facts_speak("What CI are we using?") == "What CI is the user's team using?"
    assert facts.as_facts_speak("Where do I work on Mondays?") == "Where does the user work on Mondays?"
    assert facts.as_facts_speak("Who is my supervisor?") == "Who is the user's supervisor?"
    assert facts.as_facts_speak("Summarise the US market") == "Summarise the US market"


async def exchange(client, session_id: str, user: str, assistant: str = "Noted.") -> None:
    response = await client.post(
        "/memory/exchanges",
        json={"session_id": session_id, "user_id": "flo", "user": user, "assistant": assistant},
    )
    assert response.status_code == 200, response.text


async def test_a_first_person_question_finds_the_third_person_fact(mclient):
    await mclient.post("/memory/sessions", json={"user_id": "flo", "id": "f-1"})
    await exchange(mclient, "f-1", "I'm allergic to cats, so I can't work from my friend's studio anymore.")
    found = (
        await mclient.post(
            "/memory/memories/search",
            json={"user_id": "flo", "query": "What am I allergic to?", "kinds": ["semantic"]},
        )
    ).json()
    assert found and "allergic to cats" in found[0]["memory"]["content"] and found[0]["similarity"] >= 0.3


async def test_the_builder_fills_its_budget_with_the_users_facts(mclient, settings):
    await mclient.post("/memory/sessions", json={"user_id": "flo", "id": "f-2"})
    said = [
        "My dog is called Pixel.",
        "I live in Ghent.",
        "Our team ships on Fridays.",
        "My editor is Helix.",
        "I prefer tea over coffee.",
        "My sister Ines is a pilot.",
    ]
    for sentence in said:
        await exchange(mclient, "f-2", sentence)
    semantic = (await mclient.get("/memory/memories", params={"user_id": "flo", "kind": "semantic"})).json()
    assert len(semantic) == len(said)
    ask = {"user_id": "flo", "session_id": "f-3", "query": "Any plans for the weekend?"}
    context = (await mclient.post("/memory/context", json={**ask, "budget_tokens": 800})).json()
    kinds = [r["memory"]["kind"] for r in context["memories"]]
    assert kinds.count("semantic") == len(said), "every fact fits the budget, nearest first after the top k"
    assert len(context["memories"]) > settings.memory_recall_k
    assert "Pixel" in context["text"] and context["tokens"] <= 800
    tight = (
        await mclient.post("/memory/context", json={**ask, "session_id": "f-4", "budget_tokens": 40})
    ).json()
    assert 0 < len(tight["memories"]) < len(context["memories"]) and tight["tokens"] <= 40
