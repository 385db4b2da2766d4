"""The log of lessons and its snapshots: parts round-trip exactly for every policy, a snapshot rewrites only
the parts lessons changed, a state saved by an earlier release (whole-state JSON) is read and then
replaced by parts, and a restored policy folds the lessons stored after its snapshot."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from sqlalchemy import select

from agent_lightning.core.db import Database
from agent_lightning.orchestrator.learning import (
    LEGACY_JSON,
    LearnedPolicy,
    Lesson,
    PolicyLog,
    decode_part,
    encode_part,
)
from agent_lightning.orchestrator.policy import Candidate, RoutingContext, make_policy
from agent_lightning.orchestrator.tables import DecisionRow, PolicyHeadRow, PolicyPartRow, RewardRow, TaskRow

CANDIDATES = [
    Candidate("devops_engineer", 0.8),
    Candidate("qa_tester", 0.4),
    Candidate("general_assistant", 0.5),
]
TEXTS = [
    "Deploy the API with docker",
    "Write tests for the parser",
    "Say hello",
    "Fix the kubernetes pipeline",
]


def teach(policy, n: int, seed: int = 3) -> list[tuple[str, str, float, dict]]:
    """n lessons chosen and rewarded as routing would; returns them (state, agent, reward, features)."""
    rng = np.random.default_rng(seed)
    lessons = []
    for i in range(n):
        choice = policy.choose(RoutingContext(TEXTS[i % len(TEXTS)]), CANDIDATES)
        reward = float(rng.choice([0.0, 1.0, 0.7]))
        policy.update(state=choice.state, agent_id=choice.agent_id, reward=reward, features=choice.features)
        lessons.append((choice.state, choice.agent_id, reward, choice.features))
    return lessons


@pytest.mark.parametrize("name", ["linucb", "shared", "topics", "thompson", "seed-q", "capability"])
def test_parts_round_trip_exactly(name):
    policy = make_policy(name, seed=1) if name != "capability" else make_policy(name)
    teach(policy, 40)
    encoded = {part: encode_part(value) for part, value in policy.dump_parts(policy.part_names()).items()}
    restored = make_policy(name, seed=1) if name != "capability" else make_policy(name)
    restored.load_parts({part: decode_part(data) for part, data in encoded.items()})
    assert json.dumps(restored.state(), sort_keys=True) == json.dumps(policy.state(), sort_keys=True)
    probe = RoutingContext("Deploy the service with docker")
    assert restored.score(probe, CANDIDATES).scores == policy.score(probe, CANDIDATES).scores


async def _stored_lessons(db: Database, lessons, *, policy: str = "linucb", first: int = 1) -> list[Lesson]:
    """Store lessons as the orchestrator does (a task, its decision, a reward with its place in the log)."""
    log, stored = PolicyLog(db), []
    for n, (state, agent, reward, features) in enumerate(lessons, start=first):
        async with db.session() as session:
            session.add(TaskRow(id=f"t{n}", description="x", status="succeeded"))
            await session.flush()
            decision = DecisionRow(
                task_id=f"t{n}",
                policy=policy,
                policy_version=0,
                state=state,
                features=features,
                candidates=[],
                chosen_agent=agent,
                probability=1.0,
                confidence=0.5,
            )
            session.add(decision)
            await session.flush()
            seq = await log.take_place(session, "default", policy)
            session.add(
                RewardRow(
                    task_id=f"t{n}",
                    decision_id=decision.id,
                    agent_id=agent,
                    source="outcome",
                    reward=reward,
                    policy=policy,
                    seq=seq,
                )
            )
        stored.append(
            Lesson.of(
                policy=policy,
                seq=seq,
                task_id=f"t{n}",
                agent_id=agent,
                reward=reward,
                cost=0.0,
                state=state,
                features=features,
            )
        )
    return stored


async def _part_places(db: Database) -> dict[str, int]:
    async with db.session() as session:
        return dict((await session.execute(select(PolicyPartRow.part, PolicyPartRow.seq))).all())


async def test_a_snapshot_rewrites_only_the_parts_lessons_changed(database_url):
    db = Database(database_url)
    await db.upgrade()
    try:
        teacher = make_policy("linucb", seed=2)
        lessons = teach(teacher, 12)
        learned = LearnedPolicy(PolicyLog(db), "default", make_policy("linucb", seed=2), snapshot_every=6)
        for lesson in await _stored_lessons(db, lessons):
            learned.offer(lesson)
            await learned.sync(until=lesson.seq)
        await learned.flush()
        places = await _part_places(db)
        assert places[""] == 12 and learned.policy.updates == 12

        devops_only = [
            lesson for lesson in teach(make_policy("linucb", seed=2), 30) if lesson[1] == "devops_engineer"
        ][:3]
        for lesson in await _stored_lessons(db, devops_only, first=13):
            learned.offer(lesson)
            await learned.sync(until=lesson.seq)
        await learned.flush()
        after = await _part_places(db)
        assert after[""] == after["arm/devops_engineer"] == 15
        assert {part: seq for part, seq in after.items() if seq != 15} == {
            p: s for p, s in places.items() if p not in ("", "arm/devops_engineer")
        }

        restored = LearnedPolicy(PolicyLog(db), "default", make_policy("linucb", seed=2))
        await restored.restore()
        assert restored.seq == 15 and json.dumps(restored.policy.state()) == json.dumps(
            learned.policy.state()
        )
    finally:
        await db.close()


async def test_a_whole_state_of_an_earlier_release_is_read_then_replaced_by_parts(database_url):
    db = Database(database_url)
    await db.upgrade()
    try:
        old = make_policy("thompson", seed=4)
        teach(old, 9)
        async with db.session() as session:  # what migration 0011 makes of a policy_state row at version 9
            session.add(
                PolicyPartRow(
                    tenant_id="default",
                    policy="thompson",
                    part="",
                    seq=9,
                    data=LEGACY_JSON + json.dumps(old.state()).encode(),
                )
            )
            session.add(PolicyHeadRow(tenant_id="default", policy="thompson", seq=9))
        later = teach(make_policy("thompson", seed=6), 2)
        assert [s.seq for s in await _stored_lessons(db, later, policy="thompson", first=10)] == [10, 11]
        learned = LearnedPolicy(PolicyLog(db), "default", make_policy("thompson", seed=4))
        await learned.restore()
        for state, agent, reward, features in later:
            old.update(state=state, agent_id=agent, reward=reward, features=features)
        assert learned.seq == 11 and json.dumps(learned.policy.state(), sort_keys=True) == json.dumps(
            old.state(), sort_keys=True
        )
        await learned.flush()
        async with db.session() as session:
            rows = dict((await session.execute(select(PolicyPartRow.part, PolicyPartRow.data))).all())
        assert rows[""][:1] != LEGACY_JSON and len(rows) > 1, "replaced by parts"
        again = LearnedPolicy(PolicyLog(db), "default", make_policy("thompson", seed=4))
        await again.restore()
        assert json.dumps(again.policy.state(), sort_keys=True) == json.dumps(old.state(), sort_keys=True)
    finally:
        await db.close()


async def test_a_restored_policy_folds_the_lessons_after_its_snapshot_in_order(database_url):
    db = Database(database_url)
    await db.upgrade()
    try:
        lessons = teach(make_policy("linucb", seed=5), 20)
        first = LearnedPolicy(PolicyLog(db), "default", make_policy("linucb", seed=5), snapshot_every=1000)
        for lesson in await _stored_lessons(db, lessons[:8]):
            first.offer(lesson)
            await first.sync(until=lesson.seq)
        await first.flush()
        await _stored_lessons(db, lessons[8:], first=9)  # stored by "another replica"
        second = LearnedPolicy(PolicyLog(db), "default", make_policy("linucb", seed=5))
        await second.restore()
        await first.sync()
        reference = make_policy("linucb", seed=5)
        for state, agent, reward, features in lessons:
            reference.update(state=state, agent_id=agent, reward=reward, features=features)
        for policy in (first.policy, second.policy):
            assert policy.updates == 20
            for agent, (a_inv, b) in reference.models.items():
                np.testing.assert_array_equal(policy.models[agent][0], a_inv)
                np.testing.assert_array_equal(policy.models[agent][1], b)
    finally:
        await db.close()


@pytest.mark.parametrize("newer_first", [False, True])
async def test_two_first_snapshots_at_once_the_newer_wins(database_url, newer_first):
    """Two saves of a policy nobody has saved yet, at the same moment (a process's background snapshot and
    its flush, or two replicas): the newer place is stored whichever commits first, the older is refused.
    On PostgreSQL both used to insert the first row and the loser got an IntegrityError, refused even
    when it was the newer."""
    db = Database(database_url)
    await db.upgrade()
    try:
        log = PolicyLog(db)
        older = {"": b"\x01older", "arm/qa_tester": b"\x01qa"}
        newer = {"": b"\x01newer", "arm/devops_engineer": b"\x01devops"}
        saves = [log.save("default", "linucb", 6, older), log.save("default", "linucb", 12, newer)]
        if newer_first:
            saves.reverse()
        results = await asyncio.gather(*saves)
        saved = dict(zip([12, 6] if newer_first else [6, 12], results, strict=True))
        assert saved[12] is True
        seq, parts = await log.snapshot("default", "linucb")
        assert seq == 12 and parts[""] == b"\x01newer" and parts["arm/devops_engineer"] == b"\x01devops"
        if not saved[6]:
            assert "arm/qa_tester" not in parts  # a refused save writes none of its parts
    finally:
        await db.close()
