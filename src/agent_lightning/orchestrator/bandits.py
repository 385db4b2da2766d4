"""Learning routing policies beyond the seed: capability-only, Thompson sampling and LinUCB.

All share the seed's prior: before any reward, an agent's expected reward on a task is
``0.6·capability + 0.4·Q_prior(state, agent)`` (`linucb` weights the Q priors of every keyword bucket
the task hits by its share), so a brand-new agent starts from its declared capabilities and the
fleet's known specialists start ahead. Learning moves away from that prior:

- `thompson` keeps, per (task state, agent), a discounted count and reward sum, and samples the
  expected reward from a Beta posterior while every reward seen was 0 or 1, a Gaussian one as soon as
  graded rewards appear; the prior counts as `prior_weight` pseudo-observations at the task's prior.
- `linucb` fits, per agent, a ridge regression of (reward − prior) on task features (bias, keyword
  bucket shares, hashed words, priority, length, and a random projection of the task's embedding when
  there is one), each observation weighted by the inverse residual variance of its kind (pass/fail or
  graded), and adds an upper confidence bonus; a little exploration (ε, spread over the agents by a
  softmax of their upper bounds, so near-misses are tried far more often than clear losers) gives every
  logged choice a known, non-zero probability.

Both discount old evidence (`discount` per update) and run a one-sided CUSUM on each arm's prediction
errors, so an agent that starts failing loses its traffic within a few dozen of its tasks; both can
learn from reward − `cost_lambda` · cost (cost in [0, 1]).
"""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache
import random
import re
import zlib
from typing import Any

import numpy as np

from agent_lightning.orchestrator.policy import (
    DEFAULT_Q,
    GENERAL_STATE,
    Q_PRIORS,
    STATE_KEYWORDS,
    Candidate,
    Choice,
    RoutingContext,
    bucket_shares,
    main_bucket,
    task_state,
)

PROJECTION_DIM = 16
HASH_DIM = 32
# Observation weighting in LinUCB: weight = NOISE_REFERENCE / residual variance of the reward's kind,
# the variance an exponential average with rate NOISE_RATE, floored (so no weight exceeds 25).
NOISE_REFERENCE, NOISE_RATE, NOISE_FLOOR = 0.25, 0.01, 0.01


def prior_mean(state: str, candidate: Candidate) -> float:
    """Expected reward before any evidence: the seed policy's blend of capability and Q prior."""
    return blended_prior({state: 1.0}, candidate)


def blended_prior(shares: dict[str, float], candidate: Candidate) -> float:
    """The prior on a task that is spread over several keyword buckets: the Q priors weighted by share."""
    q = sum(share * Q_PRIORS.get(state, {}).get(candidate.agent_id, DEFAULT_Q) for state, share in shares.items())
    return 0.6 * candidate.capability + 0.4 * q


def _scores(state: str, candidates: list[Candidate], values: list[float]) -> list[dict[str, float | str]]:
    """The logged candidate scores, best first (`q` and `score` are both the policy's estimate)."""
    rows = [
        {"agent_id": c.agent_id, "capability": c.capability, "q": round(v, 4), "score": round(v, 4)}
        for c, v in zip(candidates, values, strict=True)
    ]
    return sorted(rows, key=lambda r: (-r["score"], r["agent_id"]))


class CapabilityPolicy:
    """Capability match only: always the best declared fit. Never learns (a baseline)."""

    name = "capability"
    version = 0

    def score(self, context: RoutingContext, candidates: list[Candidate]) -> Choice:
        state = task_state(context.description)
        values = [c.capability for c in candidates]
        scores = _scores(state, candidates, values)
        return Choice(scores[0]["agent_id"], scores[0]["score"], 1.0, state, scores)

    choose = score

    def probabilities(self, context: RoutingContext, candidates: list[Candidate]) -> dict[str, float]:
        return {self.score(context, candidates).agent_id: 1.0}

    def update(self, *, state: str, agent_id: str, reward: float, features: dict[str, Any]) -> None:
        """Nothing to learn."""

    def state(self) -> dict[str, Any]:
        return {}

    def load(self, state: dict[str, Any]) -> None:
        """Nothing to restore."""


class ThompsonPolicy:
    """Thompson sampling per (task state, agent) with the capability prior and discounting; a CUSUM on
    each arm's errors forgets the arm when its agent starts doing clearly worse than expected."""

    name = "thompson"

    def __init__(
        self,
        *,
        prior_weight: float = 4.0,
        discount: float = 0.98,
        noise: float = 0.25,
        drift_slack: float = 0.15,
        drift_threshold: float = 3.0,
        drift_memory: float = 2.0,
        cost_lambda: float = 0.0,
        samples: int = 256,
        seed: int | None = None,
    ) -> None:
        self.drift_slack = drift_slack
        self.drift_threshold = drift_threshold
        self.drift_memory = drift_memory
        self.cusum: dict[str, float] = {}  # "state/agent" -> one-sided CUSUM of (expected − reward)
        self.prior_weight = prior_weight
        self.discount = discount
        self.noise = noise
        self.cost_lambda = cost_lambda
        self.samples = samples
        self.stats: dict[str, dict[str, list[float]]] = {}  # state -> agent -> [count, reward sum]
        self.graded = False
        self.updates = 0
        self._rng = np.random.default_rng(seed)

    @property
    def version(self) -> int:
        return self.updates

    def _posterior(self, state: str, candidates: list[Candidate]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per candidate: posterior mean, and the Beta (α, β) or Gaussian (mean, sd) parameters."""
        counts = np.empty(len(candidates))
        sums = np.empty(len(candidates))
        priors = np.empty(len(candidates))
        arms = self.stats.get(state, {})
        for i, c in enumerate(candidates):
            counts[i], sums[i] = arms.get(c.agent_id, (0.0, 0.0))
            priors[i] = prior_mean(state, c)
        k = self.prior_weight
        mean = (k * priors + sums) / (k + counts)
        if self.graded:
            return mean, mean, self.noise / np.sqrt(k + counts)
        alpha = k * priors + sums
        beta = k * (1 - priors) + (counts - sums)
        return mean, np.maximum(alpha, 1e-3), np.maximum(beta, 1e-3)

    def _draws(self, state: str, candidates: list[Candidate], n: int) -> tuple[np.ndarray, np.ndarray]:
        """Posterior means and `n` joint samples of every candidate's expected reward."""
        mean, a, b = self._posterior(state, candidates)
        if self.graded:
            return mean, self._rng.normal(a, b, size=(n, len(candidates)))
        return mean, self._rng.beta(a, b, size=(n, len(candidates)))

    def score(self, context: RoutingContext, candidates: list[Candidate]) -> Choice:
        state = task_state(context.description)
        mean, _, _ = self._posterior(state, candidates)
        scores = _scores(state, candidates, list(mean))
        best = next(i for i, c in enumerate(candidates) if c.agent_id == scores[0]["agent_id"])
        return Choice(scores[0]["agent_id"], scores[0]["score"], 1.0, state, scores, {"estimate": round(float(mean[best]), 6)})

    def choose(self, context: RoutingContext, candidates: list[Candidate]) -> Choice:
        state = task_state(context.description)
        mean, draws = self._draws(state, candidates, self.samples + 1)
        picked = int(np.argmax(draws[0]))
        wins = np.bincount(np.argmax(draws[1:], axis=1), minlength=len(candidates))
        probability = (wins[picked] + 1) / (self.samples + len(candidates))  # smoothed estimate
        scores = _scores(state, candidates, list(mean))
        features = {"estimate": round(float(mean[picked]), 6)}
        return Choice(candidates[picked].agent_id, round(float(mean[picked]), 4), round(float(probability), 6), state, scores, features)

    def probabilities(self, context: RoutingContext, candidates: list[Candidate]) -> dict[str, float]:
        state = task_state(context.description)
        _, draws = self._draws(state, candidates, self.samples)
        wins = np.bincount(np.argmax(draws, axis=1), minlength=len(candidates)) / self.samples
        return {c.agent_id: float(p) for c, p in zip(candidates, wins, strict=True)}

    def update(self, *, state: str, agent_id: str, reward: float, features: dict[str, Any]) -> None:
        reward = reward - self.cost_lambda * float(features.get("cost", 0.0))
        if 0.0 < reward < 1.0:
            self.graded = True
        arms = self.stats.setdefault(state, {})
        for stats in arms.values():
            stats[0] *= self.discount
            stats[1] *= self.discount
        count, total = arms.get(agent_id, (0.0, 0.0))
        if "estimate" in features and self._drifted(f"{state}/{agent_id}", float(features["estimate"]) - reward):
            # Keep the arm's mean but only the weight of `drift_memory` observations: it relearns fast.
            kept = min(count, self.drift_memory)
            count, total = kept, total * kept / count if count else 0.0
        arms[agent_id] = [count + 1.0, total + reward]
        self.updates += 1

    def _drifted(self, arm: str, error: float) -> bool:
        """Whether the arm's CUSUM of errors crossed the threshold (and then restarts it)."""
        cusum = max(0.0, self.cusum.get(arm, 0.0) + error - self.drift_slack)
        self.cusum[arm] = 0.0 if cusum > self.drift_threshold else cusum
        return cusum > self.drift_threshold

    def state(self) -> dict[str, Any]:
        return {"stats": self.stats, "graded": self.graded, "updates": self.updates, "cusum": self.cusum}

    def load(self, state: dict[str, Any]) -> None:
        self.stats = {s: {a: list(v) for a, v in arms.items()} for s, arms in state.get("stats", {}).items()}
        self.graded = bool(state.get("graded", False))
        self.updates = int(state.get("updates", 0))
        self.cusum = dict(state.get("cusum", {}))


@lru_cache(maxsize=8)
def _projection(dim_in: int, dim_out: int = PROJECTION_DIM) -> np.ndarray:
    """A fixed random projection (seeded by the shape, so every process and restart agrees)."""
    seed = int(hashlib.sha256(f"{dim_in}x{dim_out}".encode()).hexdigest()[:8], 16)
    return np.random.default_rng(seed).normal(0, 1 / math.sqrt(dim_out), size=(dim_in, dim_out))


WORD = re.compile(r"[a-z0-9][a-z0-9+#.-]*")


def hashed_words(text: str, dim: int = HASH_DIM) -> list[float]:
    """The words of a text by signed feature hashing, L2-normalised (a bag of words in `dim` numbers)."""
    vector = [0.0] * dim
    for word in WORD.findall(text.lower()):
        h = zlib.crc32(word.encode())
        vector[h % dim] += 1.0 if (h >> 16) & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector] if norm else vector


def task_features(
    context: RoutingContext, hash_dim: int = HASH_DIM, projection_dim: int = PROJECTION_DIM, text_weight: float = 1.0,
    shares: dict[str, float] | None = None,
) -> list[float]:
    """Bias, keyword bucket shares, hashed words, priority, length and (when known) the projected embedding."""
    shares = shares or bucket_shares(context.description)
    buckets = [shares.get(state, 0.0) for state in STATE_KEYWORDS] + [shares.get(GENERAL_STATE, 0.0)]
    length = min(math.log1p(len(context.description.split())) / math.log(200), 1.0)
    projected = [0.0] * projection_dim
    if context.embedding and projection_dim:
        vector = np.asarray(context.embedding, dtype=float)
        projected = list(text_weight * (vector @ _projection(len(vector), projection_dim)))
    words = [text_weight * v for v in hashed_words(context.description, hash_dim)] if hash_dim else []
    return [1.0, *buckets, *words, context.priority / 10, length, *projected]


class LinUCBPolicy:
    """Per-agent ridge regression of (reward − prior) on task features, plus an upper confidence bonus.

    Each agent's evidence is discounted by `discount` at each of its own updates (a soft window over
    its last few hundred tasks), and a one-sided CUSUM on its prediction errors forgets it at once
    (back to the prior, or to `drift_keep` of it) when the agent starts doing clearly worse than predicted.
    """

    name = "linucb"

    def __init__(
        self,
        *,
        alpha: float = 0.25,
        ridge: float = 1.0,
        discount: float = 0.998,
        epsilon: float = 0.01,
        temperature: float | None = 0.05,
        hash_dim: int = HASH_DIM,
        projection_dim: int = PROJECTION_DIM,
        drift_slack: float = 0.15,
        drift_threshold: float = 3.0,
        drift_keep: float = 0.0,
        text_weight: float = 0.5,
        cost_lambda: float = 0.0,
        noise_weighting: bool = True,
        seed: int | None = None,
    ) -> None:
        self.noise_weighting = noise_weighting
        self.noise = {"binary": NOISE_REFERENCE, "graded": NOISE_REFERENCE}  # residual variance per kind
        self.text_weight = text_weight
        self.alpha = alpha
        self.ridge = ridge
        self.discount = discount
        self.epsilon = epsilon
        self.temperature = temperature
        self.hash_dim = hash_dim
        self.projection_dim = projection_dim
        self.drift_slack = drift_slack
        self.drift_threshold = drift_threshold
        self.drift_keep = drift_keep
        self.cost_lambda = cost_lambda
        self.dim = len(task_features(RoutingContext(""), hash_dim, projection_dim, text_weight))
        self.models: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # agent -> (A⁻¹, b)
        self.cusum: dict[str, float] = {}
        self.resets: dict[str, int] = {}
        self.pulls: dict[str, int] = {}
        self.updates = 0
        self._rng = random.Random(seed)

    @property
    def version(self) -> int:
        return self.updates

    @property
    def uses_embeddings(self) -> bool:
        return self.projection_dim > 0

    def _model(self, agent_id: str) -> tuple[np.ndarray, np.ndarray]:
        """The agent's (A⁻¹, b); a new agent's is (I/ridge, 0), i.e. its prior."""
        return self.models.get(agent_id) or (np.eye(self.dim) / self.ridge, np.zeros(self.dim))

    def _values(self, context: RoutingContext, candidates: list[Candidate]):
        """State, features, and per candidate: prior, estimated reward, upper confidence bound."""
        shares = bucket_shares(context.description)
        state = main_bucket(shares)
        x = np.asarray(task_features(context, self.hash_dim, self.projection_dim, self.text_weight, shares))
        priors, means, bounds = [], [], []
        for c in candidates:
            a_inv, b = self._model(c.agent_id)
            prior = blended_prior(shares, c)
            ax = a_inv @ x
            estimate = prior + float(ax @ b)
            priors.append(prior)
            means.append(estimate)
            bounds.append(estimate + self.alpha * math.sqrt(max(float(x @ ax), 0.0)))
        return state, x, priors, means, bounds

    def _choice(self, state, x, priors, means, candidates, picked: int, probability: float) -> Choice:
        """The `Choice` of candidate `picked`, carrying the features its update will need."""
        features = {"x": [round(float(v), 6) for v in x], "prior": round(priors[picked], 6)}
        scores = _scores(state, candidates, means)
        confidence = round(min(max(means[picked], 0.0), 1.0), 4)
        return Choice(candidates[picked].agent_id, confidence, round(probability, 6), state, scores, features)

    def score(self, context: RoutingContext, candidates: list[Candidate]) -> Choice:
        state, x, priors, means, _ = self._values(context, candidates)
        best = max(range(len(means)), key=lambda i: means[i])
        return self._choice(state, x, priors, means, candidates, best, 1.0)

    def choose(self, context: RoutingContext, candidates: list[Candidate]) -> Choice:
        state, x, priors, means, bounds = self._values(context, candidates)
        n = len(candidates)
        greedy = max(range(n), key=lambda i: bounds[i])
        picked = greedy
        if n > 1 and self._rng.random() < self.epsilon:
            picked = self._rng.choices(range(n), weights=self._exploration(bounds))[0]
        return self._choice(state, x, priors, means, candidates, picked, self._probabilities(bounds)[picked])

    def _exploration(self, bounds: list[float]) -> list[float]:
        """How the ε of exploration is shared out: a softmax of the upper bounds at `temperature`
        (uniform when it is None), so an agent 0.1 below the best is tried e² ≈ 7× as often as one
        0.2 below it at the default 0.05, and none ever has probability 0."""
        if not self.temperature:
            return [1.0 / len(bounds)] * len(bounds)
        top = max(bounds)
        weights = [math.exp((b - top) / self.temperature) for b in bounds]
        total = sum(weights)
        return [w / total for w in weights]

    def _probabilities(self, bounds: list[float]) -> list[float]:
        """The greedy agent (best upper bound) gets 1 − ε, and every agent its share of ε."""
        n = len(bounds)
        if n == 1:
            return [1.0]
        greedy = max(range(n), key=lambda i: bounds[i])
        return [(1 - self.epsilon) * (i == greedy) + self.epsilon * share for i, share in enumerate(self._exploration(bounds))]

    def probabilities(self, context: RoutingContext, candidates: list[Candidate]) -> dict[str, float]:
        bounds = self._values(context, candidates)[4]
        return {c.agent_id: p for c, p in zip(candidates, self._probabilities(bounds), strict=True)}

    def update(self, *, state: str, agent_id: str, reward: float, features: dict[str, Any]) -> None:
        x = np.asarray(features.get("x") or [0.0] * self.dim, dtype=float)
        if len(x) != self.dim:
            return  # logged with another feature layout: nothing this model can learn from
        prior = float(features.get("prior", 0.5))
        kind = "binary" if reward in (0.0, 1.0) else "graded"
        reward = reward - self.cost_lambda * float(features.get("cost", 0.0))
        a_inv, b = self._model(agent_id)
        error = prior + float(x @ a_inv @ b) - reward
        weight = self._weight(kind, error)
        keep = self._drift(agent_id, error)
        if keep < 1.0:
            # Shrink A towards the ridge and b towards 0: A' = keep·A + (1−keep)·λI.
            a = np.linalg.inv(a_inv) * keep + (1 - keep) * self.ridge * np.eye(self.dim)
            a_inv, b = np.linalg.inv(a), b * keep
        ax = a_inv @ x  # Sherman–Morrison for the rank-one update A += w·x·xᵀ
        self.models[agent_id] = (a_inv - weight * np.outer(ax, ax) / (1.0 + weight * x @ ax), b + weight * (reward - prior) * x)
        self.pulls[agent_id] = self.pulls.get(agent_id, 0) + 1
        self.updates += 1

    def _weight(self, kind: str, error: float) -> float:
        """An observation's weight in the regression: the inverse of its kind's residual variance.

        A pass/fail outcome is a Bernoulli draw (variance up to 0.25); a graded score usually says much
        more about the agent's quality. Both variances are tracked online (an exponential average of
        squared prediction errors), so the weights follow whatever the deployment's rewards really are.
        """
        if not self.noise_weighting:
            return 1.0
        self.noise[kind] = (1 - NOISE_RATE) * self.noise[kind] + NOISE_RATE * error * error
        return NOISE_REFERENCE / max(self.noise[kind], NOISE_FLOOR)

    def _drift(self, agent_id: str, error: float) -> float:
        """How much of an agent's evidence to keep: `discount`, or `drift_keep` when its CUSUM fires."""
        cusum = max(0.0, self.cusum.get(agent_id, 0.0) + error - self.drift_slack)
        if cusum > self.drift_threshold:
            self.cusum[agent_id] = 0.0
            self.resets[agent_id] = self.resets.get(agent_id, 0) + 1
            return self.drift_keep
        self.cusum[agent_id] = cusum
        return self.discount

    def state(self) -> dict[str, Any]:
        return {
            "updates": self.updates,
            "dim": self.dim,
            "models": {a: {"a_inv": m[0].tolist(), "b": m[1].tolist()} for a, m in self.models.items()},
            "cusum": self.cusum,
            "resets": self.resets,
            "pulls": self.pulls,
            "noise": self.noise,
        }

    def load(self, state: dict[str, Any]) -> None:
        if state.get("dim", self.dim) != self.dim:
            return  # features changed shape: start afresh rather than misread old weights
        self.models = {a: (np.asarray(m["a_inv"]), np.asarray(m["b"])) for a, m in state.get("models", {}).items()}
        self.cusum = dict(state.get("cusum", {}))
        self.resets = dict(state.get("resets", {}))
        self.pulls = dict(state.get("pulls", {}))
        self.noise.update(state.get("noise", {}))
        self.updates = int(state.get("updates", 0))

