"""The routing benchmark: every policy on the same simulated task streams, against an oracle.

The environment is the default fleet plus one agent that joins part-way, six task categories, and a
hidden skill matrix that the agents' declared expertise gets partly wrong (so capability matching alone
cannot find the best agent everywhere). Task descriptions come from templates with noise: words from
another category and keyword-free phrasings, so keyword buckets are imperfect. Half the tasks have
binary rewards (Bernoulli of the skill), half graded ones (skill plus noise, clipped to [0, 1]).
Half-way, the best deployment agent degrades; later, a data specialist better than everyone joins.

Regret is expected regret: the oracle's true skill minus the chosen agent's, per task.
"""

from __future__ import annotations

import random
import statistics
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from agent_lightning.agents.fleet import DEFAULT_FLEET
from agent_lightning.agents.schemas import Agent, AgentCreate
from agent_lightning.orchestrator.matching import capability_score
from agent_lightning.orchestrator.policy import Candidate, RoutingContext, RoutingPolicy, make_policy

CATEGORIES = [
    "web_development",
    "security_task",
    "data_analysis",
    "deployment_task",
    "testing_task",
    "documentation_task",
]

WORDS = {
    "web_development": ["website", "html", "css", "frontend", "react", "page", "javascript", "form"],
    "security_task": [
        "security",
        "vulnerability",
        "xss",
        "injection",
        "encryption",
        "authentication",
        "audit",
    ],
    "data_analysis": ["data", "dataset", "statistics", "regression", "analysis", "forecast", "csv"],
    "deployment_task": ["deploy", "docker", "kubernetes", "pipeline", "infrastructure", "helm", "server"],
    "testing_task": ["test", "regression", "bug", "coverage", "pytest", "qa", "reproduce"],
    "documentation_task": ["documentation", "readme", "guide", "tutorial", "docs", "manual", "explain"],
}
PLAIN = {  # the same categories said without any keyword a bucket knows
    "web_development": "make the sign-up screen look right on phones",
    "security_task": "make sure nobody can read other customers' orders",
    "data_analysis": "find out why sales dropped last quarter",
    "deployment_task": "get the new release running for customers tonight",
    "testing_task": "check the checkout still works after the change",
    "documentation_task": "write down how new colleagues set up their laptop",
}
TEMPLATES = [
    "Please {w0} {w1} for the {thing}",
    "{w0} and {w1}: {thing}",
    "We need {w0}, {w1} and {w2} on the {thing}",
]
THINGS = ["billing service", "mobile app", "admin portal", "reporting job", "checkout", "public API"]

# Hidden skill: what each agent really achieves per category (the declared expertise is partly wrong).
SKILL = {
    "full_stack_developer": [0.85, 0.80, 0.40, 0.50, 0.55, 0.50],  # the best at security, undeclared
    "security_expert": [0.40, 0.50, 0.30, 0.40, 0.45, 0.40],  # overclaims security
    "data_scientist": [0.30, 0.20, 0.60, 0.30, 0.40, 0.50],
    "devops_engineer": [0.40, 0.50, 0.30, 0.90, 0.50, 0.40],
    "qa_tester": [0.50, 0.50, 0.40, 0.40, 0.90, 0.50],
    "technical_writer": [0.30, 0.30, 0.40, 0.30, 0.40, 0.60],
    "database_specialist": [0.40, 0.40, 0.90, 0.50, 0.40, 0.40],  # the real data expert
    "general_assistant": [0.50, 0.45, 0.50, 0.60, 0.50, 0.85],  # writes better docs than the writer
}
NEW_AGENT = AgentCreate(
    id="ml_specialist",
    name="ML Specialist",
    role="data_scientist",
    system_prompt="You are a machine-learning specialist.",
    base_confidence=0.85,
    capabilities=["analyze_data"],
    expertise=["data", "dataset", "regression", "forecast", "statistics"],
)
NEW_AGENT_SKILL = [0.30, 0.20, 0.95, 0.30, 0.40, 0.40]
DRIFTING_AGENT, DRIFTED_SKILL = "devops_engineer", [0.2] * 6


@dataclass
class Task:
    category: int
    description: str
    binary: bool
    noise: float


def task_stream(seed: int, n: int) -> Iterator[Task]:
    """`n` tasks from the templates, with noise, reproducible from `seed`."""
    rng = random.Random(seed)
    for _ in range(n):
        c = rng.randrange(len(CATEGORIES))
        name = CATEGORIES[c]
        roll = rng.random()
        if roll < 0.15:
            text = PLAIN[name]
        else:
            words = rng.sample(WORDS[name], 3)
            if roll < 0.40:  # a word from another category slips in
                other = CATEGORIES[rng.randrange(len(CATEGORIES))]
                words[rng.randrange(3)] = rng.choice(WORDS[other])
            text = rng.choice(TEMPLATES).format(
                w0=words[0], w1=words[1], w2=words[2], thing=rng.choice(THINGS)
            )
        yield Task(c, text, binary=rng.random() < 0.5, noise=rng.gauss(0, 0.1))


def hashed_embedding(text: str, dim: int = 64) -> tuple[float, ...]:
    """A bag-of-words vector by feature hashing: the simulation's stand-in for a sentence embedding."""
    vector = np.zeros(dim)
    for word in text.lower().replace(",", " ").replace(":", " ").split():
        vector[zlib.crc32(word.encode()) % dim] += 1.0
    norm = np.linalg.norm(vector)
    return tuple(vector / norm) if norm else tuple(vector)


def _agents() -> dict[str, Agent]:
    now = datetime.now(UTC)
    return {
        a.id: Agent(**a.model_dump(), version=1, created_at=now, updated_at=now)
        for a in [*DEFAULT_FLEET, NEW_AGENT]
    }


@dataclass
class RunResult:
    policy: str
    seed: int
    regret: list[float] = field(default_factory=list)  # cumulative, per task
    reward_share_2k_5k: float = 0.0
    recovery_tasks: int | None = None
    new_agent_share: float = 0.0  # of the data tasks in the last 1000, routed to the agent that joined
    decision_ms: list[float] = field(default_factory=list)


def run(
    policy: RoutingPolicy,
    seed: int,
    n: int = 5000,
    drift_at: int = 2500,
    join_at: int = 3000,
    embed: Callable[[str], tuple[float, ...] | None] = hashed_embedding,
    on_step: Callable[[], None] | None = None,
) -> RunResult:
    """Route `n` tasks of the seeded stream with `policy`, learning from each reward."""
    agents = _agents()
    skill = {a: list(s) for a, s in SKILL.items()}
    rng = random.Random(seed * 7919 + 1)
    result = RunResult(policy.name, seed)
    cumulative, oracle_sum, got_sum = 0.0, 0.0, 0.0
    drifted_choices: list[bool] = []
    late_data: list[bool] = []
    for t, task in enumerate(task_stream(seed, n)):
        if t == drift_at:
            skill[DRIFTING_AGENT] = list(DRIFTED_SKILL)
        if t == join_at:
            skill[NEW_AGENT.id] = list(NEW_AGENT_SKILL)
        active = [agents[a] for a in skill]
        candidates = [Candidate(a.id, capability_score(a, task.description).score) for a in active]
        context = RoutingContext(task.description, embedding=embed(task.description))
        started = time.perf_counter()
        choice = policy.choose(context, candidates)
        result.decision_ms.append((time.perf_counter() - started) * 1000)
        true = skill[choice.agent_id][task.category]
        best = max(s[task.category] for s in skill.values())
        if task.binary:
            reward = 1.0 if rng.random() < true else 0.0
        else:
            reward = min(1.0, max(0.0, true + task.noise))
        policy.update(state=choice.state, agent_id=choice.agent_id, reward=reward, features=choice.features)
        cumulative += best - true
        result.regret.append(cumulative)
        if 2000 <= t < 5000:
            oracle_sum += best
            got_sum += true
        if t >= drift_at and CATEGORIES[task.category] == "deployment_task":
            drifted_choices.append(choice.agent_id != DRIFTING_AGENT)
            window = drifted_choices[-20:]
            if result.recovery_tasks is None and len(window) == 20 and sum(window) >= 16:
                result.recovery_tasks = t - drift_at
        if t >= n - 1000 and CATEGORIES[task.category] == "data_analysis":
            late_data.append(choice.agent_id == NEW_AGENT.id)
        if on_step:
            on_step()
    result.reward_share_2k_5k = got_sum / oracle_sum if oracle_sum else 0.0
    result.new_agent_share = sum(late_data) / len(late_data) if late_data else 0.0
    return result


def policy_factory(name: str, seed: int) -> RoutingPolicy:
    """A fresh policy with its default parameters (the platform's defaults)."""
    return make_policy(name) if name == "capability" else make_policy(name, seed=seed)


@dataclass
class Summary:
    policy: str
    regret_1k: float
    regret_2k: float
    regret_5k: float
    share: float
    recovery: float | None
    new_agent_share: float
    decision_p50_ms: float
    regret_curve: list[float]


def summarise(results: list[RunResult]) -> Summary:
    """Mean over seeds."""

    def mean_at(i: int) -> float:
        return statistics.fmean(r.regret[min(i, len(r.regret)) - 1] for r in results)

    recoveries = [r.recovery_tasks for r in results]
    curve = list(np.mean([r.regret for r in results], axis=0))
    return Summary(
        policy=results[0].policy,
        regret_1k=mean_at(1000),
        regret_2k=mean_at(2000),
        regret_5k=mean_at(5000),
        share=statistics.fmean(r.reward_share_2k_5k for r in results),
        recovery=None if None in recoveries else statistics.fmean(recoveries),
        new_agent_share=statistics.fmean(r.new_agent_share for r in results),
        decision_p50_ms=statistics.median(ms for r in results for ms in r.decision_ms),
        regret_curve=curve,
    )


def markdown_table(summaries: list[Summary], baseline: str = "seed-q") -> str:
    """The result table, with each policy's regret at 5k as a ratio of the baseline's."""
    base = next(s for s in summaries if s.policy == baseline)
    lines = [
        "| policy | regret @1k | regret @2k | regret @5k | vs seed-q @5k | oracle reward 2k–5k "
        "| drift recovery (tasks) | new agent's share of data tasks, last 1k | decision p50 (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        recovery = "never" if s.recovery is None else f"{s.recovery:.0f}"
        lines.append(
            f"| {s.policy} | {s.regret_1k:.1f} | {s.regret_2k:.1f} | {s.regret_5k:.1f} | "
            f"{s.regret_5k / base.regret_5k:.2f} | {100 * s.share:.1f} % | {recovery} | "
            f"{100 * s.new_agent_share:.0f} % | {s.decision_p50_ms:.3f} |"
        )
    return "\n".join(lines)


POLICIES = ("seed-q", "capability", "thompson", "linucb", "shared", "topics")


EMBEDDINGS = ("hashed", "minilm", "none")


def embedding_source(kind: str, seeds: tuple[int, ...], n: int) -> Callable[[str], tuple[float, ...] | None]:
    """What the policies get as a task's embedding: hashed words (fast, no model), the platform's
    local all-MiniLM-L6-v2 (every distinct description embedded once, up front), or none."""
    return embedder(kind, lambda: {task.description for seed in seeds for task in task_stream(seed, n)})


def embedder(kind: str, texts: Callable[[], set[str]]) -> Callable[[str], tuple[float, ...] | None]:
    """The embedding of each of `texts()` (read only for `minilm`, which embeds them all at once)."""
    if kind == "hashed":
        return hashed_embedding
    if kind == "none":
        return lambda text: None
    if kind != "minilm":
        raise ValueError(f"Unknown embeddings '{kind}': choose one of {', '.join(EMBEDDINGS)}.")
    import asyncio

    from agent_lightning.models.embeddings import LocalEmbedder

    ordered = sorted(texts())
    vectors, _ = asyncio.run(LocalEmbedder().embed(ordered))
    return dict(zip(ordered, (tuple(v) for v in vectors), strict=True)).__getitem__


def run_benchmark(
    policies: tuple[str, ...] = POLICIES,
    seeds: tuple[int, ...] = (1, 2, 3),
    n: int = 5000,
    on_step: Callable[[], None] | None = None,
    embeddings: str = "hashed",
) -> list[Summary]:
    """Every policy on the same seeded streams; one summary per policy (the mean over seeds)."""
    if n < 5000:
        raise ValueError("The table reports regret at 5k tasks: run at least 5000.")
    embed = embedding_source(embeddings, seeds, n)
    return [
        summarise([run(policy_factory(name, seed), seed, n, embed=embed, on_step=on_step) for seed in seeds])
        for name in policies
    ]


def plot(summaries: list[Summary], path: str) -> None:
    """A PNG of the mean cumulative regret curves (needs matplotlib: the `bench` extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=120)
    for s in summaries:
        axes.plot(range(1, len(s.regret_curve) + 1), s.regret_curve, label=s.policy)
    axes.axvline(2500, color="grey", linestyle=":", linewidth=1)
    axes.axvline(3000, color="grey", linestyle="--", linewidth=1)
    axes.text(2520, axes.get_ylim()[1] * 0.95, "drift", fontsize=8, color="grey")
    axes.text(3020, axes.get_ylim()[1] * 0.88, "new agent", fontsize=8, color="grey")
    axes.set_xlabel("tasks")
    axes.set_ylabel("cumulative regret vs oracle")
    axes.set_title("Routing policies on the simulated fleet (mean over seeds)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
