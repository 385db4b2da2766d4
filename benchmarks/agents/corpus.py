"""The tasks of the agents benchmark: each needs a tool to be answered correctly, and is scored automatically.

Kinds (66 tasks, made from a fixed seed, so every run asks the same):

- `python` (36): arithmetic, dates and data questions whose numbers a model cannot be expected to know or do
  in its head (products of 4-digit numbers, days between dates, sums of squares, counts of primes).
- `knowledge` (18): look-ups of invented facts (codenames, owners, ports) stored in the knowledge base before
  the run: no model knows them, and the automatic context builder is off in the benchmark, so only a
  `knowledge_search` call finds them.
- `two_tools` (12): a number looked up in the knowledge base, then computed with (crates in two warehouses,
  times a factor).

Each task carries the plan a perfect tool-caller follows (`calls`), used by the scripted ceiling.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

WORDS = [
    "amber",
    "basalt",
    "cobalt",
    "dune",
    "ember",
    "fjord",
    "garnet",
    "harbor",
    "indigo",
    "juniper",
    "kestrel",
    "lagoon",
    "marble",
    "nimbus",
    "onyx",
    "pylon",
    "quartz",
    "raven",
    "sierra",
    "tundra",
    "umber",
    "vortex",
]
TEAMS = ["payments", "search", "billing", "identity", "mobile", "data", "infra", "growth", "support"]
CITIES = [
    "Oslo",
    "Bergen",
    "Turku",
    "Tartu",
    "Gdansk",
    "Porto",
    "Leeds",
    "Lyon",
    "Graz",
    "Brno",
    "Ghent",
    "Malmo",
]


@dataclass
class Task:
    kind: str
    question: str
    answer: str
    calls: list[list[tuple[str, dict]]] = field(default_factory=list)


@dataclass
class Corpus:
    tasks: list[Task]
    documents: list[tuple[str, str]]  # (title, text) stored in the knowledge base first


def _python(question: str, code: str, answer: object) -> Task:
    return Task("python", question, str(answer), [[("python", {"code": code})]])


def build(seed: int = 14) -> Corpus:
    rng = random.Random(seed)
    tasks: list[Task] = []
    for _ in range(18):
        a, b = rng.randint(1000, 9999), rng.randint(100, 999)
        tasks.append(_python(f"What is {a} * {b}?", f"print({a} * {b})", a * b))
    for _ in range(6):
        start = date(2024, 1, 1) + timedelta(days=rng.randint(0, 300))
        end = start + timedelta(days=rng.randint(40, 400))
        tasks.append(
            _python(
                f"How many days are there between {start} and {end}?",
                f"from datetime import date\nprint((date.fromisoformat('{end}') - "
                f"date.fromisoformat('{start}')).days)",
                (end - start).days,
            )
        )
    for _ in range(6):
        n = rng.randint(20, 90)
        tasks.append(
            _python(
                f"Calculate the sum of the squares of the integers from 1 to {n}.",
                f"print(sum(i * i for i in range(1, {n} + 1)))",
                sum(i * i for i in range(1, n + 1)),
            )
        )
    for _ in range(6):
        n = rng.randint(500, 5000)
        count = sum(1 for k in range(2, n) if all(k % d for d in range(2, int(k**0.5) + 1)))
        tasks.append(
            _python(
                f"How many prime numbers are there below {n}?",
                f"print(sum(1 for k in range(2, {n}) if all(k % d for d in range(2, int(k ** 0.5) + 1))))",
                count,
            )
        )
    documents: list[tuple[str, str]] = []
    words = rng.sample(WORDS, len(WORDS))
    for i, team in enumerate(TEAMS):
        codename, port = f"{words[i]}-{rng.randint(10, 99)}", rng.randint(20000, 29999)
        owner = (
            f"{rng.choice(['Ana', 'Bo', 'Chen', 'Dara', 'Eli', 'Femi'])} "
            f"{rng.choice(['Lind', 'Moreau', 'Okafor', 'Sato'])}"
        )
        documents.append(
            (
                f"The {team} service",
                f"# The {team} service\n\nThe {team} service's release codename is "
                f"{codename}. Its on-call owner is {owner}. It listens on port {port}.",
            )
        )
        query = f"{team} service"
        tasks.append(
            Task(
                "knowledge",
                f"What is the release codename of the {team} service?",
                codename,
                [[("knowledge_search", {"query": f"{query} release codename"})]],
            )
        )
        tasks.append(
            Task(
                "knowledge",
                f"Which port does the {team} service listen on?",
                str(port),
                [[("knowledge_search", {"query": f"{query} port"})]],
            )
        )
    stock = {city: rng.randint(120, 990) for city in CITIES}
    for city, crates in stock.items():
        documents.append(
            (f"Warehouse {city}", f"# Warehouse {city}\n\nThe warehouse in {city} holds {crates} crates.")
        )
    cities = list(stock)
    for i in range(12):
        first, second = cities[i], cities[(i + 5) % len(cities)]
        factor = rng.randint(3, 9)
        answer = (stock[first] + stock[second]) * factor
        tasks.append(
            Task(
                "two_tools",
                f"Look up how many crates the warehouses in {first} and {second} hold, then calculate their "
                f"total times {factor}.",
                str(answer),
                [
                    [
                        ("knowledge_search", {"query": f"warehouse in {first} crates"}),
                        ("knowledge_search", {"query": f"warehouse in {second} crates"}),
                    ],
                    [("python", {"code": f"print(({stock[first]} + {stock[second]}) * {factor})"})],
                ],
            )
        )
    return Corpus(tasks=tasks, documents=documents)


def correct(task: Task, answer: str) -> bool:
    """Whether the answer states the expected result (numbers compared without separators)."""
    cleaned = answer.replace(",", "").replace("\u202f", "").replace(" 000", "000")
    return task.answer.lower() in cleaned.lower()
