"""The topic policy (`topics`) on small generated worlds: the topics it learns from the words of every task
are the worlds' categories, it learns an unseen fleet faster than per-agent models, a better newcomer is
tried and adopted while a worse one is dropped, its state round-trips through parts, and its logged
probabilities are the real chances of its choices (never 0)."""

from __future__ import annotations

import collections
import json

import numpy as np
import pytest

from agent_lightning.bench import routing_family as family
from agent_lightning.orchestrator.learning import decode_part, encode_part
from agent_lightning.orchestrator.policy import Candidate, RoutingContext, make_policy
from agent_lightning.orchestrator.topics import TopicPolicy, thompson_probabilities, tokens

COLD_START = 600  # tasks before any event of a 5,000-task world: learning the fleet from scratch


def _cold_world(seed: int, n: int = COLD_START) -> family.World:
    w = family.generate(seed)
    assert min(e.at for e in w.events) > n
    w.tasks = w.tasks[:n]
    return w


def test_the_topics_learned_from_the_words_are_the_categories():
    w = _cold_world(2001)
    policy = TopicPolicy(seed=1)
    family.run_world(policy, w)
    later = family.generate(2001).tasks[COLD_START : COLD_START + 400]  # tasks it has not seen
    by_topic: dict[int, collections.Counter] = collections.defaultdict(collections.Counter)
    for task in later:
        by_topic[int(np.argmax(policy.posterior(tokens(task.description))))][task.category] += 1
    purity = sum(max(c.values()) for c in by_topic.values()) / len(later)
    assert purity > 0.85, (purity, dict(by_topic))  # 0.93 when written; the categories' keywords are unknown
    assert len(by_topic) >= len(w.categories) - 1


def test_it_learns_an_unseen_fleet_faster_than_per_agent_models():
    topics, per_agent = 0.0, 0.0
    for seed in (2001, 2002, 2003):  # neither tuning nor held-out worlds
        w = _cold_world(seed)
        topics += family.run_world(make_policy("topics", seed=1), w).regret[-1]
        per_agent += family.run_world(make_policy("linucb", seed=1), w).regret[-1]
    assert topics < 0.85 * per_agent, (topics, per_agent)  # 199 against 307 (226 with Thompson sampling)


def test_a_better_newcomer_is_adopted_and_a_worse_one_dropped():
    w = family.generate(2002, 2500)
    runs = [family.run_world(make_policy("topics", seed=seed), w) for seed in (1, 2, 3)]
    better = [r.newcomer_share for r in runs if r.newcomer_share is not None]
    worse = [r.worse_share for r in runs if r.worse_share is not None]
    assert len(better) == len(worse) == 3
    # Its share of its category 500-1000 tasks after joining (0.99, 0.99, 0.98; 0.93, 0.41, 0.94 with
    # Thompson sampling); the worse newcomer's share of all tasks then (0.006, 0.008, 0.008; with Thompson
    # sampling 0.016, 0.006, 0.02).
    assert sum(better) / 3 >= 0.7 and max(better) >= 0.9, better
    assert max(worse) <= 0.03, worse


def test_on_todays_world_it_is_no_worse_than_linucb():
    # The platform's own fleet, keyword-rich descriptions and good Q priors, where three of the six
    # categories' best agents are not the ones the prior names; stream seeds neither tuned nor reported on.
    # The earlier `topics` (a prior worth 2 observations, no doubt about it, Thompson sampling: `doubt=0,
    # bonus=None`) lost here, 186 against 162; 151 when written.
    topics, per_agent = 0.0, 0.0
    for seed in (11, 12, 13):
        w = family.today_world(seed, 2500)
        topics += family.run_world(make_policy("topics", seed=1), w).regret[-1] / 3
        per_agent += family.run_world(make_policy("linucb", seed=1), w).regret[-1] / 3
    assert topics <= 1.05 * per_agent, (topics, per_agent)


def test_a_confident_prior_that_the_rewards_contradict_gives_way():
    policy = TopicPolicy()
    prior = np.asarray([[0.23]])  # an agent whose declared expertise misses what it does best
    sums, counts = np.asarray([[2.7]]), np.asarray([[3.0]])  # three rewards averaging 0.9
    mean, variance = policy._arm_posterior(prior, counts, sums)
    assert mean[0, 0] > 0.75, mean  # a prior worth 2 observations, held without doubt, said (0.46+2.7)/5
    mean, _ = policy._arm_posterior(np.asarray([[0.8]]), counts, sums)
    assert mean[0, 0] > 0.85, mean  # a prior the rewards confirm stays in force
    mean, variance = policy._arm_posterior(prior, np.zeros((1, 1)), np.zeros((1, 1)))
    assert 0.23 < mean[0, 0] < 0.5 and variance[0, 0] > policy.noise**2 / policy.prior_weight
    certain = TopicPolicy(doubt=0.0)._arm_posterior(prior, counts, sums)[0]
    assert abs(certain[0, 0] - (2 * 0.23 + 2.7) / 5) < 1e-9


def _taught(n: int, seed: int = 1, bonus: float | None = 1.5) -> tuple[TopicPolicy, family.World]:
    policy = TopicPolicy(seed=seed, bonus=bonus)
    w = _cold_world(2002, n)
    family.run_world(policy, w)
    return policy, w


def test_parts_and_json_round_trip_exactly_and_a_refit_touches_every_agent():
    policy, w = _taught(100)
    encoded = {name: encode_part(part) for name, part in policy.dump_parts(policy.part_names()).items()}
    restored = TopicPolicy(seed=1)
    restored.load_parts({name: decode_part(data) for name, data in encoded.items()})
    again = TopicPolicy(seed=1)
    again.load(json.loads(json.dumps(policy.state())))
    task = family.generate(2002).tasks[150]
    context = RoutingContext(task.description)
    candidates = [Candidate(a, 0.5) for a in w.skill]
    for other in (restored, again):
        assert json.dumps(other.state(), sort_keys=True) == json.dumps(policy.state(), sort_keys=True)
        assert other.score(context, candidates).scores == policy.score(context, candidates).scores
    # Folding the same lessons into the original and the restored copy keeps them equal, refits included.
    touched: set[str] = set()
    for lesson in range(policy.refit_every - policy.updates % policy.refit_every):
        choice = policy.choose(context, candidates)
        for p in (policy, restored):
            p.update(
                state=choice.state,
                agent_id=choice.agent_id,
                reward=float(lesson % 2),
                features=choice.features,
            )
        touched = set(policy.touched(state=choice.state, agent_id=choice.agent_id))
    assert policy.updates % policy.refit_every == 0
    assert touched == {"", *(f"arm/{a}" for a in policy.counts)}, "a refit changes every agent's part"
    assert json.dumps(restored.state(), sort_keys=True) == json.dumps(policy.state(), sort_keys=True)
    choice = policy.choose(context, candidates)
    policy.update(state=choice.state, agent_id=choice.agent_id, reward=1.0, features=choice.features)
    assert policy.touched(state=choice.state, agent_id=choice.agent_id) == ("", f"arm/{choice.agent_id}")


def test_lessons_of_another_policy_are_ignored():
    policy = TopicPolicy(seed=1)
    policy.update(state="general_task", agent_id="a", reward=1.0, features={"x": [0.0] * 3, "prior": 0.5})
    assert policy.updates == 0


@pytest.mark.parametrize("bonus", [1.5, None], ids=["upper-bound", "thompson"])
def test_the_logged_probability_is_the_real_chance_and_never_zero(bonus: float | None):
    means, sds = np.asarray([0.5, 0.6, 0.55, 0.1]), np.asarray([0.1, 0.05, 0.2, 0.01])
    exact = thompson_probabilities(means, sds)
    draws = np.random.default_rng(0).normal(means, sds, size=(200_000, 4)).argmax(axis=1)
    assert np.allclose(exact, np.bincount(draws, minlength=4) / len(draws), atol=0.005)
    policy, w = _taught(300, seed=4, bonus=bonus)
    task = family.generate(2002).tasks[400]
    context = RoutingContext(task.description)
    candidates = [Candidate(a, 0.5) for a in w.skill]
    chances = policy.probabilities(context, candidates)
    assert abs(sum(chances.values()) - 1) < 1e-9 and min(chances.values()) > 0
    picks = collections.Counter(policy.choose(context, candidates).agent_id for _ in range(3000))
    for agent, p in chances.items():
        assert abs(picks[agent] / 3000 - p) < 0.03, (agent, picks[agent] / 3000, p)
    assert all(policy.choose(context, candidates).probability > 0 for _ in range(50))


async def test_a_fresh_deployment_holds_no_everyday_task_for_review(client):
    """Before any reward the confidence a choice reports is the seed's blend, as linucb's is: the doubt that
    makes `topics` try low-ranked agents is no reason to hold a general task. (It reported 0.7·prior + 0.15:
    0.58 for "Say hi", below the review threshold of 0.6, so 8 of 12 everyday tasks of a new deployment
    waited for a person.)"""
    assert (await client.get("/policy")).json()["name"] == "topics"
    for text in ("Say hi", "Write a haiku about the sea", "What is the capital of France?", "Plan a trip"):
        answer = (await client.post("/assign-task", json={"description": text})).json()
        assert answer["status"] == "assigned" and answer["confidence"] >= 0.6, answer
