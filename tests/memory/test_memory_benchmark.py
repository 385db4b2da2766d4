"""The memory benchmark's dialogue set is sound, and its context-building part works: replayed through the
real memory service (real embeddings, scripted chat model), the context builder puts the answer to a
question about an earlier session in front of the model where the last N turns do not."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
from embedded import with_embeddings
from scripted import ScriptedProvider

RUN = Path(__file__).resolve().parents[2] / "benchmarks" / "memory" / "run.py"


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("memory_benchmark", RUN)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench = _load_benchmark()
DIALOGUES = bench.load_dialogues()
LAST_N = 6


def _text(turns) -> str:
    return "\n".join(f"{user}\n{assistant}" for user, assistant in turns)


def _last_messages(dialogue: dict, n: int) -> str:
    messages = [m for session in dialogue["sessions"] for exchange in session for m in exchange]
    return "\n".join(messages[-n:])


def test_the_dialogue_set_is_large_varied_and_well_formed():
    assert len(DIALOGUES) >= 50
    assert len({d["id"] for d in DIALOGUES}) == len(DIALOGUES)
    assert len({d["user"] for d in DIALOGUES}) == len(DIALOGUES), "one person per dialogue"
    assert set(bench.AGENTS) >= {d["agent"] for d in DIALOGUES}
    for d in DIALOGUES:
        assert 2 <= len(d["sessions"]) <= 4, d["id"]
        assert all(len(session) >= 2 for session in d["sessions"]), d["id"]
        assert all(len(exchange) == 2 and all(exchange) for s in d["sessions"] for exchange in s), d["id"]
        assert 1 <= len(d["questions"]) <= 3, d["id"]


def test_every_answer_is_stated_in_the_dialogue_and_mostly_outside_the_last_turns():
    outside, total = 0, 0
    for d in DIALOGUES:
        conversation = _text(t for s in d["sessions"] for t in s)
        for q in d["questions"]:
            label = f"{d['id']}: {q['question']}"
            assert q["answer"] and q["accept"] and all(a == a.lower() and a.strip() for a in q["accept"]), (
                label
            )
            assert bench.contains(conversation, q["accept"]), f"{label}: no accepted answer in the dialogue"
            assert not bench.contains(q["question"], q["accept"]), (
                f"{label}: the question gives the answer away"
            )
            if q.get("outdated"):
                lowered = conversation.lower()
                first_new = min(
                    m.start()
                    for a in q["accept"]
                    for m in re.finditer(rf"(?<!\w){re.escape(a)}(?!\w)", lowered)
                )
                first_old = min(lowered.find(o) for o in q["outdated"] if o in lowered)
                assert first_old <= first_new, f"{label}: the outdated value should come first"
            total += 1
            outside += not bench.contains(_last_messages(d, LAST_N), q["accept"])
    assert total >= 150
    assert outside / total >= 0.9, f"only {outside}/{total} answers lie outside the last {LAST_N} messages"


def test_answers_match_whole_words_only():
    assert bench.contains("We moved to PostgreSQL.", ["postgresql"])
    assert bench.contains("Ana built it", ["ana"]) and not bench.contains("the analyzer", ["ana"])
    assert bench.contains("It is 3.12.", ["3.12"]) and not bench.contains("160 rows", ["16"])


@pytest.mark.parametrize("dialogue_id", ["d09", "d12"])
async def test_the_builder_puts_the_answer_in_context_where_the_last_turns_do_not(settings, dialogue_id):
    dialogue = next(d for d in DIALOGUES if d["id"] == dialogue_id)
    platform = await bench.start_platform(
        settings, model_service=with_embeddings(settings, ScriptedProvider())
    )
    try:
        memory = platform.memory_service
        await bench.replay(memory, dialogue)
        session = await memory.get_session(bench.session_id(dialogue, 0))
        assert session.messages == 2 * len(dialogue["sessions"][0])
        assert await memory.list_memories(dialogue["user"], "semantic"), (
            "facts were learned from the first session"
        )
        for q in dialogue["questions"]:
            built = await bench.both_contexts(
                memory, dialogue, q["question"], last_n=LAST_N, budget=settings.memory_budget_tokens
            )
            baseline, _ = built["last-N baseline"]
            ours, _ = built["context builder"]
            assert len(baseline.turns) == LAST_N and not baseline.text
            assert not bench.contains(bench.context_text(baseline), q["accept"]), q["question"]
            assert bench.contains(bench.context_text(ours), q["accept"]), (
                q["question"],
                bench.context_text(ours),
            )
            assert ours.memories and ours.tokens <= settings.memory_budget_tokens
    finally:
        await platform.stop()
