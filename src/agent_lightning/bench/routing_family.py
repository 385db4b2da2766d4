"""The routing benchmark family: generated worlds, so that a policy is judged on fleets and words nobody
wrote its priors for.

A world is drawn from its seed: 5–8 task categories picked from a bank of topics, each category's words a
random subset of its topic's synonyms plus made-up jargon (words no keyword list knows); 6–9 agents with
random names, a hidden skill per category (a specialist for every category, a generalist, the rest
mediocre) and declared expertise that is partly wrong (a specialty left undeclared, a category claimed but
not mastered). Descriptions come from templates: a third of them name a second category too (the task's
true quality is then 0.7 · primary + 0.3 · secondary), a fifth carry a word of an unrelated category, a
tenth say it only in jargon. Events: two specialists degrade, a mediocre agent becomes the best of a
category, a better newcomer joins, an over-claiming worse one joins, an agent leaves. Rewards are binary
(Bernoulli of the true quality) or graded (quality plus noise), in a share that differs per world.

Worlds of the tuning seeds (`TUNING_SEEDS`) are the ones policies' defaults may be tuned on; the family's
report uses the held-out seeds (`HELDOUT_SEEDS`) and today's hand-written world (`agent_lightning.bench.
routing`, stream seed 101) as one more member.

Regret is expected regret against an oracle over the agents present. Drift recovery, per degradation of an
agent the policy relied on (at least 5 of the last 10 tasks of the categories it was best at, just before):
tasks from the drift until the first task of those categories from which at most 2 of the next 10 go to it.
Newcomer share: of the tasks of the better newcomer's category, the share routed to it from 500 to 1000
tasks after it joined.
"""

from __future__ import annotations

import random
import statistics
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from agent_lightning.agents.schemas import Agent, AgentCreate
from agent_lightning.bench import routing as today
from agent_lightning.orchestrator.evaluation import LoggedDecision, evaluate
from agent_lightning.orchestrator.matching import capability_score
from agent_lightning.orchestrator.policy import Candidate, Choice, RoutingContext, RoutingPolicy

TUNING_SEEDS = tuple(range(1, 21))
HELDOUT_SEEDS = tuple(range(1001, 1011))
DEFAULT_LOGGER = "linucb"
"""The policy whose logs the family's offline evaluation reads (the platform's default)."""
OFFLINE_TASKS = 1000
TODAY = "today"
"""The name of the hand-written world of `alp bench routing` as a member of the family."""

# Topics: each a list of synonyms; a world's category takes a random subset (some are words the
# keyword buckets of `orchestrator/policy.py` know, most are not).
# fmt: off
BANK: dict[str, list[str]] = {
    "web": ["website", "html", "css", "frontend", "react", "page", "layout", "browser", "stylesheet"],
    "security": ["security", "vulnerability", "xss", "injection", "encryption", "token", "csrf"],
    "data": ["dataset", "statistics", "regression", "forecast", "csv", "metric", "cohort", "churn", "trend"],
    "deploy": ["deploy", "docker", "kubernetes", "helm", "rollout", "cluster", "container", "terraform"],
    "testing": ["test", "bug", "coverage", "pytest", "reproduce", "flaky", "assertion", "fixture", "crash"],
    "docs": ["documentation", "readme", "guide", "tutorial", "manual", "onboarding", "changelog", "faq"],
    "database": ["database", "sql", "query", "schema", "index", "migration", "replica", "deadlock"],
    "mobile": ["ios", "android", "tablet", "swipe", "gesture", "apk", "notification", "offline", "phone"],
    "ml": ["training", "embedding", "classifier", "inference", "gpu", "labels", "accuracy", "finetune"],
    "billing": ["invoice", "refund", "payment", "subscription", "tax", "chargeback", "pricing", "coupon"],
    "support": ["customer", "ticket", "complaint", "reply", "escalation", "chat", "satisfaction", "macro"],
    "design": ["logo", "mockup", "figma", "palette", "typography", "icon", "wireframe", "brand"],
    "legal": ["contract", "gdpr", "license", "compliance", "privacy", "terms", "consent", "clause"],
    "translation": ["translate", "spanish", "german", "localization", "japanese", "french", "glossary"],
}
# fmt: on
THINGS = [
    "billing service",
    "mobile app",
    "admin portal",
    "reporting job",
    "checkout",
    "public API",
    "landing site",
    "warehouse sync",
    "partner feed",
    "help centre",
    "loyalty scheme",
    "onboarding flow",
]  # fmt: skip
TEMPLATES = [
    "Please {a} {b} for the {thing}",
    "{a} and {b}: {thing}",
    "We need {a}, {b} and {c} on the {thing}",
    "Can someone look at the {a} of the {thing}? Also {b}.",
    "{thing}: the {a} is off, {b} too",
    "Quick one about {a} ({b}) in the {thing}",
    "Our {thing} needs {a} before Friday, think about {b} and {c}",
]
SECOND = [" and also {a} {b}", ", then {a} for the {b}", "; plus some {a}"]
SYLLABLES = ["ka", "zo", "ri", "ven", "tul", "mo", "qua", "ix", "bre", "dal", "nor", "pe", "sy", "gor", "lu"]
SUFFIXES = ["bot", "agent", "ai", "worker", "pilot", "smith", "desk", "crew"]
SECOND_WEIGHT = 0.3


def _jargon(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3)))


@dataclass(frozen=True)
class FamilyTask:
    category: int
    secondary: int | None
    description: str
    binary: bool
    noise: float


@dataclass(frozen=True)
class Event:
    at: int
    kind: str  # "drift" (skills change), "join" or "leave"
    agent: str
    skill: tuple[float, ...] = ()  # drift, join: the agent's skills from now on
    role: str = ""  # join: "better" or "worse"; drift: "degrade" or "improve"


@dataclass
class World:
    name: str
    categories: list[str]
    agents: dict[str, Agent]  # every agent that is ever present
    skill: dict[str, list[float]]  # the agents present at the start
    events: list[Event]
    tasks: list[FamilyTask]
    seed: int = 0


def quality(skill: list[float], task: FamilyTask) -> float:
    """An agent's expected reward on a task (its skill, mixed when the task names two categories)."""
    if task.secondary is None:
        return skill[task.category]
    return (1 - SECOND_WEIGHT) * skill[task.category] + SECOND_WEIGHT * skill[task.secondary]


def _agent(spec: AgentCreate) -> Agent:
    now = datetime.now(UTC)
    return Agent(**spec.model_dump(), version=1, created_at=now, updated_at=now)


def _best(skill: dict[str, list[float]], category: int) -> str:
    return max(skill, key=lambda a: skill[a][category])


def generate(seed: int, n: int = 5000) -> World:
    """The world of `seed`, with `n` tasks (event times scale with `n`)."""
    rng = random.Random(seed)
    names = rng.sample(sorted(BANK), rng.randint(5, 8))
    k = len(names)
    vocab = [
        rng.sample(BANK[t], min(len(BANK[t]), rng.randint(5, 8)))
        + [_jargon(rng) for _ in range(rng.randint(2, 3))]
        for t in names
    ]
    used: set[str] = set()

    def new_id() -> str:
        while (agent_id := f"{_jargon(rng)}-{rng.choice(SUFFIXES)}") in used:
            pass
        used.add(agent_id)
        return agent_id

    def declared(categories: list[int]) -> list[str]:
        words: list[str] = []
        for c in categories:
            known = [w for w in vocab[c] if w in BANK[names[c]]]
            words += rng.sample(known, min(len(known), rng.randint(2, 4)))
        return words

    specs: list[AgentCreate] = []
    skill: dict[str, list[float]] = {}
    count = rng.randint(6, 9)
    order = list(range(k))
    rng.shuffle(order)
    specialties: list[list[int]] = [[] for _ in range(count - 1)]  # the last agent is the generalist
    for i, c in enumerate(order):
        specialties[i % (count - 1)].append(c)
    for i in range(count):
        agent_id = new_id()
        if i == count - 1:
            skill[agent_id] = [rng.uniform(0.5, 0.65) for _ in range(k)]
            specs.append(
                AgentCreate(
                    id=agent_id,
                    name=agent_id,
                    system_prompt="generated",
                    base_confidence=round(rng.uniform(0.45, 0.6), 2),
                    generalist=True,
                )
            )
            continue
        base = rng.uniform(0.25, 0.5)
        levels = [min(0.6, max(0.05, base + rng.gauss(0, 0.08))) for _ in range(k)]
        for c in specialties[i]:
            levels[c] = rng.uniform(0.7, 0.92)
        skill[agent_id] = levels
        claims = [c for c in specialties[i] if rng.random() < 0.75]  # a specialty may go undeclared
        if rng.random() < 0.4:  # and a category claimed but not mastered
            claims.append(rng.randrange(k))
        specs.append(
            AgentCreate(
                id=agent_id,
                name=agent_id,
                system_prompt="generated",
                base_confidence=round(rng.uniform(0.6, 0.95), 2),
                expertise=declared(claims),
            )
        )

    # Events at distinct times, applied in order to know who is the best where.
    kinds = ["degrade", "degrade", "improve", "better", "worse", "leave"]
    windows = {"degrade": (0.3, 0.8), "improve": (0.3, 0.8), "better": (0.4, 0.7), "worse": (0.2, 0.6)}
    times = {kind: int(n * rng.uniform(*windows.get(kind, (0.3, 0.9)))) for kind in kinds[1:]}
    plan = sorted(
        [(int(n * rng.uniform(*windows["degrade"])), "degrade"), *((t, kd) for kd, t in times.items())]
    )
    present = {a: list(s) for a, s in skill.items()}
    events: list[Event] = []
    for at, kind in plan:
        if kind == "degrade":
            agent = _best(present, rng.randrange(k))
            levels = [min(s, rng.uniform(0.1, 0.3)) if s >= 0.6 else s for s in present[agent]]
            events.append(Event(at, "drift", agent, tuple(levels), "degrade"))
        elif kind == "improve":
            c = rng.randrange(k)
            agent = rng.choice([a for a in present if a != _best(present, c)])
            levels = list(present[agent])
            levels[c] = min(0.97, present[_best(present, c)][c] + 0.08)
            events.append(Event(at, "drift", agent, tuple(levels), "improve"))
        elif kind == "better":
            c = rng.randrange(k)
            levels = [rng.uniform(0.2, 0.5) for _ in range(k)]
            levels[c] = min(0.97, max(s[c] for s in present.values()) + 0.12)
            agent = new_id()
            specs.append(
                AgentCreate(
                    id=agent,
                    name=agent,
                    system_prompt="generated",
                    base_confidence=round(rng.uniform(0.6, 0.9), 2),
                    expertise=declared([c]) if rng.random() < 0.7 else [],
                )
            )
            events.append(Event(at, "join", agent, tuple(levels), "better"))
        elif kind == "worse":
            agent = new_id()
            levels = [rng.uniform(0.15, 0.35) for _ in range(k)]
            specs.append(
                AgentCreate(
                    id=agent,
                    name=agent,
                    system_prompt="generated",
                    base_confidence=0.95,
                    expertise=declared([rng.randrange(k)]),
                )
            )
            events.append(Event(at, "join", agent, tuple(levels), "worse"))
        elif len(present) > 3:  # never fewer than three agents
            newcomers = {e.agent for e in events if e.kind == "join"}
            events.append(Event(at, "leave", rng.choice(sorted(set(present) - newcomers))))
        else:
            continue
        _apply(present, events[-1])

    binary_share = rng.uniform(0.3, 0.7)
    noise_sd = rng.uniform(0.05, 0.15)
    things = rng.sample(THINGS, 6)
    tasks = []
    for _ in range(n):
        c = rng.randrange(k)
        second = rng.randrange(k) if rng.random() < 0.33 else None
        if second == c:
            second = None
        if rng.random() < 0.1:  # jargon only: no keyword a matcher knows
            jargon = [w for w in vocab[c] if w not in BANK[names[c]]]
            words = [rng.choice(jargon) for _ in range(3)]
        else:
            words = rng.sample(vocab[c], 3)
            if rng.random() < 0.2:  # a word of an unrelated category slips in
                words[rng.randrange(3)] = rng.choice(vocab[rng.randrange(k)])
        text = rng.choice(TEMPLATES).format(a=words[0], b=words[1], c=words[2], thing=rng.choice(things))
        if second is not None:
            other = rng.sample(vocab[second], 2)
            text += rng.choice(SECOND).format(a=other[0], b=other[1])
        tasks.append(FamilyTask(c, second, text, rng.random() < binary_share, rng.gauss(0, noise_sd)))
    return World(f"world-{seed}", names, {s.id: _agent(s) for s in specs}, skill, events, tasks, seed)


def _apply(present: dict[str, list[float]], event: Event) -> None:
    if event.kind == "leave":
        del present[event.agent]
    else:
        present[event.agent] = list(event.skill)


def today_world(seed: int = 101, n: int = 5000) -> World:
    """The hand-written world of `alp bench routing` (its stream `seed`) as a member of the family."""
    tasks = [
        FamilyTask(t.category, None, t.description, t.binary, t.noise) for t in today.task_stream(seed, n)
    ]
    agents = today._agents()
    drift_at, join_at = n // 2, n * 3 // 5
    events = [
        Event(drift_at, "drift", today.DRIFTING_AGENT, tuple(today.DRIFTED_SKILL), "degrade"),
        Event(join_at, "join", today.NEW_AGENT.id, tuple(today.NEW_AGENT_SKILL), "better"),
    ]
    return World(
        TODAY,
        list(today.CATEGORIES),
        agents,
        {a: list(s) for a, s in today.SKILL.items()},
        events,
        tasks,
        seed,
    )


def members(spec: str) -> tuple[int | str, ...]:
    """The worlds named by `spec`: `heldout` (today's and the held-out seeds), `tuning`, or a comma list of
    generator seeds and `today`."""
    if spec == "heldout":
        return (TODAY, *HELDOUT_SEEDS)
    if spec == "tuning":
        return TUNING_SEEDS
    named = [s.strip() for s in spec.split(",") if s.strip()]
    if not named or not all(s == TODAY or s.isdigit() for s in named):
        raise ValueError(f"--worlds: heldout, tuning, or comma-separated seeds and '{TODAY}' (got '{spec}').")
    return tuple(s if s == TODAY else int(s) for s in named)


def world(seed: int | str, n: int = 5000) -> World:
    """A member of the family: a generator seed, or `today` (its stream seed 101)."""
    return today_world(n=n) if seed == TODAY else generate(int(seed), n)


@dataclass
class WorldResult:
    policy: str
    world: str
    regret: list[float] = field(default_factory=list)  # cumulative, per task
    recoveries: list[int | None] = field(default_factory=list)  # per degradation; None: never
    newcomer_share: float | None = None  # the better newcomer's share of its category, 500–1000 tasks in
    worse_share: float | None = None  # the worse newcomer's share of all tasks, 500–1000 tasks in
    decision_ms: list[float] = field(default_factory=list)
    log: list[tuple] = field(default_factory=list)  # (context, candidates, chosen, probability, reward)


class Router(Protocol):
    """What the simulation needs of a policy (every `RoutingPolicy` is one)."""

    name: str

    def choose(self, context: RoutingContext, candidates: list[Candidate]) -> Choice: ...

    def update(self, *, state: str, agent_id: str, reward: float, features: dict[str, Any]) -> None: ...


def run_world(
    policy: Router,
    w: World,
    *,
    seed: int = 0,
    keep_log: bool = False,
    capabilities: list[dict[str, float]] | None = None,
    embeddings: list[tuple[float, ...] | None] | None = None,
) -> WorldResult:
    """Route the world's tasks with `policy`, learning from each reward (reward draws seeded by `seed`)."""
    rng = random.Random(w.seed * 7919 + seed)
    present = {a: list(s) for a, s in w.skill.items()}
    events = sorted(w.events, key=lambda e: e.at)
    capabilities = capabilities or capability_table(w)
    if embeddings is None:
        embeddings = [today.hashed_embedding(t.description) for t in w.tasks]
    result = WorldResult(policy.name, w.name)
    cumulative = 0.0
    watches: list[dict] = []  # per degradation: its agent, categories, start, and the affected choices
    joined: dict[str, tuple[int, int, str]] = {}  # newcomer -> (joined at, its best category, role)
    newcomer_hits: list[bool] = []
    recent: deque[tuple[int, str]] = deque(maxlen=500)  # (category, agent) of the last tasks
    worse_hits: list[bool] = []
    e = 0
    for t, task in enumerate(w.tasks):
        while e < len(events) and events[e].at <= t:
            event = events[e]
            if event.kind == "drift" and event.role == "degrade":
                affected = {c for c in range(len(w.categories)) if _best(present, c) == event.agent}
                before = [a == event.agent for c, a in recent if c in affected][-10:]
                if len(before) == 10 and sum(before) >= 5:  # only where the policy relied on the agent
                    watches.append({"agent": event.agent, "cats": affected, "at": t, "hits": []})
            _apply(present, event)
            if event.kind == "join":
                joined[event.agent] = (
                    t,
                    max(range(len(event.skill)), key=event.skill.__getitem__),
                    event.role,
                )
            e += 1
        caps = capabilities[t]
        candidates = [Candidate(a, caps[a]) for a in present]
        context = RoutingContext(task.description, embedding=embeddings[t])
        started = time.perf_counter()
        choice = policy.choose(context, candidates)
        result.decision_ms.append((time.perf_counter() - started) * 1000)
        true = quality(present[choice.agent_id], task)
        best = max(quality(s, task) for s in present.values())
        if task.binary:
            reward = 1.0 if rng.random() < true else 0.0
        else:
            reward = min(1.0, max(0.0, true + task.noise))
        policy.update(state=choice.state, agent_id=choice.agent_id, reward=reward, features=choice.features)
        if keep_log:
            result.log.append(
                (context, candidates, choice.state, choice.agent_id, choice.probability, reward)
            )
        cumulative += best - true
        result.regret.append(cumulative)
        recent.append((task.category, choice.agent_id))
        for watch in watches:
            if task.category in watch["cats"]:
                watch["hits"].append((t, choice.agent_id == watch["agent"]))
        for agent, (at, category, role) in joined.items():
            if at + 500 <= t < at + 1000:
                if role == "better" and task.category == category:
                    newcomer_hits.append(choice.agent_id == agent)
                elif role == "worse":
                    worse_hits.append(choice.agent_id == agent)
    for watch in watches:
        hits = watch["hits"]
        found = next(
            (
                hits[i][0] - watch["at"]
                for i in range(len(hits) - 9)
                if sum(h for _, h in hits[i : i + 10]) <= 2
            ),
            None,
        )
        result.recoveries.append(found)
    result.newcomer_share = statistics.fmean(newcomer_hits) if newcomer_hits else None
    result.worse_share = statistics.fmean(worse_hits) if worse_hits else None
    return result


def capability_table(w: World) -> list[dict[str, float]]:
    """Every agent's capability score on every task (the same for every policy: computed once)."""
    return [
        {a: capability_score(agent, t.description).score for a, agent in w.agents.items()} for t in w.tasks
    ]


@dataclass
class Spread:
    mean: float
    sd: float

    def __str__(self) -> str:
        return f"{self.mean:.1f} ± {self.sd:.1f}"


def spread(values: list[float]) -> Spread:
    return Spread(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0)


@dataclass
class FamilySummary:
    policy: str
    worlds: int
    regret_1k: Spread
    regret_2k: Spread
    regret_5k: Spread
    vs_seed_q: Spread  # per world: regret at the end / seed-q's in the same world
    recovery: Spread | None  # over every degradation that was recovered from
    never_recovered: int
    degradations: int
    newcomer_share: Spread | None
    worse_share: Spread | None
    decision_p50_ms: float
    regret_curve: list[float]
    # Offline evaluation on the logging policy's decisions (the last `OFFLINE_TASKS` of each world), per
    # world: this policy's doubly robust and IPS estimates (its state at the end of its own run), and its
    # own regret over those tasks online. Empty without a logging policy in the run.
    doubly_robust: list[float] = field(default_factory=list)
    ips: list[float] = field(default_factory=list)
    window_regret: list[float] = field(default_factory=list)
    min_probability: float | None = None  # the logging policy's: its smallest logged probability


def summarise(results: list[WorldResult], baseline: list[WorldResult]) -> FamilySummary:
    """One policy over the worlds (`baseline`: seed-q's runs of the same worlds, in the same order)."""

    def at(r: WorldResult, i: int) -> float:
        return r.regret[min(i, len(r.regret)) - 1]

    recoveries = [x for r in results for x in r.recoveries]
    recovered = [x for x in recoveries if x is not None]
    shares = [r.newcomer_share for r in results if r.newcomer_share is not None]
    worse = [r.worse_share for r in results if r.worse_share is not None]
    n = min(len(r.regret) for r in results)
    return FamilySummary(
        policy=results[0].policy,
        worlds=len(results),
        regret_1k=spread([at(r, 1000) for r in results]),
        regret_2k=spread([at(r, 2000) for r in results]),
        regret_5k=spread([at(r, 5000) for r in results]),
        vs_seed_q=spread(
            [r.regret[-1] / max(b.regret[-1], 1e-9) for r, b in zip(results, baseline, strict=True)]
        ),
        recovery=spread(recovered) if recovered else None,
        never_recovered=len(recoveries) - len(recovered),
        degradations=len(recoveries),
        newcomer_share=spread([100 * s for s in shares]) if shares else None,
        worse_share=spread([100 * s for s in worse]) if worse else None,
        decision_p50_ms=statistics.median(ms for r in results for ms in r.decision_ms),
        regret_curve=list(np.mean([r.regret[:n] for r in results], axis=0)),
        window_regret=[r.regret[-1] - r.regret[-min(OFFLINE_TASKS, len(r.regret) // 5) - 1] for r in results],
        min_probability=min((entry[4] for r in results for entry in r.log), default=None),
    )


def kendall_tau(a: list[float], b: list[float]) -> float:
    """Kendall's rank correlation of two lists of values (ties count for neither side)."""
    pairs = [(i, j) for i in range(len(a)) for j in range(i + 1, len(a))]
    score = sum(np.sign(a[i] - a[j]) * np.sign(b[i] - b[j]) for i, j in pairs)
    return float(score / len(pairs)) if pairs else 1.0


def offline_report(summaries: list[FamilySummary], logger: str) -> str:
    """Whether IPS and DR estimates on the logging policy's decisions rank the policies as their online
    regret over the same tasks does: Kendall's τ per world (mean ± sd), and in how many worlds each
    estimate's best policy is the online best."""
    evaluated = [s for s in summaries if s.doubly_robust]
    if len(evaluated) < 2:
        return ""
    worlds = len(evaluated[0].doubly_robust)
    lines = []
    for label, values in (("doubly robust", "doubly_robust"), ("IPS", "ips")):
        taus, best = [], 0
        for w in range(worlds):
            estimate = [getattr(s, values)[w] for s in evaluated]
            online = [-s.window_regret[w] for s in evaluated]  # less regret: more reward
            taus.append(kendall_tau(estimate, online))
            best += int(np.argmax(estimate)) == int(np.argmax(online))
        lines.append(
            f"{label}: Kendall τ with the online ranking {spread(taus).mean:.2f} ± {spread(taus).sd:.2f}, "
            f"the same best policy in {best} of {worlds} worlds"
        )
    logged = next((s.min_probability for s in summaries if s.policy == logger), None)
    return (
        f"Offline evaluation on `{logger}`'s logs (last {OFFLINE_TASKS} tasks of each world; each policy's "
        f"state at the end of its own run; smallest logged probability {logged:.2g}): "
        + "; ".join(lines)
        + "."
    )


def markdown_table(summaries: list[FamilySummary]) -> str:
    """Mean ± standard deviation over the worlds, per policy."""
    lines = [
        (
            "| policy | regret @1k | regret @2k | regret @5k | vs seed-q @5k | drift recovery (tasks) "
            "| better newcomer's share of its category | worse newcomer's share | decision p50 (ms) |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        recovery = "never" if s.recovery is None else str(s.recovery)
        recovery += (
            f" ({s.never_recovered}/{s.degradations} never)"
            if s.never_recovered
            else f" (n={s.degradations})"
        )
        lines.append(
            f"| {s.policy} | {s.regret_1k} | {s.regret_2k} | {s.regret_5k} | "
            f"{s.vs_seed_q.mean:.2f} ± {s.vs_seed_q.sd:.2f} | {recovery} | "
            f"{s.newcomer_share or 'n/a'} % | {s.worse_share or 'n/a'} % | {s.decision_p50_ms:.3f} |"
        )
    return "\n".join(lines)


class CategoryUCB:
    """A reference no router can be: it is told each task's primary category and keeps an upper confidence
    bound per (agent, category), discounted like the learning policies. What is left of its regret is the
    price of learning the skills themselves (and of the drifts and newcomers), not of reading the words."""

    name = "category-ucb"

    def __init__(self, w: World, seed: int = 0, alpha: float = 1.0, discount: float = 0.998) -> None:
        self.category = {t.description: t.category for t in w.tasks}
        self.alpha, self.discount = alpha, discount
        self.stats: dict[tuple[str, int], tuple[float, float]] = {}

    def choose(self, context: RoutingContext, candidates: list[Candidate]) -> Choice:
        c = self.category[context.description]

        def bound(agent: str) -> float:
            n, total = self.stats.get((agent, c), (0.0, 0.0))
            return (total + 1.0) / (n + 2.0) + self.alpha * 0.5 / (n + 2.0) ** 0.5  # prior: 0.5, 2 draws

        best = max((cand.agent_id for cand in candidates), key=bound)
        return Choice(best, 1.0, 1.0, str(c), [], {"category": c})

    def update(self, *, state: str, agent_id: str, reward: float, features: dict[str, Any]) -> None:
        key = (agent_id, features["category"])
        n, total = self.stats.get(key, (0.0, 0.0))
        self.stats[key] = (n * self.discount + 1.0, total * self.discount + reward)


class CategoryThompson:
    """The reference told each task's primary category, with Thompson sampling instead of an upper bound:
    a Gaussian posterior per (agent, category) (prior 0.5 worth one observation, noise `noise`), evidence
    discounted by `discount` at each of the agent's updates, and a one-sided CUSUM per agent that forgets
    its evidence when it starts doing clearly worse than estimated (as the learning policies do). Its
    regret is about what a router that read every task's category right would still pay."""

    name = "category-ts"

    def __init__(
        self,
        w: World,
        seed: int = 0,
        noise: float = 0.25,
        discount: float = 0.999,
        drift_slack: float = 0.15,
        drift_threshold: float = 3.0,
    ) -> None:
        self.category = {t.description: t.category for t in w.tasks}
        self.noise, self.discount = noise, discount
        self.drift_slack, self.drift_threshold = drift_slack, drift_threshold
        self.stats: dict[str, dict[int, tuple[float, float]]] = {}
        self.cusum: dict[str, float] = {}
        self._rng = np.random.default_rng(seed)

    def _posterior(self, agent: str, c: int) -> tuple[float, float]:
        n, total = self.stats.get(agent, {}).get(c, (0.0, 0.0))
        return (0.5 + total) / (1.0 + n), self.noise / (1.0 + n) ** 0.5

    def choose(self, context: RoutingContext, candidates: list[Candidate]) -> Choice:
        c = self.category[context.description]
        posteriors = [self._posterior(cand.agent_id, c) for cand in candidates]
        draws = [self._rng.normal(m, sd) for m, sd in posteriors]
        best = int(np.argmax(draws))
        return Choice(
            candidates[best].agent_id, 1.0, 1.0, str(c), [], {"category": c, "estimate": posteriors[best][0]}
        )

    def update(self, *, state: str, agent_id: str, reward: float, features: dict[str, Any]) -> None:
        cusum = max(0.0, self.cusum.get(agent_id, 0.0) + features["estimate"] - reward - self.drift_slack)
        arms = self.stats.setdefault(agent_id, {})
        if cusum > self.drift_threshold:
            cusum = 0.0
            arms.clear()
        self.cusum[agent_id] = cusum
        for key, (n, total) in arms.items():
            arms[key] = (n * self.discount, total * self.discount)
        n, total = arms.get(features["category"], (0.0, 0.0))
        arms[features["category"]] = (n + 1.0, total + reward)


REFERENCES: dict[str, Callable[..., Router]] = {
    CategoryUCB.name: CategoryUCB,
    CategoryThompson.name: CategoryThompson,
}
"""Policies that are told each task's category (no router can be): what reading the words right is worth."""


def run_family(
    policies: tuple[str, ...],
    worlds: tuple[int | str, ...],
    n: int = 5000,
    factory: Callable[[str, int], RoutingPolicy] = today.policy_factory,
    on_step: Callable[[], None] | None = None,
    embeddings: str = "hashed",
    logger: str | None = DEFAULT_LOGGER,
) -> list[FamilySummary]:
    """Every policy on every world (seed-q first: the baseline of the ratios); one summary per policy.
    `embeddings`: what the policies get as a task's embedding (`hashed`, `minilm` or `none`). When the
    `logger` policy runs, its decisions of the last `OFFLINE_TASKS` tasks of each world are the log on
    which every other learning policy is evaluated offline (IPS and doubly robust, `orchestrator/
    evaluation.py`), with its state at the end of its own run."""
    names = ("seed-q", *[p for p in policies if p != "seed-q"])
    results: dict[str, list[WorldResult]] = {name: [] for name in names}
    offline: dict[str, dict[str, list[float]]] = {name: {"dr": [], "ips": []} for name in names}
    for i, seed in enumerate(worlds):
        w = world(seed, n)
        capabilities = capability_table(w)
        embed = today.embedder(embeddings, lambda: {t.description for t in w.tasks})  # noqa: B023
        vectors = [embed(t.description) for t in w.tasks]
        learned: dict[str, Any] = {}
        for name in names:
            reference = REFERENCES.get(name)
            policy = reference(w, seed=i + 1) if reference else factory(name, i + 1)
            result = run_world(
                policy, w, capabilities=capabilities, embeddings=vectors, keep_log=name == logger
            )
            results[name].append(result)
            if not reference:
                learned[name] = policy
            if on_step:
                on_step()
        if logger in learned:
            window = min(OFFLINE_TASKS, n // 5)
            log = [LoggedDecision(*entry) for entry in results[logger][-1].log[-window:]]
            for name, policy in learned.items():
                report = evaluate(policy, log)
                offline[name]["dr"].append(report.doubly_robust.value)
                offline[name]["ips"].append(report.ips.value)
    summaries = [summarise(results[name], results["seed-q"]) for name in names]
    for s in summaries:
        s.doubly_robust, s.ips = offline[s.policy]["dr"], offline[s.policy]["ips"]
        if not s.doubly_robust:
            s.window_regret = []
    return summaries


def plot(summaries: list[FamilySummary], path: str) -> None:
    """A PNG of the mean cumulative regret curves over the worlds (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=120)
    for s in summaries:
        axes.plot(range(1, len(s.regret_curve) + 1), s.regret_curve, label=s.policy)
    axes.set_xlabel("tasks")
    axes.set_ylabel("cumulative regret vs oracle")
    axes.set_title(f"Routing policies on {summaries[0].worlds} held-out generated worlds (mean)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
