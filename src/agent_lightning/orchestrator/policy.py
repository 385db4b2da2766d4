"""Routing policies: the `RoutingPolicy` interface and the seed's Q-learning policy.

A policy sees the task and the eligible candidates (each with its capability score), chooses one and
says with which probability it did (logged for offline evaluation). Rewards in [0, 1] come back through
`update`, with the decision they belong to, possibly long after the choice.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from agent_lightning.orchestrator.matching import matched


@dataclass(frozen=True)
class Candidate:
    agent_id: str
    capability: float


@dataclass(frozen=True)
class RoutingContext:
    description: str
    priority: int = 5
    metadata: dict[str, Any] = field(default_factory=dict)
    embedding: tuple[float, ...] | None = None  # of the description, when the model service gives one


@dataclass
class Choice:
    agent_id: str
    confidence: float
    probability: float
    state: str
    scores: list[dict[str, float | str]]
    features: dict[str, Any] = field(default_factory=dict)


GLOBAL_PART = ""
"""The name of the part that holds a policy's global numbers (update count, noise estimates, …)."""


def state_part(state: str) -> str:
    """The name of the part that holds what a policy learned about one task state (keyword bucket)."""
    return f"state/{state}"


class RoutingPolicy(Protocol):
    name: str

    @property
    def version(self) -> int:
        """Increases with every update, so a decision names the state it was made with."""
        ...

    def choose(self, context: RoutingContext, candidates: list[Candidate]) -> Choice: ...

    def score(self, context: RoutingContext, candidates: list[Candidate]) -> Choice:
        """The greedy choice without exploration (for previews and explicit assignment)."""
        ...

    def probabilities(self, context: RoutingContext, candidates: list[Candidate]) -> dict[str, float]:
        """How likely `choose` is to pick each candidate (for offline evaluation)."""
        ...

    def update(self, *, state: str, agent_id: str, reward: float, features: dict[str, Any]) -> None: ...

    def state(self) -> dict[str, Any]:
        """The whole learned state as JSON-able values (read by `GET /q-table`, written by earlier
        releases)."""
        ...

    def load(self, state: dict[str, Any]) -> None: ...

    # The learned state in parts, so that a reward rewrites only what it changed (orchestrator/learning.py).

    def touched(self, *, state: str, agent_id: str) -> tuple[str, ...]:
        """The parts an `update` with these arguments changes; `GLOBAL_PART` holds the policy-wide numbers."""
        ...

    def part_names(self) -> list[str]:
        """Every part the learned state has now."""
        ...

    def dump_parts(self, names: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Those parts, as dicts of JSON-able values and numpy arrays."""
        ...

    def load_parts(self, parts: dict[str, dict[str, Any]]) -> None:
        """Replace the learned state by these parts (absent parts: as before any reward)."""
        ...


def parts_state(policy: RoutingPolicy) -> dict[str, Any]:
    """A policy's whole state as JSON-able values: every part, its arrays as lists."""
    parts = policy.dump_parts(policy.part_names())
    return {
        "parts": {
            name: {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in part.items()}
            for name, part in parts.items()
        }
    }


# Keyword buckets of the seed policy: the task's state is the bucket with the most hits.
STATE_KEYWORDS: dict[str, list[str]] = {
    "web_development": [
        "website",
        "web",
        "html",
        "css",
        "javascript",
        "frontend",
        "backend",
        "react",
        "page",
        "api",
    ],
    "coding_task": ["code", "function", "python", "script", "class", "implement", "algorithm"],
    "data_analysis": [
        "data",
        "dataset",
        "statistics",
        "analysis",
        "analyze",
        "machine learning",
        "ml",
        "regression",
    ],
    "security_task": [
        "security",
        "vulnerability",
        "audit",
        "encryption",
        "authentication",
        "xss",
        "injection",
        "owasp",
    ],
    "deployment_task": [
        "deploy",
        "deployment",
        "docker",
        "kubernetes",
        "ci",
        "cd",
        "infrastructure",
        "pipeline",
    ],
    "testing_task": ["test", "tests", "testing", "qa", "bug", "regression", "coverage"],
    "documentation_task": ["document", "documentation", "readme", "guide", "tutorial", "docs"],
    "database_task": ["database", "sql", "query", "schema", "index", "postgresql", "migration"],
}
GENERAL_STATE = "general_task"

# Seeded priors: the natural specialist of each state starts ahead; everyone else at DEFAULT_Q.
Q_PRIORS: dict[str, dict[str, float]] = {
    "web_development": {"full_stack_developer": 0.7},
    "coding_task": {"full_stack_developer": 0.7},
    "data_analysis": {"data_scientist": 0.7},
    "security_task": {"security_expert": 0.7},
    "deployment_task": {"devops_engineer": 0.7},
    "testing_task": {"qa_tester": 0.7},
    "documentation_task": {"technical_writer": 0.7},
    "database_task": {"database_specialist": 0.7},
    GENERAL_STATE: {"general_assistant": 0.7},
}
DEFAULT_Q = 0.5


def bucket_shares(description: str) -> dict[str, float]:
    """Each keyword bucket's share of the description's keyword hits (no hit: all general), in bucket
    order."""
    hits = {state: len(matched(words, description)) for state, words in STATE_KEYWORDS.items()}
    total = sum(hits.values())
    return {s: h / total for s, h in hits.items() if h} if total else {GENERAL_STATE: 1.0}


def main_bucket(shares: dict[str, float]) -> str:
    """The bucket with the largest share; ties go to the first bucket listed."""
    return max(shares, key=shares.__getitem__)


def task_state(description: str) -> str:
    """The keyword bucket of a task; ties go to the first bucket listed."""
    return main_bucket(bucket_shares(description))


class SeedQPolicy:
    """The seed's policy, made to work: epsilon-greedy on 0.6·capability + 0.4·Q(state, agent).

    Each task is a one-step episode, so the Q-learning target is the reward itself; γ is kept for
    tasks that continue an earlier one (``metadata.next_state``), where the target adds γ·max Q(s').
    """

    name = "seed-q"
    CAPABILITY_WEIGHT = 0.6
    Q_WEIGHT = 0.4

    def __init__(
        self, *, alpha: float = 0.1, gamma: float = 0.95, epsilon: float = 0.1, seed: int | None = None
    ):
        self.alpha = alpha
        self.gamma = gamma
        self.epsilon = epsilon
        self.q: dict[str, dict[str, float]] = {s: dict(v) for s, v in Q_PRIORS.items()}
        self.updates = 0
        self._rng = random.Random(seed)

    @property
    def version(self) -> int:
        return self.updates

    def q_value(self, state: str, agent_id: str) -> float:
        return self.q.get(state, {}).get(agent_id, DEFAULT_Q)

    def score(self, context: RoutingContext, candidates: list[Candidate]) -> Choice:
        state = task_state(context.description)
        scores = []
        for c in candidates:
            q = self.q_value(state, c.agent_id)
            blended = self.CAPABILITY_WEIGHT * c.capability + self.Q_WEIGHT * q
            scores.append(
                {
                    "agent_id": c.agent_id,
                    "capability": c.capability,
                    "q": round(q, 4),
                    "score": round(blended, 4),
                }
            )
        scores.sort(key=lambda s: (-s["score"], s["agent_id"]))
        best = scores[0]
        return Choice(
            agent_id=best["agent_id"], confidence=best["score"], probability=1.0, state=state, scores=scores
        )

    def choose(self, context: RoutingContext, candidates: list[Candidate]) -> Choice:
        choice = self.score(context, candidates)
        n = len(choice.scores)
        greedy = choice.agent_id
        if n > 1 and self._rng.random() < self.epsilon:
            pick = self._rng.choice(choice.scores)
            choice.agent_id, choice.confidence = pick["agent_id"], pick["score"]
        explore_share = self.epsilon / n if n > 1 else 0.0
        choice.probability = round(
            (1 - self.epsilon if n > 1 else 1.0) * (choice.agent_id == greedy) + explore_share, 6
        )
        return choice

    def probabilities(self, context: RoutingContext, candidates: list[Candidate]) -> dict[str, float]:
        greedy = self.score(context, candidates).agent_id
        n = len(candidates)
        if n == 1:
            return {greedy: 1.0}
        return {
            c.agent_id: (1 - self.epsilon) * (c.agent_id == greedy) + self.epsilon / n for c in candidates
        }

    def update(self, *, state: str, agent_id: str, reward: float, features: dict[str, Any]) -> None:
        target = reward
        next_state = features.get("next_state")
        if next_state:
            target += self.gamma * max(self.q.get(next_state, {}).values(), default=DEFAULT_Q)
        current = self.q_value(state, agent_id)
        self.q.setdefault(state, {})[agent_id] = current + self.alpha * (target - current)
        self.updates += 1

    def state(self) -> dict[str, Any]:
        return {"q": self.q, "updates": self.updates}

    def load(self, state: dict[str, Any]) -> None:
        self.q = {s: dict(v) for s, v in state.get("q", {}).items()}
        self.updates = int(state.get("updates", 0))

    def touched(self, *, state: str, agent_id: str) -> tuple[str, ...]:
        return GLOBAL_PART, state_part(state)

    def part_names(self) -> list[str]:
        return [GLOBAL_PART, *map(state_part, self.q)]

    def dump_parts(self, names: Iterable[str]) -> dict[str, dict[str, Any]]:
        by_part = {state_part(s): s for s in self.q}
        parts: dict[str, dict[str, Any]] = {}
        for name in names:
            if name == GLOBAL_PART:
                parts[name] = {"updates": self.updates}
            elif name in by_part:
                parts[name] = {"state": by_part[name], "q": dict(self.q[by_part[name]])}
        return parts

    def load_parts(self, parts: dict[str, dict[str, Any]]) -> None:
        self.q = {s: dict(v) for s, v in Q_PRIORS.items()}
        self.updates = int(parts.get(GLOBAL_PART, {}).get("updates", 0))
        for name, part in parts.items():
            if name != GLOBAL_PART:
                self.q[part["state"]] = {a: float(v) for a, v in part["q"].items()}


def make_policy(name: str, **params: Any) -> RoutingPolicy:
    """Build a policy by name: ``seed-q``, ``capability``, ``thompson``, ``linucb``, ``shared`` or
    ``topics``."""
    from agent_lightning.orchestrator import bandits, topics

    policies = {
        SeedQPolicy.name: SeedQPolicy,
        bandits.CapabilityPolicy.name: bandits.CapabilityPolicy,
        bandits.ThompsonPolicy.name: bandits.ThompsonPolicy,
        bandits.LinUCBPolicy.name: bandits.LinUCBPolicy,
        bandits.SharedPolicy.name: bandits.SharedPolicy,
        topics.TopicPolicy.name: topics.TopicPolicy,
    }
    if name not in policies:
        raise ValueError(f"Unknown routing policy '{name}'. Choose one of: {', '.join(policies)}.")
    return policies[name](**params)


POLICY_NAMES = ("seed-q", "capability", "thompson", "linucb", "shared", "topics")


def uses_embeddings(policy: RoutingPolicy) -> bool:
    """Whether the policy reads `RoutingContext.embedding` (so it is worth computing)."""
    return bool(getattr(policy, "uses_embeddings", False))


def configured_params(settings: Any) -> dict[str, Any]:
    """Constructor parameters of `settings.policy` from the settings (``ALP_POLICY_PARAMS`` last)."""
    if settings.policy == SeedQPolicy.name:
        params = {"alpha": settings.q_alpha, "gamma": settings.q_gamma, "epsilon": settings.q_epsilon}
    elif settings.policy == "capability":
        params = {}
    else:
        params = {"cost_lambda": settings.policy_cost_lambda} if settings.policy_cost_lambda else {}
    if settings.policy != "capability" and settings.policy_seed is not None:
        params["seed"] = settings.policy_seed
    return {**params, **settings.policy_params}
