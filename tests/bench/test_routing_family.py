"""The routing benchmark family: generated worlds (reproducible, with every kind of event), the accounting of
regret against the oracle, and `alp bench routing --family` as a real command."""

from __future__ import annotations

from platform_process import alp_cli

from agent_lightning.bench import routing_family as family
from agent_lightning.orchestrator.matching import matched
from agent_lightning.orchestrator.policy import STATE_KEYWORDS, Choice, make_policy


def test_a_world_is_reproducible_from_its_seed_and_differs_between_seeds():
    a, b, c = family.generate(7, 1000), family.generate(7, 1000), family.generate(8, 1000)
    assert [t.description for t in a.tasks] == [t.description for t in b.tasks]
    assert a.skill == b.skill and a.events == b.events
    assert set(a.agents) != set(c.agents) and [t.description for t in a.tasks] != [
        t.description for t in c.tasks
    ]


def test_a_world_has_specialists_partial_keywords_two_category_tasks_and_every_event():
    for seed in family.HELDOUT_SEEDS:
        w = family.generate(seed)
        assert 5 <= len(w.categories) <= 8 and not set(w.agents) & set(STATE_KEYWORDS)
        for c in range(len(w.categories)):
            assert max(s[c] for s in w.skill.values()) >= 0.7, "every category has a specialist"
        kinds = {(e.kind, e.role) for e in w.events}
        assert {("drift", "degrade"), ("drift", "improve"), ("join", "better"), ("join", "worse")} <= kinds
        assert sum(e.kind == "drift" and e.role == "degrade" for e in w.events) == 2
        keywords = [k for words in STATE_KEYWORDS.values() for k in words]
        unmatched = sum(not matched(keywords, t.description) for t in w.tasks) / len(w.tasks)
        assert 0.05 < unmatched < 0.95, "the keyword buckets catch the words only partly"
        assert 0.2 < sum(t.secondary is not None for t in w.tasks) / len(w.tasks) < 0.4
        assert 0.2 < sum(t.binary for t in w.tasks) / len(w.tasks) < 0.8


class Oracle:
    """Knows the world: always the agent of the best expected reward (so its regret must be 0)."""

    name = "oracle"

    def __init__(self, w: family.World) -> None:
        self.w, self.t, self.present = w, 0, {a: list(s) for a, s in w.skill.items()}
        self.events = sorted(w.events, key=lambda e: e.at)

    def choose(self, context, candidates):
        while self.events and self.events[0].at <= self.t:
            family._apply(self.present, self.events.pop(0))
        task = self.w.tasks[self.t]
        self.t += 1
        best = max((c.agent_id for c in candidates), key=lambda a: family.quality(self.present[a], task))
        return Choice(best, 1.0, 1.0, "", [])

    def update(self, **_):
        pass


def test_regret_is_counted_against_the_agents_present():
    w = family.generate(1003, 1500)
    assert family.run_world(Oracle(w), w).regret[-1] == 0.0
    capability = family.run_world(make_policy("capability"), w)
    assert capability.regret[-1] > 50 and capability.regret == sorted(capability.regret)
    for reference in family.REFERENCES.values():  # told each task's category
        told = family.run_world(reference(w, seed=1), w)
        assert told.regret[-1] < 0.5 * capability.regret[-1], reference


def test_the_family_evaluates_every_policy_offline_on_the_logging_policys_decisions():
    summaries = family.run_family(
        ("seed-q", "capability", "topics", "category-ts"), (1001,), 1000, logger="topics"
    )
    by_name = {s.policy: s for s in summaries}
    assert by_name["topics"].min_probability is not None and by_name["topics"].min_probability > 0
    for name in ("seed-q", "capability", "topics"):
        s = by_name[name]
        assert len(s.doubly_robust) == len(s.ips) == len(s.window_regret) == 1
        assert 0 <= s.doubly_robust[0] <= 1 and s.window_regret[0] >= 0
    assert not by_name["category-ts"].doubly_robust, "a reference has no probabilities to evaluate"
    # The capability policy, which never learns, is estimated worse than the learned one (as it is online).
    assert by_name["topics"].doubly_robust[0] > by_name["capability"].doubly_robust[0]
    report = family.offline_report(summaries, "topics")
    assert "Kendall τ" in report and "of 1 worlds" in report
    assert (
        family.kendall_tau([1, 2, 3], [10, 20, 30]) == 1.0
        and family.kendall_tau([1, 2, 3], [3, 2, 1]) == -1.0
    )


def test_the_family_command_prints_mean_and_spread_over_worlds():
    done = alp_cli(
        "bench",
        "routing",
        "--family",
        "--worlds",
        "today,1001",
        "--tasks",
        "1000",
        "--policies",
        "capability",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 worlds" in done.stdout
    rows = [
        line for line in done.stdout.splitlines() if line.startswith("| seed-q") or line.startswith("| capa")
    ]
    assert len(rows) == 2 and all(" ± " in row for row in rows), done.stdout
    bad = alp_cli("bench", "routing", "--family", "--worlds", "some")
    assert bad.returncode == 2 and "--worlds" in bad.stderr
    unknown = alp_cli(
        "bench", "routing", "--policies", "linucb,category-ucb"
    )  # a reference of the family only
    assert unknown.returncode == 2 and "Unknown policy category-ucb" in unknown.stderr
    odd = alp_cli("bench", "routing", "--family", "--embeddings", "bogus")
    assert odd.returncode == 2 and "Unknown embeddings bogus" in odd.stderr
    short = alp_cli("bench", "routing", "--tasks", "1000")
    assert short.returncode == 2 and "at least 5000" in short.stderr
