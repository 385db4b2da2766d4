"""Capability matching and the seed Q-learning policy, without HTTP."""

from __future__ import annotations

from datetime import UTC, datetime

from agent_lightning.agents.fleet import DEFAULT_FLEET
from agent_lightning.agents.schemas import Agent
from agent_lightning.orchestrator.matching import capability_score, matched
from agent_lightning.orchestrator.policy import Candidate, RoutingContext, SeedQPolicy, task_state

NOW = datetime.now(UTC)
FLEET = {a.id: Agent(**a.model_dump(), version=1, created_at=NOW, updated_at=NOW) for a in DEFAULT_FLEET}


def test_keywords_match_on_word_boundaries_once_each():
    assert matched(["ci", "cd"], "a special decision") == []
    assert matched(["ci", "cd"], "set up CI/CD") == ["ci", "cd"]
    assert matched(["machine learning"], "Machine learning on data") == ["machine learning"]
    assert capability_score(FLEET["devops_engineer"], "deploy deploy deploy").hits == ["deploy"]


def test_capability_score_rewards_hits_and_penalises_weak_keywords():
    devops = FLEET["devops_engineer"]
    none = capability_score(devops, "write a poem").score
    one = capability_score(devops, "deploy the app").score
    four = capability_score(devops, "deploy docker kubernetes pipeline").score
    assert none < one < four <= devops.base_confidence
    weak = capability_score(devops, "deploy the frontend ui").score
    assert weak < one
    assert capability_score(FLEET["general_assistant"], "anything at all").score == 0.55


def test_task_state_buckets():
    assert task_state("Deploy to kubernetes") == "deployment_task"
    assert task_state("Fix XSS vulnerability") == "security_task"
    assert task_state("Tell me a joke") == "general_task"


def _candidates(text: str) -> list[Candidate]:
    return [Candidate(a.id, capability_score(a, text).score) for a in FLEET.values()]


def test_choice_blends_capability_and_q_and_reports_its_probability():
    policy = SeedQPolicy(epsilon=0.0, seed=1)
    choice = policy.choose(
        RoutingContext("Deploy to kubernetes with docker"), _candidates("Deploy to kubernetes with docker")
    )
    assert choice.agent_id == "devops_engineer" and choice.probability == 1.0
    top = choice.scores[0]
    assert top["score"] == round(0.6 * top["capability"] + 0.4 * top["q"], 4)


def test_q_values_are_used_for_choosing_and_learned_from_rewards():
    text = "Deploy to kubernetes"
    policy = SeedQPolicy(epsilon=0.0, alpha=0.5, seed=1)
    assert policy.choose(RoutingContext(text), _candidates(text)).agent_id == "devops_engineer"
    for _ in range(6):  # devops keeps failing here, the generalist keeps succeeding
        policy.update(state="deployment_task", agent_id="devops_engineer", reward=0.0, features={})
        policy.update(state="deployment_task", agent_id="general_assistant", reward=1.0, features={})
    assert policy.choose(RoutingContext(text), _candidates(text)).agent_id == "general_assistant"
    assert policy.version == 12


def test_exploration_probability_and_reproducibility():
    text = "Deploy to kubernetes"
    a = SeedQPolicy(epsilon=0.5, seed=3)
    b = SeedQPolicy(epsilon=0.5, seed=3)
    choices_a = [a.choose(RoutingContext(text), _candidates(text)) for _ in range(50)]
    choices_b = [b.choose(RoutingContext(text), _candidates(text)) for _ in range(50)]
    assert [c.agent_id for c in choices_a] == [c.agent_id for c in choices_b]
    n = len(FLEET)
    for c in choices_a:
        expected = 0.5 + 0.5 / n if c.agent_id == "devops_engineer" else 0.5 / n
        assert abs(c.probability - expected) < 1e-6
    assert len({c.agent_id for c in choices_a}) > 1, "epsilon explores"


def test_state_round_trips():
    policy = SeedQPolicy()
    policy.update(state="general_task", agent_id="qa_tester", reward=1.0, features={})
    restored = SeedQPolicy()
    restored.load(policy.state())
    assert restored.q == policy.q and restored.version == policy.version == 1


def test_gamma_applies_when_a_task_continues_another():
    policy = SeedQPolicy(alpha=1.0, gamma=0.5)
    policy.update(
        state="general_task", agent_id="qa_tester", reward=0.2, features={"next_state": "testing_task"}
    )
    assert policy.q_value("general_task", "qa_tester") == 0.2 + 0.5 * 0.7
