"""Offline evaluation: what another routing policy would have earned on the logged decisions.

Each logged decision says which agent the logging policy chose and with which probability μ. For a
target policy π that gives each candidate a probability π(a | x):

- inverse propensity scoring: V̂ = mean( r · π(a|x) / μ ), unbiased when μ > 0 wherever π > 0;
- doubly robust: V̂ = mean( Σₐ π(a|x)·q̂(x, a) + π(aᵢ|x)/μ · (r − q̂(x, aᵢ)) ), where q̂ is a reward
  model fitted on the same log (mean reward per task state × agent, shrunk towards the agent's mean
  and the overall mean); lower variance, and unbiased if either q̂ or μ is right.

Intervals are normal approximations (±1.96 standard errors of the per-decision terms).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from agent_lightning.orchestrator.policy import Candidate, RoutingContext, RoutingPolicy

Z_95 = 1.96
SHRINK = 2.0  # pseudo-observations pulling a cell of the reward model towards its parent's mean


@dataclass(frozen=True)
class LoggedDecision:
    """One logged decision with the mean of the rewards that came back for it."""

    context: RoutingContext
    candidates: list[Candidate]
    state: str
    chosen: str
    probability: float
    reward: float


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float | None  # None with fewer than two decisions
    high: float | None


@dataclass(frozen=True)
class Evaluation:
    decisions: int
    logged_reward: Estimate
    ips: Estimate
    doubly_robust: Estimate
    effective_sample_size: float
    agreement: float  # share of decisions where the target's likeliest agent is the logged one


def _estimate(values: list[float]) -> Estimate:
    """The mean of per-decision terms with a 95 % normal interval."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return Estimate(round(mean, 4), None, None)
    half = Z_95 * statistics.stdev(values) / math.sqrt(len(values))
    return Estimate(round(mean, 4), round(mean - half, 4), round(mean + half, 4))


class RewardModel:
    """q̂(state, agent): mean logged reward, shrunk towards the agent's mean and the overall mean."""

    def __init__(self, log: list[LoggedDecision]) -> None:
        self.overall = statistics.fmean(d.reward for d in log)
        self.by_agent: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        self.by_cell: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
        for d in log:
            for bucket in (self.by_agent[d.chosen], self.by_cell[(d.state, d.chosen)]):
                bucket[0] += 1
                bucket[1] += d.reward

    def __call__(self, state: str, agent_id: str) -> float:
        n, total = self.by_agent.get(agent_id, (0.0, 0.0))
        agent_mean = (total + SHRINK * self.overall) / (n + SHRINK)
        n, total = self.by_cell.get((state, agent_id), (0.0, 0.0))
        return (total + SHRINK * agent_mean) / (n + SHRINK)


def evaluate(policy: RoutingPolicy, log: list[LoggedDecision]) -> Evaluation:
    """IPS and doubly robust estimates of `policy`'s mean reward on `log` (which must not be empty)."""
    q = RewardModel(log)
    ips, dr, weights, agree = [], [], [], 0
    for d in log:
        pi = policy.probabilities(d.context, d.candidates)
        weight = pi.get(d.chosen, 0.0) / max(d.probability, 1e-6)
        baseline = sum(p * q(d.state, agent) for agent, p in pi.items())
        ips.append(weight * d.reward)
        dr.append(baseline + weight * (d.reward - q(d.state, d.chosen)))
        weights.append(weight)
        agree += max(pi, key=pi.get) == d.chosen
    total, squares = sum(weights), sum(w * w for w in weights)
    return Evaluation(
        decisions=len(log),
        logged_reward=_estimate([d.reward for d in log]),
        ips=_estimate(ips),
        doubly_robust=_estimate(dr),
        effective_sample_size=round(total * total / squares, 1) if squares else 0.0,
        agreement=round(agree / len(log), 4),
    )


def logged_decision(
    *,
    description: str,
    priority: int,
    metadata: dict[str, Any],
    embedding: tuple[float, ...] | None,
    candidates: list[dict[str, Any]],
    state: str,
    chosen: str,
    probability: float,
    reward: float,
) -> LoggedDecision:
    """A `LoggedDecision` from the columns of the decision log."""
    return LoggedDecision(
        context=RoutingContext(description, priority, metadata, embedding),
        candidates=[Candidate(str(c["agent_id"]), float(c["capability"])) for c in candidates],
        state=state,
        chosen=chosen,
        probability=probability,
        reward=reward,
    )
