"""`topics`: routing on task topics learned from the words of every task, and an upper confidence bound per
(topic, agent) whose prior admits it may be wrong.

What tells which agent fits a task is its topic (web, billing, translation, …); which words name which
topic nobody wrote down for a new fleet. The words of the tasks themselves say it: words of one topic
occur together, in task after task. The policy keeps a window of its recent lessons (each task's words,
hashed, and the agent's reward) and refits on it, every `refit_every` lessons, a mixture of multinomials
over the task's distinctive words (words in more than `common` of the tasks, like "the" or a template's
phrasing, weigh almost nothing) by EM, so every task, whichever agent it went to, teaches the topics. A
task is then a posterior over `topics` topics, and an agent's expected reward on it is the posterior's mix
of its means per topic.

Each mean starts from a prior: the agent's expected reward from its capability score and the seed's Q
prior (the seed's blend; `calibration_strength` holds its weights there), worth `prior_weight`
observations. That prior is often right and sometimes badly wrong (an agent whose declared expertise
misses what it does best), so it is held with doubt: with chance 1 − `doubt` it is right, with chance
`doubt` the agent's mean is anywhere around `doubt_centre` (sd `doubt_spread`), and the rewards reweigh
the two. An agent the prior ranks low is therefore uncertain enough to be tried, and a few good rewards
overturn the prior instead of being averaged with it. The choice is the best upper bound, `bonus`
standard deviations above the mean (`bonus=None`: Thompson sampling from the same posteriors instead).

Like `linucb`: evidence is discounted (`discount` per lesson), a one-sided CUSUM on each agent's
prediction errors forgets its evidence when it starts doing clearly worse than predicted, and ε of the
choices explore by a softmax of the bounds, so every logged choice has a known probability > 0 (with
Thompson sampling, the sampling's probability is computed exactly, by integration over the value of the
best).

The state: the window of lessons and the fitted topics in the global part, each agent's per-topic counts
and drift detector in its own part; a refit rewrites every agent's part. Every update and refit is a
deterministic function of the lessons in order, so replicas that fold the same log hold the same state.
"""

from __future__ import annotations

import math
import random
import re
import zlib
from collections.abc import Iterable
from typing import Any

import numpy as np

from agent_lightning.orchestrator.bandits import ARM_PREFIX, arm_part
from agent_lightning.orchestrator.policy import (
    DEFAULT_Q,
    GLOBAL_PART,
    Q_PRIORS,
    Candidate,
    Choice,
    RoutingContext,
    bucket_shares,
    main_bucket,
    parts_state,
)

WORD = re.compile(r"[a-z0-9][a-z0-9+#.-]*")
SEED_BLEND = (0.0, 0.6, 0.4)  # reward ≈ 0 + 0.6·capability + 0.4·Q prior: where the calibration starts
_GRID = np.linspace(-4.0, 4.0, 81)  # the integration grid of the Thompson probabilities, in sd units


def tokens(text: str) -> list[int]:
    """The words of a text as 32-bit hashes, in order (repeated words repeat)."""
    return [zlib.crc32(w.encode()) for w in WORD.findall(text.lower())]


def _q_prior(shares: dict[str, float], agent_id: str) -> float:
    return sum(share * Q_PRIORS.get(state, {}).get(agent_id, DEFAULT_Q) for state, share in shares.items())


def _softmax(values: np.ndarray, temperature: float | None) -> np.ndarray:
    if not temperature:
        return np.full(len(values), 1.0 / len(values))
    weights = np.exp((values - values.max()) / temperature)
    return weights / weights.sum()


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    """Φ(x), by Abramowitz and Stegun's 7.1.26 for erf (absolute error < 1.5e-7)."""
    z = np.abs(x) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = 1.0 - poly * np.exp(-z * z)
    return 0.5 * (1.0 + np.sign(x) * erf)


def thompson_probabilities(means: np.ndarray, sds: np.ndarray) -> np.ndarray:
    """P(candidate i's draw is the largest) for independent Gaussian draws, by integration on a grid."""
    n = len(means)
    if n == 1:
        return np.ones(1)
    sds = np.maximum(sds, 1e-6)
    x = means[:, None] + sds[:, None] * _GRID[None, :]  # where candidate i's draw lands
    below = _normal_cdf((x[:, :, None] - means[None, None, :]) / sds[None, None, :])  # i × grid × j
    below[np.arange(n), :, np.arange(n)] = 1.0
    density = np.exp(-0.5 * _GRID**2)
    probabilities = (below.prod(axis=2) * density).sum(axis=1) / density.sum()
    total = probabilities.sum()
    return probabilities / total if total > 0 else np.full(n, 1.0 / n)


class TopicPolicy:
    """Topics of tasks learned from every task's words; an upper confidence bound per (topic, agent)."""

    name = "topics"

    def __init__(
        self,
        *,
        topics: int = 12,
        window: int = 3000,
        refit_every: int = 64,
        common: float = 0.1,
        em_iterations: int = 12,
        smoothing: float = 0.1,
        position_decay: float = 0.8,
        composition: str = "posterior",
        sharpen: float = 1.0,
        prior_weight: float = 2.0,
        doubt: float = 0.3,
        doubt_centre: float = 0.5,
        doubt_spread: float = 0.25,
        bonus: float | None = 1.5,
        noise: float = 0.2,
        calibration_strength: float = 1e6,
        discount: float = 0.9995,
        epsilon: float = 0.01,
        temperature: float | None = 0.05,
        drift_slack: float = 0.15,
        drift_threshold: float = 3.0,
        newcomer_after: int = 200,
        cost_lambda: float = 0.0,
        seed: int | None = None,
    ) -> None:
        self.topics, self.window, self.refit_every = topics, window, refit_every
        self.common, self.em_iterations, self.smoothing = common, em_iterations, smoothing
        self.position_decay, self.composition, self.sharpen = position_decay, composition, sharpen
        self.prior_weight, self.noise, self.calibration_strength = prior_weight, noise, calibration_strength
        self.doubt, self.doubt_spread, self.doubt_centre = doubt, doubt_spread, doubt_centre
        self.bonus = bonus
        self.discount, self.epsilon, self.temperature = discount, epsilon, temperature
        self.drift_slack, self.drift_threshold, self.cost_lambda = drift_slack, drift_threshold, cost_lambda
        self.newcomer_after = newcomer_after
        self._rng = random.Random(seed)
        self._np_rng = np.random.default_rng(seed)
        self._reset()

    def _reset(self) -> None:
        self.updates = 0
        # The window of lessons: words, agent, reward, and the features of the calibration.
        self.lesson_words: list[list[int]] = []
        self.lesson_agent: list[str] = []
        self.lesson_reward: list[float] = []
        self.lesson_at: list[int] = []  # the lesson's number (for discounting and drift resets)
        # The fitted topics: the distinctive words (sorted hashes), their weights, log p(word | topic) and
        # log p(topic).
        self.vocabulary = np.zeros(0, dtype=np.int64)
        self.word_weight = np.zeros(0)
        self.log_word = np.zeros((self.topics, 0))
        self.log_topic = np.full(self.topics, -math.log(self.topics))
        # Per agent: discounted count and reward sum per topic; drift detector; last reset.
        self.counts: dict[str, np.ndarray] = {}  # as of lesson `stamp[agent]` (discounted when read)
        self.sums: dict[str, np.ndarray] = {}
        self.stamp: dict[str, int] = {}
        self.joined: dict[str, int] = {}  # agent -> the lesson before its first
        self.cusum: dict[str, float] = {}
        self.reset_at: dict[str, int] = {}
        self.pulls: dict[str, int] = {}
        # The calibration of the prior, a ridge regression of reward on [1, capability, Q prior].
        self.cal_a = np.eye(3) * self.calibration_strength
        self.cal_b = np.asarray(SEED_BLEND) * self.calibration_strength
        self._refitted = False

    @property
    def version(self) -> int:
        return self.updates

    # -- topics ----------------------------------------------------------------------------------------------

    def _encode(
        self, words: Iterable[int], vocabulary: np.ndarray, weight: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """A task's words as (columns in `vocabulary`, values): each known word's distinctiveness, times
        `position_decay` to the power of the distinctive words before it (what a task is mainly about
        comes first; "… and also X" names a second topic)."""
        hashes = np.asarray(list(words), dtype=np.int64)
        if not len(vocabulary) or not len(hashes):
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        at = np.minimum(np.searchsorted(vocabulary, hashes), len(vocabulary) - 1)
        known = vocabulary[at] == hashes
        at, strength = at[known], weight[at[known]]
        before = np.concatenate([[0.0], np.cumsum(strength)[:-1]])
        return at, strength * self.position_decay**before

    def _encode_all(
        self, docs: list[list[int]], vocabulary: np.ndarray, weight: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """`_encode` of every task at once, as (tasks × longest) arrays padded with value 0."""
        lengths = np.asarray([len(d) for d in docs])
        width = max(1, int(lengths.max(initial=0)))
        hashes = np.asarray([h for d in docs for h in d], dtype=np.int64)
        at = np.minimum(np.searchsorted(vocabulary, hashes), len(vocabulary) - 1)
        strength = np.where(vocabulary[at] == hashes, weight[at], 0.0)
        row = np.repeat(np.arange(len(docs)), lengths)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        position = np.arange(len(hashes)) - starts[row]
        running = np.cumsum(strength)
        before = running - strength - np.concatenate([[0.0], running])[starts][row]
        columns = np.zeros((len(docs), width), dtype=np.int64)
        values = np.zeros((len(docs), width))
        columns[row, position] = at
        values[row, position] = strength * self.position_decay**before
        return columns, values

    def posterior(self, words: Iterable[int]) -> np.ndarray:
        """The task's mix of topics (the topics' shares when none of its words is known)."""
        columns, values = self._encode(words, self.vocabulary, self.word_weight)
        if not len(columns) or values.sum() <= 0:
            return np.exp(self.log_topic)
        return self._mix(columns[None, :], values[None, :], self.log_word, self.log_topic)[0]

    def _mix(
        self, columns: np.ndarray, values: np.ndarray, log_word: np.ndarray, log_topic: np.ndarray
    ) -> np.ndarray:
        """Tasks' mixes of topics: `composition` "words" averages each word's posterior over topics (a
        task that names two topics is a mix of both, as its quality is); "posterior" is the mixture
        model's posterior of the whole task."""
        if self.composition == "posterior":
            log = log_topic[None, :] + np.einsum("dw,kdw->dk", values, log_word[:, columns])
            r = np.exp(log - log.max(axis=1, keepdims=True))
            return r / r.sum(axis=1, keepdims=True)
        word_log = log_word + log_topic[:, None]  # topics × words: log p(word, topic)
        word_topic = np.exp(word_log - word_log.max(axis=0, keepdims=True))
        word_topic /= word_topic.sum(axis=0, keepdims=True)  # p(topic | word)
        if self.sharpen != 1.0:
            word_topic = word_topic**self.sharpen
            word_topic /= word_topic.sum(axis=0, keepdims=True)
        mix = np.einsum("dw,kdw->dk", values, word_topic[:, columns])
        total = values.sum(axis=1, keepdims=True)
        empty = total[:, 0] <= 0
        mix = mix / np.where(total > 0, total, 1.0)
        mix[empty] = np.exp(log_topic)
        return mix

    def refit(self) -> None:
        """Refit the topics on the window (EM, warm-started and from a fresh start; the better fit wins),
        then every agent's counts from the lessons in the window."""
        docs = self.lesson_words
        if not docs:
            return
        distinct = [np.unique(np.asarray(d, dtype=np.int64)) for d in docs]
        hashes, found_in = np.unique(np.concatenate(distinct), return_counts=True)
        weight = 1.0 / (1.0 + (found_in / len(docs) / self.common) ** 8)
        keep = weight > 0.01
        vocabulary, weight = hashes[keep], weight[keep]
        if not len(vocabulary):
            return
        columns, values = self._encode_all(docs, vocabulary, weight)
        rng = np.random.default_rng(self.updates)
        starts = [rng.dirichlet(np.full(self.topics, 0.5), size=len(docs))]
        if len(self.vocabulary):  # warm start: the previous topics' responsibilities
            starts.append(self._responsibilities(columns, values, vocabulary))
        fits = [self._em(r, columns, values, len(vocabulary)) for r in starts]
        _, self.log_word, self.log_topic = max(fits, key=lambda fit: fit[0])
        self.vocabulary, self.word_weight = vocabulary, weight
        self._recount(self._mix(columns, values, self.log_word, self.log_topic))

    def _responsibilities(
        self, columns: np.ndarray, values: np.ndarray, vocabulary: np.ndarray
    ) -> np.ndarray:
        """The previous topics' posteriors of the window's tasks (words unknown to them count for nothing)."""
        old_at = np.searchsorted(self.vocabulary, vocabulary)
        old_at = np.minimum(old_at, len(self.vocabulary) - 1)
        known = self.vocabulary[old_at] == vocabulary
        log_word = np.where(known[None, :], self.log_word[:, old_at], 0.0)  # topics × new vocabulary
        log = self.log_topic[None, :] + np.einsum("dw,kdw->dk", values, log_word[:, columns])
        r = np.exp(log - log.max(axis=1, keepdims=True))
        return r / r.sum(axis=1, keepdims=True)

    def _em(
        self, r: np.ndarray, columns: np.ndarray, values: np.ndarray, size: int
    ) -> tuple[float, np.ndarray, np.ndarray]:
        """EM from responsibilities `r`: (log likelihood, log p(word | topic), log p(topic))."""
        flat_columns = columns.ravel()
        likelihood = -math.inf
        for _ in range(self.em_iterations):
            counts = (
                np.stack(
                    [
                        np.bincount(flat_columns, weights=(r[:, k, None] * values).ravel(), minlength=size)
                        for k in range(self.topics)
                    ]
                )
                + self.smoothing
            )
            log_word = np.log(counts / counts.sum(axis=1, keepdims=True))
            mass = r.sum(axis=0) + 1.0
            log_topic = np.log(mass / mass.sum())
            log = log_topic[None, :] + np.einsum("dw,kdw->dk", values, log_word[:, columns])
            top = log.max(axis=1, keepdims=True)
            likelihood = float((top[:, 0] + np.log(np.exp(log - top).sum(axis=1))).sum())
            r = np.exp(log - top)
            r /= r.sum(axis=1, keepdims=True)
        return likelihood, log_word, log_topic

    def _recount(self, topic: np.ndarray) -> None:
        """Every agent's discounted counts per topic, from the lessons in the window (`topic`: their
        posteriors under the topics)."""
        at = np.asarray(self.lesson_at)
        agents = np.asarray(self.lesson_agent)
        rewards = np.asarray(self.lesson_reward)
        weights = topic * (self.discount ** (self.updates - at))[:, None]
        for agent in {*self.counts, *self.lesson_agent}:
            mine = (agents == agent) & (at >= self.reset_at.get(agent, 0))
            self.counts[agent] = weights[mine].sum(axis=0)
            self.sums[agent] = (weights[mine] * rewards[mine, None]).sum(axis=0)
            self.stamp[agent] = self.updates

    def _newcomer(self, agent_id: str) -> bool:
        """Whether the agent joined after the fleet was known (`newcomer_after` lessons)."""
        joined = self.joined.get(agent_id, self.updates)
        return joined >= self.newcomer_after and agent_id not in self.reset_at

    def _arm(self, agent_id: str) -> tuple[np.ndarray, np.ndarray]:
        """An agent's discounted count and reward sum per topic, as of now."""
        if agent_id not in self.counts:
            return np.zeros(self.topics), np.zeros(self.topics)
        factor = self.discount ** (self.updates - self.stamp.get(agent_id, self.updates))
        return self.counts[agent_id] * factor, self.sums[agent_id] * factor

    # -- choosing --------------------------------------------------------------------------------------------

    def _values(self, context: RoutingContext, candidates: list[Candidate]):
        shares = bucket_shares(context.description)
        words = tokens(context.description)
        topic = self.posterior(words)
        beta = np.linalg.solve(self.cal_a, self.cal_b)
        rows = np.asarray([[1.0, c.capability, _q_prior(shares, c.agent_id)] for c in candidates])
        priors = np.clip(rows @ beta, 0.0, 1.0)
        arms = [self._arm(c.agent_id) for c in candidates]
        counts = np.stack([a[0] for a in arms])
        sums = np.stack([a[1] for a in arms])
        prior = np.repeat(priors[:, None], counts.shape[1], axis=1)
        per_topic, variance = self._arm_posterior(prior, counts, sums)
        plain = per_topic @ topic  # without a newcomer's optimism: what its drift detector compares with
        # The confidence a choice reports (the review gate reads it): the same evidence, with the doubt
        # centred on the seed's blend. The doubt's centre of 0.5 makes trying a low-ranked agent worth it;
        # it is no belief that an agent is worse than its prior, so before any reward the confidence is the
        # prior (as linucb's is), not 0.7·prior + 0.15, which held every general task of a new deployment.
        expected = self._arm_posterior(prior, counts, sums, centre=prior)[0] @ topic
        late = [i for i, c in enumerate(candidates) if self._newcomer(c.agent_id)]
        if late and len(late) < len(candidates):
            # A newcomer starts, in every topic, as good as the best agent there: optimism that earns it
            # trials until its rewards say what it is worth.
            best = per_topic[[i for i in range(len(candidates)) if i not in late]].max(axis=0)
            optimistic = np.maximum(priors[late, None], best[None, :])
            per_topic[late], variance[late] = self._arm_posterior(optimistic, counts[late], sums[late])
        means = per_topic @ topic
        sds = np.sqrt(variance @ topic)
        return main_bucket(shares), words, rows, means, sds, plain, expected

    def _arm_posterior(
        self, prior: np.ndarray, counts: np.ndarray, sums: np.ndarray, centre: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance of arms' rewards given their (discounted) counts and sums. The prior is a
        mix: with chance 1 − `doubt` the seed's blend is right (worth `prior_weight` observations), with
        chance `doubt` it is wrong (a broad prior around it, sd `doubt_spread`); the evidence reweighs
        the two, so an agent whose rewards contradict a confident prior soon leaves it behind. The
        mix is reported by its mean and variance. `centre`: the broad prior's, instead of `doubt_centre`."""
        noise2 = self.noise**2
        right_var = noise2 / self.prior_weight
        precision = 1.0 / right_var + counts / noise2
        mean = (prior / right_var + sums / noise2) / precision
        if not self.doubt:
            return mean, 1.0 / precision
        wide_var = self.doubt_spread**2
        wide_precision = 1.0 / wide_var + counts / noise2
        middle = self.doubt_centre if centre is None else centre
        wide_mean = (middle / wide_var + sums / noise2) / wide_precision
        # log evidence of each prior (the terms both share dropped)
        log_right = 0.5 * (np.log(1.0 / (precision * right_var)) + mean**2 * precision - prior**2 / right_var)
        log_wide = 0.5 * (
            np.log(1.0 / (wide_precision * wide_var)) + wide_mean**2 * wide_precision - middle**2 / wide_var
        )
        odds = np.clip(log_wide - log_right + math.log(self.doubt / (1.0 - self.doubt)), -50.0, 50.0)
        wide = 1.0 / (1.0 + np.exp(-odds))
        mixed = (1 - wide) * mean + wide * wide_mean
        second = (1 - wide) * (1.0 / precision + mean**2) + wide * (1.0 / wide_precision + wide_mean**2)
        return mixed, np.maximum(second - mixed**2, 1e-12)

    def _choice(
        self, state, words, rows, means, plain, expected, candidates, picked: int, probability: float
    ) -> Choice:
        features = {
            "words": words,
            "capability": round(float(rows[picked, 1]), 6),
            "q": round(float(rows[picked, 2]), 6),
            "estimate": round(float(plain[picked]), 6),
        }
        order = sorted(range(len(candidates)), key=lambda i: (-means[i], candidates[i].agent_id))
        scores: list[dict[str, float | str]] = [
            {
                "agent_id": candidates[i].agent_id,
                "capability": candidates[i].capability,
                "q": round(float(means[i]), 4),
                "score": round(float(means[i]), 4),
            }
            for i in order
        ]
        confidence = round(min(max(float(expected[picked]), 0.0), 1.0), 4)
        return Choice(candidates[picked].agent_id, confidence, round(probability, 6), state, scores, features)

    def score(self, context: RoutingContext, candidates: list[Candidate]) -> Choice:
        state, words, rows, means, _, plain, expected = self._values(context, candidates)
        best = max(range(len(means)), key=lambda i: means[i])
        return self._choice(state, words, rows, means, plain, expected, candidates, best, 1.0)

    def _explored(self, means: np.ndarray, sds: np.ndarray) -> np.ndarray:
        """What the choice ranks: upper bounds (`bonus` sds above the mean), or the means when the choice
        is Thompson sampling; ε of the choices are a softmax of them."""
        return means if self.bonus is None else means + self.bonus * sds

    def _probabilities(self, means: np.ndarray, sds: np.ndarray) -> np.ndarray:
        if len(means) == 1:
            return np.ones(1)
        ranked = self._explored(means, sds)
        if self.bonus is None:
            chosen = thompson_probabilities(means, sds)
        else:
            chosen = np.zeros(len(means))
            chosen[int(np.argmax(ranked))] = 1.0
        return (1 - self.epsilon) * chosen + self.epsilon * _softmax(ranked, self.temperature)

    def choose(self, context: RoutingContext, candidates: list[Candidate]) -> Choice:
        state, words, rows, means, sds, plain, expected = self._values(context, candidates)
        n = len(candidates)
        ranked = self._explored(means, sds)
        if n > 1 and self._rng.random() < self.epsilon:
            picked = self._rng.choices(range(n), weights=list(_softmax(ranked, self.temperature)))[0]
        elif self.bonus is not None:
            picked = int(np.argmax(ranked))
        else:
            picked = int(np.argmax(self._np_rng.normal(means, sds)))
        probability = float(self._probabilities(means, sds)[picked])
        return self._choice(
            state, words, rows, means, plain, expected, candidates, picked, max(probability, 1e-6)
        )

    def probabilities(self, context: RoutingContext, candidates: list[Candidate]) -> dict[str, float]:
        _, _, _, means, sds, _, _ = self._values(context, candidates)
        chances = self._probabilities(means, sds)
        return {c.agent_id: float(p) for c, p in zip(candidates, chances, strict=True)}

    # -- learning --------------------------------------------------------------------------------------------

    def update(self, *, state: str, agent_id: str, reward: float, features: dict[str, Any]) -> None:
        words = features.get("words")
        if words is None or "capability" not in features:
            return  # logged by another policy: nothing this model can learn from
        words = [int(w) for w in words]
        reward = reward - self.cost_lambda * float(features.get("cost", 0.0))
        error = float(features.get("estimate", reward)) - reward
        cusum = max(0.0, self.cusum.get(agent_id, 0.0) + error - self.drift_slack)
        self.updates += 1
        if cusum > self.drift_threshold:  # the agent got worse: forget its evidence
            cusum = 0.0
            self.reset_at[agent_id] = self.updates
            self.counts[agent_id], self.sums[agent_id] = np.zeros(self.topics), np.zeros(self.topics)
        self.cusum[agent_id] = cusum
        counts, sums = self._arm(agent_id)
        r = self.posterior(words)
        self.counts[agent_id], self.sums[agent_id] = counts + r, sums + r * reward
        self.stamp[agent_id] = self.updates
        row = np.asarray([1.0, float(features["capability"]), float(features.get("q", DEFAULT_Q))])
        self.cal_a += np.outer(row, row)
        self.cal_b += reward * row
        self.lesson_words.append(words)
        self.lesson_agent.append(agent_id)
        self.lesson_reward.append(reward)
        self.lesson_at.append(self.updates)
        if len(self.lesson_words) > self.window:
            del self.lesson_words[0], self.lesson_agent[0], self.lesson_reward[0], self.lesson_at[0]
        self.pulls[agent_id] = self.pulls.get(agent_id, 0) + 1
        self.joined.setdefault(agent_id, self.updates - 1)
        u = self.updates
        self._refitted = (u >= 16 and u & (u - 1) == 0 and u < self.refit_every) or u % self.refit_every == 0
        if self._refitted:
            self.refit()

    # -- state -----------------------------------------------------------------------------------------------

    def touched(self, *, state: str, agent_id: str) -> tuple[str, ...]:
        if self._refitted:  # a refit recounted every agent
            return (GLOBAL_PART, *map(arm_part, self.counts))
        return GLOBAL_PART, arm_part(agent_id)

    def part_names(self) -> list[str]:
        return [GLOBAL_PART, *map(arm_part, sorted({*self.counts, *self.cusum, *self.pulls}))]

    def dump_parts(self, names: Iterable[str]) -> dict[str, dict[str, Any]]:
        parts: dict[str, dict[str, Any]] = {}
        for name in names:
            if name == GLOBAL_PART:
                agents = sorted(set(self.lesson_agent))
                index = {a: i for i, a in enumerate(agents)}
                parts[name] = {
                    "updates": self.updates,
                    "topics": self.topics,
                    "agents": agents,
                    "vocabulary": self.vocabulary,
                    "word_weight": self.word_weight,
                    "log_word": self.log_word,
                    "log_topic": self.log_topic,
                    "cal_a": self.cal_a,
                    "cal_b": self.cal_b,
                    "lesson_lengths": np.asarray([len(w) for w in self.lesson_words], dtype=np.int32),
                    "lesson_words": np.asarray([h for w in self.lesson_words for h in w], dtype=np.uint32),
                    "lesson_agent": np.asarray([index[a] for a in self.lesson_agent], dtype=np.int32),
                    "lesson_reward": np.asarray(self.lesson_reward, dtype=float),
                    "lesson_at": np.asarray(self.lesson_at, dtype=np.int64),
                }
                continue
            agent = name.removeprefix(ARM_PREFIX)
            part: dict[str, Any] = {
                "agent_id": agent,
                "cusum": self.cusum.get(agent),
                "reset_at": self.reset_at.get(agent),
                "pulls": self.pulls.get(agent),
                "joined": self.joined.get(agent),
                "stamp": self.stamp.get(agent),
            }
            if agent in self.counts:
                part["counts"], part["sums"] = self.counts[agent], self.sums[agent]
            parts[name] = part
        return parts

    def load_parts(self, parts: dict[str, dict[str, Any]]) -> None:
        self._reset()
        top = parts.get(GLOBAL_PART, {})
        if top.get("topics", self.topics) != self.topics:
            return  # another layout: start afresh rather than misread old counts
        self.updates = int(top.get("updates", 0))
        if "vocabulary" in top:
            self.vocabulary = np.asarray(top["vocabulary"], dtype=np.int64)
            self.word_weight = np.asarray(top["word_weight"], dtype=float)
            self.log_word = np.asarray(top["log_word"], dtype=float).reshape(self.topics, -1)
            self.log_topic = np.asarray(top["log_topic"], dtype=float)
            self.cal_a = np.asarray(top["cal_a"], dtype=float).reshape(3, 3)
            self.cal_b = np.asarray(top["cal_b"], dtype=float)
            agents = list(top["agents"])
            words = [int(h) for h in np.asarray(top["lesson_words"], dtype=np.int64)]
            ends = np.cumsum(np.asarray(top["lesson_lengths"], dtype=np.int64))
            self.lesson_words = [words[e - n : e] for e, n in zip(ends, top["lesson_lengths"], strict=True)]
            self.lesson_agent = [agents[int(i)] for i in top["lesson_agent"]]
            self.lesson_reward = [float(r) for r in top["lesson_reward"]]
            self.lesson_at = [int(a) for a in top["lesson_at"]]
        for name, part in parts.items():
            if name == GLOBAL_PART:
                continue
            agent = part["agent_id"]
            for kept, key in (
                (self.cusum, "cusum"),
                (self.reset_at, "reset_at"),
                (self.pulls, "pulls"),
                (self.joined, "joined"),
                (self.stamp, "stamp"),
            ):
                if part.get(key) is not None:
                    kept[agent] = part[key]
            if "counts" in part:
                self.counts[agent] = np.asarray(part["counts"], dtype=float)
                self.sums[agent] = np.asarray(part["sums"], dtype=float)

    def state(self) -> dict[str, Any]:
        """The whole state as JSON-able values (its parts, arrays as lists)."""
        return parts_state(self)

    def load(self, state: dict[str, Any]) -> None:
        self.load_parts(state.get("parts", {}))
