"""Replicas share one learned state and lose no update: real server processes on one database take 2,000
concurrent rewards; every replica, the saved snapshot and a sequential replay of the stored rewards agree."""

from __future__ import annotations

import asyncio
import json
import random

import httpx
import numpy as np
import pytest
from sqlalchemy import select
from support import free_port

from agent_lightning.core.db import Database
from agent_lightning.orchestrator.learning import PolicyLog, decode_part
from agent_lightning.orchestrator.policy import make_policy
from agent_lightning.orchestrator.tables import DecisionRow, RewardRow

pytestmark = pytest.mark.slow

DESCRIPTIONS = [
    "Build a React page with a form for the website",
    "Deploy the API with docker and kubernetes",
    "Audit the login for injection and xss vulnerabilities",
    "Write a README and a tutorial for the CLI",
    "Analyze the sales dataset with a regression",
    "Add tests for the parser and measure coverage",
    "Tune the slow SQL query and its index",
    "Say hello to the team",
]
# Learning whose statistics commute: no discounting, no drift resets, unit weights. A⁻¹ and b are then
# functions of the sums Σ x·xᵀ and Σ (reward − prior)·x, whatever order the rewards come in.
COMMUTING = {"epsilon": 0, "discount": 1.0, "noise_weighting": False, "drift_threshold": 1e12}
DEFAULT = {"epsilon": 0}
TASKS = 32
REWARDS = 2000


async def _finished(client: httpx.AsyncClient, task_id: str) -> dict:
    for _ in range(1500):
        task = (await client.get(f"/tasks/{task_id}")).json()
        if task["status"] in ("succeeded", "failed"):
            return task
        await asyncio.sleep(0.02)
    raise AssertionError(f"task {task_id} did not finish")


async def _drive(urls: list[str]) -> tuple[int, list[str]]:
    """Finished tasks on every replica, then REWARDS feedbacks spread over them at once; the rewards
    stored."""
    rng = random.Random(12)
    # Idle connections are dropped before uvicorn's 5 s keep-alive ends (a request sent on a connection the
    # server is closing fails with ReadError, and a feedback is not safe to send twice).
    limits = httpx.Limits(keepalive_expiry=1.0)
    clients = [httpx.AsyncClient(base_url=url, timeout=120, limits=limits) for url in urls]
    try:
        task_ids = []
        for n in range(TASKS):
            body = {"description": f"{DESCRIPTIONS[n % len(DESCRIPTIONS)]} (#{n})", "force_execute": True}
            response = await clients[n % len(clients)].post("/assign-task", json=body)
            assert response.status_code == 200, response.text
            task_ids.append(response.json()["task_id"])
        finished = [await _finished(clients[0], task_id) for task_id in task_ids]
        assert all(t["status"] == "succeeded" for t in finished)

        gate = asyncio.Semaphore(64)

        async def feedback(n: int) -> int:
            async with gate:
                task_id = rng.choice(task_ids)
                response = await clients[n % len(clients)].post(
                    f"/tasks/{task_id}/feedback", json={"score": rng.randint(0, 10)}
                )
                return response.status_code

        statuses = await asyncio.gather(*(feedback(n) for n in range(REWARDS)))
        assert statuses == [200] * REWARDS
        versions = [(await client.get("/policy")).json()["version"] for client in clients]
        previews = [
            (await client.post("/route", json={"description": DESCRIPTIONS[1]})).json() for client in clients
        ]
    finally:
        for client in clients:
            await client.aclose()
    assert versions == [TASKS + REWARDS] * len(urls), "every replica folded in every reward, once"
    assert all(p == previews[0] for p in previews), "every replica routes with the same state"
    return TASKS + REWARDS, task_ids


async def _stored_rewards(db: Database) -> list[tuple[int, str, str, float, float, dict]]:
    """Every stored reward with the decision it rewards, in the order of the policy's log."""
    async with db.session() as session:
        rows = (
            await session.execute(
                select(
                    RewardRow.seq,
                    RewardRow.policy,
                    RewardRow.agent_id,
                    RewardRow.reward,
                    RewardRow.cost,
                    DecisionRow.state,
                    DecisionRow.features,
                )
                .join(DecisionRow, DecisionRow.id == RewardRow.decision_id)
                .order_by(RewardRow.id)
            )
        ).all()
    return sorted(rows, key=lambda r: r[0] if r[0] is not None else -1)


def _replay(name: str, params: dict, rewards, order: list[int]):
    """A fresh policy taught the stored rewards one after the other, in `order`."""
    policy = make_policy(name, **params)
    for i in order:
        _, _, agent, reward, cost, state, features = rewards[i]
        policy.update(
            state=state,
            agent_id=agent,
            reward=reward,
            features={**features, "cost": cost} if cost else features,
        )
    return policy


def _assert_same(saved, reference, *, rtol: float) -> None:
    assert saved.updates == reference.updates
    if saved.name == "shared":  # every part, arrays and numbers alike
        names = reference.part_names()
        assert saved.part_names() == names
        mine, theirs = saved.dump_parts(names), reference.dump_parts(names)
        for name in names:
            assert mine[name].keys() == theirs[name].keys()
            for key, value in theirs[name].items():
                if isinstance(value, np.ndarray):
                    np.testing.assert_allclose(mine[name][key], value, rtol=rtol, atol=1e-12)
                elif isinstance(value, float | dict):
                    assert mine[name][key] == pytest.approx(value, rel=rtol), (name, key)
                else:
                    assert mine[name][key] == value, (name, key)
        return
    assert set(saved.models) == set(reference.models)
    for agent, (a_inv, b) in reference.models.items():
        np.testing.assert_allclose(saved.models[agent][0], a_inv, rtol=rtol, atol=1e-12)
        np.testing.assert_allclose(saved.models[agent][1], b, rtol=rtol, atol=1e-12)
        assert saved.pulls.get(agent) == reference.pulls.get(agent)
    assert saved.noise == pytest.approx(reference.noise, rel=rtol)


@pytest.mark.parametrize(
    ("replicas", "policy", "params", "shuffled"),
    [(2, "linucb", COMMUTING, True), (3, "linucb", DEFAULT, False), (2, "shared", DEFAULT, False)],
    ids=["two-replicas-commuting-any-order", "three-replicas-default-log-order", "two-replicas-shared-model"],
)
async def test_replicas_sharing_a_database_apply_every_reward_exactly_once(
    cluster, database_url, replicas, policy, params, shuffled
):
    env = {
        "ALP_POLICY": policy,
        "ALP_RATE_LIMIT": "",
        "ALP_RATE_LIMIT_WRITE": "",
        "ALP_POLICY_PARAMS": json.dumps(params),
        "ALP_VALIDATION_RESULT_CHECKS": "false",
    }
    urls = [
        cluster.start(f"replica{n}", "orchestrator,execution", free_port(), **env) for n in range(replicas)
    ]
    total, _ = await _drive(urls)
    for name in list(cluster.processes):
        cluster.stop(name)  # a graceful stop saves a snapshot of what each replica folded in

    db = Database(database_url)
    try:
        rewards = await _stored_rewards(db)
        snapshot = await PolicyLog(db).snapshot("default", policy)
    finally:
        await db.close()
    assert len(rewards) == total
    assert [r[0] for r in rewards] == list(range(1, total + 1)), (
        "each stored reward has its own place in the log"
    )
    assert {r[1] for r in rewards} == {policy}

    seq, parts = snapshot
    assert seq == total
    saved = make_policy(policy, **params)
    saved.load_parts({name: decode_part(data) for name, data in parts.items()})
    assert saved.updates == total, "updates = the number of rewards"

    order = list(range(total))
    if shuffled:
        random.Random(5).shuffle(order)
    reference = _replay(policy, params, rewards, order)
    _assert_same(saved, reference, rtol=1e-9 if shuffled else 1e-12)
