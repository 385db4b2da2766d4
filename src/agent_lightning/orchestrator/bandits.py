"""Learning routing policies beyond the seed: capability-only, Thompson sampling, LinUCB and a model shared
across agents.

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
- `shared` learns one model of every agent's reward: a task representation and the weights of the
  capability and seed priors from all agents' rewards, and per agent a few coordinates (see
  `SharedPolicy`); it explores as `linucb` does.

All discount old evidence (`discount` per update) and run a one-sided CUSUM on each arm's prediction
errors, so an agent that starts failing loses its traffic within a few dozen of its tasks; all can
learn from reward − `cost_lambda` · cost (cost in [0, 1]).
"""

from __future__ import annotations

import hashlib
import math
import random
import re
import zlib
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

from agent_lightning.orchestrator.policy import (
    DEFAULT_Q,
    GENERAL_STATE,
    GLOBAL_PART,
    Q_PRIORS,
    STATE_KEYWORDS,
    Candidate,
    Choice,
    RoutingContext,
    bucket_shares,
    main_bucket,
    parts_state,
    state_part,
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
    q = sum(
        share * Q_PRIORS.get(state, {}).get(candidate.agent_id, DEFAULT_Q) for state, share in shares.items()
    )
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

    def touched(self, *, state: str, agent_id: str) -> tuple[str, ...]:
        return ()

    def part_names(self) -> list[str]:
        return []

    def dump_parts(self, names: Iterable[str]) -> dict[str, dict[str, Any]]:
        return {}

    def load_parts(self, parts: dict[str, dict[str, Any]]) -> None:
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

    def _posterior(
        self, state: str, candidates: list[Candidate]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
        return Choice(
            scores[0]["agent_id"],
            scores[0]["score"],
            1.0,
            state,
            scores,
            {"estimate": round(float(mean[best]), 6)},
        )

    def choose(self, context: RoutingContext, candidates: list[Candidate]) -> Choice:
        state = task_state(context.description)
        mean, draws = self._draws(state, candidates, self.samples + 1)
        picked = int(np.argmax(draws[0]))
        wins = np.bincount(np.argmax(draws[1:], axis=1), minlength=len(candidates))
        probability = (wins[picked] + 1) / (self.samples + len(candidates))  # smoothed estimate
        scores = _scores(state, candidates, list(mean))
        features = {"estimate": round(float(mean[picked]), 6)}
        return Choice(
            candidates[picked].agent_id,
            round(float(mean[picked]), 4),
            round(float(probability), 6),
            state,
            scores,
            features,
        )

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
        if "estimate" in features and self._drifted(
            f"{state}/{agent_id}", float(features["estimate"]) - reward
        ):
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

    def touched(self, *, state: str, agent_id: str) -> tuple[str, ...]:
        return GLOBAL_PART, state_part(state)  # an update discounts every arm of its state

    def part_names(self) -> list[str]:
        return [GLOBAL_PART, *map(state_part, self.stats)]

    def dump_parts(self, names: Iterable[str]) -> dict[str, dict[str, Any]]:
        by_part = {state_part(s): s for s in self.stats}
        parts: dict[str, dict[str, Any]] = {}
        for name in names:
            if name == GLOBAL_PART:
                parts[name] = {"graded": self.graded, "updates": self.updates}
            elif name in by_part:
                state = by_part[name]
                prefix = f"{state}/"
                cusum = {arm[len(prefix) :]: v for arm, v in self.cusum.items() if arm.startswith(prefix)}
                parts[name] = {"state": state, "stats": self.stats[state], "cusum": cusum}
        return parts

    def load_parts(self, parts: dict[str, dict[str, Any]]) -> None:
        top = parts.get(GLOBAL_PART, {})
        self.graded, self.updates = bool(top.get("graded", False)), int(top.get("updates", 0))
        self.stats, self.cusum = {}, {}
        for name, part in parts.items():
            if name != GLOBAL_PART:
                state = part["state"]
                self.stats[state] = {a: [float(c), float(t)] for a, (c, t) in part["stats"].items()}
                self.cusum.update({f"{state}/{a}": float(v) for a, v in part["cusum"].items()})


ARM_PREFIX = "arm/"


def arm_part(agent_id: str) -> str:
    """The name of the part that holds what a policy learned about one agent."""
    return ARM_PREFIX + agent_id


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
    context: RoutingContext,
    hash_dim: int = HASH_DIM,
    projection_dim: int = PROJECTION_DIM,
    text_weight: float = 1.0,
    shares: dict[str, float] | None = None,
) -> list[float]:
    """Bias, keyword bucket shares, hashed words, priority, length and (when known) the projected
    embedding."""
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
        return _softmax(bounds, self.temperature)

    def _probabilities(self, bounds: list[float]) -> list[float]:
        """The greedy agent (best upper bound) gets 1 − ε, and every agent its share of ε."""
        return _explore_probabilities(bounds, self.epsilon, self.temperature)

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
        self.models[agent_id] = (
            a_inv - weight * np.outer(ax, ax) / (1.0 + weight * x @ ax),
            b + weight * (reward - prior) * x,
        )
        self.pulls[agent_id] = self.pulls.get(agent_id, 0) + 1
        self.updates += 1

    def _weight(self, kind: str, error: float) -> float:
        """An observation's weight in the regression: the inverse of its kind's residual variance.

        A pass/fail outcome is a Bernoulli draw (variance up to 0.25); a graded score usually says much
        more about the agent's quality. Both variances are tracked online (an exponential average of
        squared prediction errors), so the weights follow whatever the deployment's rewards really are.
        """
        return _noise_weight(self.noise, kind, error) if self.noise_weighting else 1.0

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

    def touched(self, *, state: str, agent_id: str) -> tuple[str, ...]:
        return GLOBAL_PART, arm_part(agent_id)

    def part_names(self) -> list[str]:
        return [GLOBAL_PART, *map(arm_part, sorted({*self.models, *self.cusum, *self.pulls, *self.resets}))]

    def dump_parts(self, names: Iterable[str]) -> dict[str, dict[str, Any]]:
        parts: dict[str, dict[str, Any]] = {}
        for name in names:
            if name == GLOBAL_PART:
                parts[name] = {"updates": self.updates, "dim": self.dim, "noise": dict(self.noise)}
                continue
            agent = name.removeprefix(ARM_PREFIX)
            part: dict[str, Any] = {
                "agent_id": agent,
                "cusum": self.cusum.get(agent),  # None: not kept
                "resets": self.resets.get(agent),
                "pulls": self.pulls.get(agent),
            }
            if agent in self.models:  # A⁻¹ whole (not a triangle): a reloaded state is bit for bit the same
                part["a_inv"], part["b"] = self.models[agent]
            parts[name] = part
        return parts

    def load_parts(self, parts: dict[str, dict[str, Any]]) -> None:
        top = parts.get(GLOBAL_PART, {})
        self.models, self.cusum, self.resets, self.pulls = {}, {}, {}, {}
        self.noise = {"binary": NOISE_REFERENCE, "graded": NOISE_REFERENCE}
        self.updates = 0
        if top.get("dim", self.dim) != self.dim:
            return  # features changed shape: start afresh rather than misread old weights
        self.updates = int(top.get("updates", 0))
        self.noise.update(top.get("noise", {}))
        for name, part in parts.items():
            if name == GLOBAL_PART:
                continue
            agent = part["agent_id"]
            if "a_inv" in part and part["a_inv"].shape != (self.dim, self.dim):
                continue  # left over from a layout before the global part's (its arms start afresh)
            for kept, key in ((self.cusum, "cusum"), (self.resets, "resets"), (self.pulls, "pulls")):
                if part[key] is not None:
                    kept[agent] = part[key]
            if "a_inv" in part:
                self.models[agent] = (part["a_inv"], part["b"])

    def load(self, state: dict[str, Any]) -> None:
        if state.get("dim", self.dim) != self.dim:
            return  # features changed shape: start afresh rather than misread old weights
        self.models = {
            a: (np.asarray(m["a_inv"]), np.asarray(m["b"])) for a, m in state.get("models", {}).items()
        }
        self.cusum = dict(state.get("cusum", {}))
        self.resets = dict(state.get("resets", {}))
        self.pulls = dict(state.get("pulls", {}))
        self.noise.update(state.get("noise", {}))
        self.updates = int(state.get("updates", 0))


CAPABILITY_WEIGHT, Q_WEIGHT = 0.6, 0.4  # the seed's blend: where the shared weights start
_BLAS = ThreadpoolController()
"""The refit's solve runs on one BLAS thread: on a busy machine, OpenBLAS's threads make it 10× slower."""


class SharedPolicy:
    """Learning shared across agents: a model of every agent's reward in which what one agent's rewards
    teach about tasks informs every other agent, and the capability and seed priors are features whose
    weight is learned.

    An agent's expected reward on a task is ``sᵀx + uₐᵀ V x + δₐᵀx``, where x is the task's features
    followed by the agent's capability score and Q prior on it. `s` (shared by every agent: how rewarding
    a kind of task is, how much the declared capability and the seed's priors are worth; starting at the
    seed's blend) and `V` (a `rank`-dimensional representation of tasks, learned from all agents' rewards)
    are refitted every `refit_every` rewards by alternating ridge regressions on each agent's sufficient
    statistics (Σ w·x·xᵀ, Σ w·r·x; discounted by `discount` at each of its updates). Each agent has the
    `rank` numbers uₐ of its own, whose prior is the population of agents (the mean and spread of the
    fitted uₐ), and a residual δₐ (prior variance `residual` per weight) for what the shared representation
    misses; their Gaussian posterior places a new agent after a few rewards, and until then its upper
    confidence bound (`alpha` posterior standard deviations) is as optimistic as the fleet's spread allows,
    which earns it trials.

    Like `linucb`: observations are weighted by the inverse residual variance of their kind, a one-sided
    CUSUM on an agent's prediction errors forgets its evidence when it starts doing clearly worse (back to
    the population prior), and ε of the choices explore by a softmax of the upper bounds, so every logged
    choice has a known, non-zero probability. Every update and refit is a deterministic function of the
    lessons in order, so replicas that fold the same log hold the same state.
    """

    name = "shared"

    def __init__(
        self,
        *,
        rank: int = 5,
        alpha: float = 1.0,
        ridge: float = 0.1,
        prior_strength: float = 10.0,
        population: float = 3.0,
        spread: float = 0.3,
        residual: float = 0.2,
        discount: float = 0.998,
        refit_every: int = 32,
        sweeps: int = 2,
        epsilon: float = 0.01,
        temperature: float | None = 0.05,
        hash_dim: int = HASH_DIM,
        projection_dim: int = PROJECTION_DIM,
        text_weight: float = 0.5,
        drift_slack: float = 0.15,
        drift_threshold: float = 3.0,
        cost_lambda: float = 0.0,
        noise_weighting: bool = True,
        seed: int | None = None,
    ) -> None:
        self.rank, self.alpha, self.ridge = rank, alpha, ridge
        self.prior_strength, self.population, self.spread = prior_strength, population, spread
        self.residual = residual
        self.discount, self.refit_every, self.sweeps = discount, refit_every, sweeps
        self.epsilon, self.temperature = epsilon, temperature
        self.hash_dim, self.projection_dim, self.text_weight = hash_dim, projection_dim, text_weight
        self.drift_slack, self.drift_threshold = drift_slack, drift_threshold
        self.cost_lambda, self.noise_weighting = cost_lambda, noise_weighting
        self.task_dim = len(task_features(RoutingContext(""), hash_dim, projection_dim, text_weight))
        self.dim = self.task_dim + 2  # + capability, Q prior
        self.s0 = np.zeros(self.dim)
        self.s0[self.task_dim], self.s0[self.task_dim + 1] = CAPABILITY_WEIGHT, Q_WEIGHT
        self._rng = random.Random(seed)
        self._reset()

    def _reset(self) -> None:
        self.s: np.ndarray = self.s0.copy()
        # Before the first refit: the task's bias and first keyword buckets as the representation.
        self.v: np.ndarray = np.eye(self.rank, self.dim)
        self.u_mean: np.ndarray = np.zeros(self.rank)
        self.u_precision: np.ndarray = np.eye(self.rank) / self.spread
        self.stats: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # agent -> (Σ w·x·xᵀ, Σ w·r·x)
        self.posteriors: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # agent -> (precision, c) of [uₐ, δₐ]
        self._solved: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # agent -> (mean, covariance)
        self.cusum: dict[str, float] = {}
        self.resets: dict[str, int] = {}
        self.pulls: dict[str, int] = {}
        self.noise = {"binary": NOISE_REFERENCE, "graded": NOISE_REFERENCE}
        self.updates = 0
        self._refitted = False

    @property
    def version(self) -> int:
        return self.updates

    @property
    def uses_embeddings(self) -> bool:
        return self.projection_dim > 0

    # -- choosing ------------------------------------------------------------------------------------------

    def _prior(self) -> tuple[np.ndarray, np.ndarray]:
        """The prior of an agent's weights [uₐ, δₐ]: precision and precision · mean (uₐ: the population's
        mean and spread; δₐ: 0, with variance `residual`)."""
        precision = np.zeros((self.rank + self.dim, self.rank + self.dim))
        precision[: self.rank, : self.rank] = self.u_precision
        precision[self.rank :, self.rank :] = np.eye(self.dim) / self.residual
        c = np.zeros(self.rank + self.dim)
        c[: self.rank] = self.u_precision @ self.u_mean
        return precision, c

    def _weights(self, agent_id: str) -> tuple[np.ndarray, np.ndarray]:
        """An agent's posterior mean and covariance of [uₐ, δₐ] (a new agent's: the prior)."""
        solved = self._solved.get(agent_id)
        if solved is None:
            precision, c = self.posteriors.get(agent_id) or self._prior()
            covariance = np.linalg.inv(precision)
            solved = (covariance @ c, covariance)
            if agent_id in self.posteriors:
                self._solved[agent_id] = solved
        return solved

    def _phi(self, rows: np.ndarray) -> np.ndarray:
        """Each row's features for an agent's own weights: [V x, x]."""
        return np.concatenate([rows @ self.v.T, rows], axis=-1)

    def _values(self, context: RoutingContext, candidates: list[Candidate]):
        shares = bucket_shares(context.description)
        state = main_bucket(shares)
        x = task_features(context, self.hash_dim, self.projection_dim, self.text_weight, shares)
        rows = np.empty((len(candidates), self.dim))
        rows[:, : self.task_dim] = x
        for i, c in enumerate(candidates):
            rows[i, self.task_dim] = c.capability
            rows[i, self.task_dim + 1] = (
                blended_prior(shares, c) - CAPABILITY_WEIGHT * c.capability
            ) / Q_WEIGHT
        phi = self._phi(rows)
        width = self.rank + self.dim
        weights = np.empty((len(candidates), width))
        cov = np.empty((len(candidates), width, width))
        for i, c in enumerate(candidates):
            weights[i], cov[i] = self._weights(c.agent_id)
        means = rows @ self.s + np.einsum("ik,ik->i", phi, weights)
        sd = np.sqrt(np.maximum(np.einsum("ik,ikl,il->i", phi, cov, phi), 0.0))
        return state, rows, means.tolist(), (means + self.alpha * sd).tolist()

    def _choice(self, state, rows, means, candidates, picked: int, probability: float) -> Choice:
        row = rows[picked]
        features = {
            "x": [round(float(v), 6) for v in row[: self.task_dim]],
            "capability": round(float(row[self.task_dim]), 6),
            "q": round(float(row[self.task_dim + 1]), 6),
        }
        scores = _scores(state, candidates, means)
        confidence = round(min(max(means[picked], 0.0), 1.0), 4)
        return Choice(candidates[picked].agent_id, confidence, round(probability, 6), state, scores, features)

    def score(self, context: RoutingContext, candidates: list[Candidate]) -> Choice:
        state, rows, means, _ = self._values(context, candidates)
        best = max(range(len(means)), key=lambda i: means[i])
        return self._choice(state, rows, means, candidates, best, 1.0)

    def choose(self, context: RoutingContext, candidates: list[Candidate]) -> Choice:
        state, rows, means, bounds = self._values(context, candidates)
        n = len(candidates)
        picked = max(range(n), key=lambda i: bounds[i])
        if n > 1 and self._rng.random() < self.epsilon:
            picked = self._rng.choices(range(n), weights=_softmax(bounds, self.temperature))[0]
        probability = _explore_probabilities(bounds, self.epsilon, self.temperature)[picked]
        return self._choice(state, rows, means, candidates, picked, probability)

    def probabilities(self, context: RoutingContext, candidates: list[Candidate]) -> dict[str, float]:
        bounds = self._values(context, candidates)[3]
        chances = _explore_probabilities(bounds, self.epsilon, self.temperature)
        return {c.agent_id: p for c, p in zip(candidates, chances, strict=True)}

    # -- learning ------------------------------------------------------------------------------------------

    def update(self, *, state: str, agent_id: str, reward: float, features: dict[str, Any]) -> None:
        x = features.get("x")
        if not x or len(x) != self.task_dim or "capability" not in features:
            return  # logged by another policy or feature layout: nothing this model can learn from
        row = np.asarray([*x, features["capability"], features.get("q", DEFAULT_Q)], dtype=float)
        kind = "binary" if reward in (0.0, 1.0) else "graded"
        reward = reward - self.cost_lambda * float(features.get("cost", 0.0))
        phi = self._phi(row)
        error = float(row @ self.s + phi @ self._weights(agent_id)[0]) - reward
        weight = _noise_weight(self.noise, kind, error) if self.noise_weighting else 1.0
        keep = self._drift(agent_id, error)
        a, b = self.stats.get(agent_id) or (np.zeros((self.dim, self.dim)), np.zeros(self.dim))
        self.stats[agent_id] = (keep * a + weight * np.outer(row, row), keep * b + weight * reward * row)
        if keep == 0.0 or agent_id not in self.posteriors:
            self._posterior(agent_id)
        else:  # the same posterior as `_posterior` computes, by a rank-one step
            precision, c = self.posteriors[agent_id]
            prior_precision, prior_c = self._prior()
            self.posteriors[agent_id] = (
                prior_precision + keep * (precision - prior_precision) + weight * np.outer(phi, phi),
                prior_c + keep * (c - prior_c) + weight * (reward - row @ self.s) * phi,
            )
            self._solved.pop(agent_id, None)
        self.pulls[agent_id] = self.pulls.get(agent_id, 0) + 1
        self.updates += 1
        self._refitted = self.updates % self.refit_every == 0
        if self._refitted:
            self.refit()

    def _drift(self, agent_id: str, error: float) -> float:
        cusum = max(0.0, self.cusum.get(agent_id, 0.0) + error - self.drift_slack)
        if cusum > self.drift_threshold:
            self.cusum[agent_id] = 0.0
            self.resets[agent_id] = self.resets.get(agent_id, 0) + 1
            return 0.0
        self.cusum[agent_id] = cusum
        return self.discount

    def _posterior(self, agent_id: str) -> None:
        """The agent's posterior of [uₐ, δₐ] given `s`, `V`, the prior and its statistics."""
        a, b = self.stats[agent_id]
        prior_precision, prior_c = self._prior()
        va = self.v @ a
        gram = np.block([[va @ self.v.T, va], [va.T, a]])
        residual = b - a @ self.s
        self.posteriors[agent_id] = (
            prior_precision + gram,
            prior_c + np.concatenate([self.v @ residual, residual]),
        )
        self._solved.pop(agent_id, None)

    def refit(self) -> None:
        """Refit `s` and `V` on every agent's statistics (alternating ridge regressions), then the population
        prior of uₐ and every agent's posterior."""
        agents = sorted(self.stats)
        if not agents:
            return
        a = np.stack([self.stats[g][0] for g in agents])
        b = np.stack([self.stats[g][1] for g in agents])
        d, k = self.dim, self.rank
        for _ in range(self.sweeps):
            u = np.stack([self._weights(g)[0][:k] for g in agents])
            e = np.concatenate([np.ones((len(agents), 1)), u], axis=1)  # per agent: [1, uₐ]
            m = np.einsum("ai,aj,apq->ipjq", e, e, a).reshape((k + 1) * d, (k + 1) * d)
            rhs = np.einsum("ai,ap->ip", e, b).reshape(-1)
            reg = np.full((k + 1) * d, self.ridge)
            reg[:d] = self.prior_strength
            rhs[:d] += self.prior_strength * self.s0
            with _BLAS.limit(limits=1, user_api="blas"):
                solution = np.linalg.solve(m + np.diag(reg), rhs)
            self.s, self.v = solution[:d], solution[d:].reshape(k, d)
            self.u_precision = np.eye(k) / self.spread
            self.u_mean = np.zeros(k)
            for g in agents:
                self._posterior(g)
        # The population of agents as the prior of an agent's uₐ (shrunk towards `spread` by `population`
        # pseudo-agents), then every posterior under it.
        u = np.stack([self._weights(g)[0][:k] for g in agents])
        count = len(agents) + self.population
        self.u_mean = u.sum(axis=0) / count
        centred = u - self.u_mean
        covariance = (centred.T @ centred + self.population * self.spread * np.eye(k)) / count
        self.u_precision = np.linalg.inv(covariance)
        for g in agents:
            self._posterior(g)

    # -- state ---------------------------------------------------------------------------------------------

    def touched(self, *, state: str, agent_id: str) -> tuple[str, ...]:
        if self._refitted:  # a refit changed every agent's posterior
            return (GLOBAL_PART, *map(arm_part, self.stats))
        return GLOBAL_PART, arm_part(agent_id)

    def part_names(self) -> list[str]:
        return [GLOBAL_PART, *map(arm_part, sorted({*self.stats, *self.cusum, *self.pulls, *self.resets}))]

    def dump_parts(self, names: Iterable[str]) -> dict[str, dict[str, Any]]:
        parts: dict[str, dict[str, Any]] = {}
        for name in names:
            if name == GLOBAL_PART:
                parts[name] = {
                    "updates": self.updates,
                    "dim": self.dim,
                    "rank": self.rank,
                    "noise": dict(self.noise),
                    "s": self.s,
                    "v": self.v,
                    "u_mean": self.u_mean,
                    "u_precision": self.u_precision,
                }
                continue
            agent = name.removeprefix(ARM_PREFIX)
            part: dict[str, Any] = {
                "agent_id": agent,
                "cusum": self.cusum.get(agent),
                "resets": self.resets.get(agent),
                "pulls": self.pulls.get(agent),
            }
            if agent in self.stats:
                part["a"], part["b"] = self.stats[agent]
                part["precision"], part["c"] = self.posteriors[agent]
            parts[name] = part
        return parts

    def load_parts(self, parts: dict[str, dict[str, Any]]) -> None:
        self._reset()
        top = parts.get(GLOBAL_PART, {})
        if top.get("dim", self.dim) != self.dim or top.get("rank", self.rank) != self.rank:
            return  # another layout: start afresh rather than misread old weights
        self.updates = int(top.get("updates", 0))
        self.noise.update(top.get("noise", {}))
        for key in ("s", "v", "u_mean", "u_precision"):
            if key in top:
                setattr(self, key, np.asarray(top[key], dtype=float))
        for name, part in parts.items():
            if name == GLOBAL_PART:
                continue
            agent = part["agent_id"]
            for kept, key in ((self.cusum, "cusum"), (self.resets, "resets"), (self.pulls, "pulls")):
                if part.get(key) is not None:
                    kept[agent] = part[key]
            if "a" in part:
                self.stats[agent] = (np.asarray(part["a"], dtype=float), np.asarray(part["b"], dtype=float))
                self.posteriors[agent] = (
                    np.asarray(part["precision"], dtype=float),
                    np.asarray(part["c"], dtype=float),
                )

    def state(self) -> dict[str, Any]:
        """The whole state as JSON-able values (its parts, arrays as lists)."""
        return parts_state(self)

    def load(self, state: dict[str, Any]) -> None:
        self.load_parts(state.get("parts", {}))


def _softmax(bounds: list[float], temperature: float | None) -> list[float]:
    """How ε of exploration is shared out: a softmax of the upper bounds (uniform without a temperature)."""
    if not temperature:
        return [1.0 / len(bounds)] * len(bounds)
    top = max(bounds)
    weights = [math.exp((b - top) / temperature) for b in bounds]
    total = sum(weights)
    return [w / total for w in weights]


def _explore_probabilities(bounds: list[float], epsilon: float, temperature: float | None) -> list[float]:
    """The greedy agent (best upper bound) gets 1 − ε, and every agent its share of ε."""
    n = len(bounds)
    if n == 1:
        return [1.0]
    greedy = max(range(n), key=lambda i: bounds[i])
    return [
        (1 - epsilon) * (i == greedy) + epsilon * share
        for i, share in enumerate(_softmax(bounds, temperature))
    ]


def _noise_weight(noise: dict[str, float], kind: str, error: float) -> float:
    """An observation's weight: the inverse of its kind's residual variance (an exponential average)."""
    noise[kind] = (1 - NOISE_RATE) * noise[kind] + NOISE_RATE * error * error
    return NOISE_REFERENCE / max(noise[kind], NOISE_FLOOR)
