"""How hybrid search should fuse its vector and full-text rankings, chosen by measurement.

    .venv/bin/python benchmarks/retrieval/fusion.py [--tune man/templates] [--out results-fusion.md]

Each question's two candidate lists (cosine similarities and BM25 scores, as `KnowledgeService` gets them)
are collected once per corpus (see `quality.py`), then every fusion function of a grid is scored offline on
the tuning split (default: the manual-page corpus's template questions). The best of each family, chosen on
the tuning split alone, is then scored on every held-out set: the manual pages' hand-written questions and
both question sets of the Python corpus. A fusion "loses to its input" on a set when its recall@5,
recall@10 or MRR is below the better of vector and full-text search alone. The service's own fusion
(`knowledge.search.fuse`) is scored as "service now" beside reciprocal rank fusion, which it replaced.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import platform
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality

from agent_lightning.core.logging import configure_logging
from agent_lightning.knowledge import search

Fusion = Callable[[list[tuple[int, float]], list[tuple[int, float]]], dict[int, float]]


# --- fusion functions (the candidates) ---------------------------------------------------------------------


def rrf(k: float = 60, text_weight: float = 1.0, depth: int = 20) -> Fusion:
    def fuse(vector, text):
        scores: dict[int, float] = {}
        for weight, ranking in ((1.0, vector[:depth]), (text_weight, text[:depth])):
            for rank, (key, _) in enumerate(ranking, start=1):
                scores[key] = scores.get(key, 0.0) + weight / (k + rank)
        return scores

    return fuse


def _normalised(ranking: list[tuple[int, float]], how: str) -> dict[int, float]:
    if not ranking:
        return {}
    values = [score for _, score in ranking]
    top, low = max(values), min(values)
    if how == "max":  # theoretical minimum 0, observed maximum
        return {key: max(0.0, score) / top if top > 0 else 0.0 for key, score in ranking}
    if how == "minmax":
        span = top - low
        return {key: (score - low) / span if span > 0 else 1.0 for key, score in ranking}
    mean, spread = statistics.fmean(values), statistics.pstdev(values) or 1.0  # z-score
    return {key: (score - mean) / spread for key, score in ranking}


def convex(alpha: float, how: str = "max", depth: int = 20) -> Fusion:
    """alpha · vector + (1 − alpha) · text, each normalised per query; absent from a list: its minimum."""

    def fuse(vector, text):
        v, t = _normalised(vector[:depth], how), _normalised(text[:depth], how)
        v_floor, t_floor = (min(v.values()) if v else 0.0), (min(t.values()) if t else 0.0)
        if how != "z":
            v_floor = t_floor = 0.0
        return {
            key: alpha * v.get(key, v_floor) + (1 - alpha) * t.get(key, t_floor)
            for key in v.keys() | t.keys()
        }

    return fuse


def _gap(normalised: dict[int, float]) -> float:
    """How far a list's best score stands above the rest (its top-1 z-score minus the mean of its next
    four)."""
    values = sorted(normalised.values(), reverse=True)
    return max(0.0, values[0] - statistics.fmean(values[1:5])) if len(values) > 1 else 0.0


def adaptive(alpha: float, power: float = 1.0, depth: int = 20) -> Fusion:
    """Convex combination of z-scores whose weights follow each list's confidence for this query: a
    retriever whose best hit stands out of its list weighs more (alpha is the prior on vector search)."""

    def fuse(vector, text):
        v, t = _normalised(vector[:depth], "z"), _normalised(text[:depth], "z")
        if not v or not t:
            return v or t
        gv, gt = (alpha * _gap(v)) ** power, ((1 - alpha) * _gap(t)) ** power
        w = gv / (gv + gt) if gv + gt > 0 else alpha
        v_floor, t_floor = min(v.values()), min(t.values())
        return {key: w * v.get(key, v_floor) + (1 - w) * t.get(key, t_floor) for key in v.keys() | t.keys()}

    return fuse


def by_length(short: float, long: float, words: int = 4, how: str = "z", depth: int = 20) -> Fusion:
    """Convex combination with a weight per query shape: keyword queries (up to `words` words) and
    questions."""
    short_fuse, long_fuse = convex(short, how, depth), convex(long, how, depth)

    def fuse(vector, text, *, query: str = ""):
        return (short_fuse if quality.words(query) <= words else long_fuse)(vector, text)

    fuse.needs_query = True
    return fuse


def service() -> Fusion:
    """What `knowledge.search.fuse` does now."""
    return lambda vector, text: search.fuse(vector[:20], text[:20])


def only(which: str, depth: int = 20) -> Fusion:
    def fuse(vector, text):
        ranking = vector if which == "vector" else text
        return {key: 1.0 / (60 + rank) for rank, (key, _) in enumerate(ranking[:depth], start=1)}

    return fuse


def grid() -> dict[str, list[tuple[str, Fusion]]]:
    families: dict[str, list[tuple[str, Fusion]]] = {
        "rrf": [],
        "weighted rrf": [],
        "convex, max-normalised": [],
        "convex, min-max": [],
        "convex, z-score": [],
    }
    for k in (5, 10, 20, 40, 60, 100):
        for depth in (20, 40):
            families["rrf"].append((f"rrf k={k} depth={depth}", rrf(k, 1.0, depth)))
            for weight in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
                families["weighted rrf"].append(
                    (f"rrf k={k} text×{weight} depth={depth}", rrf(k, weight, depth))
                )
    for how, family in (
        ("max", "convex, max-normalised"),
        ("minmax", "convex, min-max"),
        ("z", "convex, z-score"),
    ):
        for depth in (20, 40):
            for alpha in [a / 20 for a in range(4, 20)]:
                families[family].append(
                    (f"convex {how} alpha={alpha:.2f} depth={depth}", convex(alpha, how, depth))
                )
    families["adaptive z-score (confidence)"] = [
        (f"adaptive alpha={alpha:.2f} power={power}", adaptive(alpha, power))
        for alpha in [a / 20 for a in range(4, 20)]
        for power in (0.5, 1.0, 2.0)
    ]
    families["z-score by query length"] = [
        (f"by length short={short:.2f} long={long:.2f} words<={words}", by_length(short, long, words))
        for short in [a / 10 for a in range(2, 10)]
        for long in [a / 10 for a in range(4, 11)]
        for words in (3, 5)
    ]
    return families


# --- scoring ---------------------------------------------------------------------------------------------


def evaluate(
    fusion: Fusion, loaded: Collected, rankings: list[quality.Rankings]
) -> tuple[float, float, float]:
    ranks = []
    for found in rankings:
        if getattr(fusion, "needs_query", False):
            scores = fusion(found.vector, found.text, query=found.question.text)
        else:
            scores = fusion(found.vector, found.text)
        ordered = sorted(scores, key=lambda key: -scores[key])[: quality.K]
        ranks.append(loaded.rank(found.question, [loaded.owner[key] for key in ordered]))
    return quality.scores(ranks)


def objective(result: tuple[float, float, float]) -> float:
    return sum(result) / 3


@dataclass
class Collected:
    """What scoring a fusion needs of a loaded corpus: chunk key → item, question key → item."""

    owner: dict[int, str]
    ids: dict[str, str]

    def rank(self, question: quality.Question, item_ids: list[str]) -> int | None:
        wanted = {self.ids[key] for key in question.keys}
        return next((n for n, item in enumerate(item_ids[: quality.K], start=1) if item in wanted), None)


async def collect(corpora_: list[quality.Corpus]) -> dict[str, tuple[Collected, list[quality.Rankings]]]:
    sets = {}
    for corpus in corpora_:
        async with quality.Loaded(corpus) as loaded:
            print(
                f"{corpus.name}: {len(corpus.documents)} documents, {loaded.chunks} chunks (stored in "
                f"{loaded.load_s:.0f} s)",
                flush=True,
            )
            collected = Collected(loaded.owner, loaded.ids)
            for name, questions in corpus.sets.items():
                sets[f"{corpus.name}/{name}"] = (collected, await loaded.rankings(questions))
    return sets


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tune", default="man/templates", help="the tuning split: corpus/set")
    parser.add_argument("--corpora", default="man,python", help="which corpora to load")
    parser.add_argument(
        "--rankings", type=Path, help="keep the collected rankings in this file (reused when it exists)"
    )
    parser.add_argument("--out", help="also write the report to this file")
    args = parser.parse_args()
    configure_logging("WARNING", False)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.rankings and args.rankings.exists():
        sets = pickle.loads(args.rankings.read_bytes())  # noqa: S301 (the file an earlier run wrote)
    else:
        builders = {"man": quality.man_corpus, "python": quality.python_corpus}
        sets = await collect(
            [c for c in (builders[name]() for name in args.corpora.split(",")) if c is not None]
        )
        if args.rankings:
            args.rankings.write_bytes(pickle.dumps(sets))
    if args.tune not in sets:
        raise SystemExit(f"No tuning split {args.tune!r}; there are {', '.join(sets)}")
    loaded, tuning = sets[args.tune]
    chosen: list[tuple[str, str, Fusion]] = []
    for family, candidates in grid().items():
        scored = [
            (objective(evaluate(fusion, loaded, tuning)), label, fusion) for label, fusion in candidates
        ]
        best = max(scored, key=lambda item: item[0])
        chosen.append((family, best[1], best[2]))
        print(f"{family}: best on {args.tune} {best[1]} ({best[0]:.4f})", flush=True)
    rows = [
        ("vector alone", "", only("vector")),
        ("full-text alone", "", only("text")),
        ("reciprocal rank fusion (before)", "rrf k=60 depth=20", rrf(60, 1.0, 20)),
        (
            "service now",
            f"z-scores by sureness, vector prior {search.VECTOR_PRIOR}, power {search.CONFIDENCE_POWER}",
            service(),
        ),
        *chosen,
    ]
    out = [
        f"Fusion, {date.today()}, {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; tuned on {args.tune} ({len(tuning)} questions), objective: mean of "
        "recall@5, recall@10 and MRR\n"
    ]
    for name, (loaded_, rankings) in sets.items():
        results = [(label, setting, evaluate(fusion, loaded_, rankings)) for label, setting, fusion in rows]
        best_input = [max(results[0][2][i], results[1][2][i]) for i in range(3)]
        lines = []
        for label, setting, (r5, r10, mrr) in results:
            lost = [
                m
                for m, value, best in zip(("r@5", "r@10", "MRR"), (r5, r10, mrr), best_input, strict=True)
                if value < best - 1e-9
            ]
            verdict = (
                "" if label.endswith("alone") else ("loses: " + ", ".join(lost) if lost else "never below")
            )
            lines.append([label, setting, f"{r5:.3f}", f"{r10:.3f}", f"{mrr:.3f}", verdict])
        held = "tuning split" if name == args.tune else "held out"
        out.append(f"\n{name} ({len(rankings)} questions, {held})\n")
        out.append(
            table(
                [
                    "fusion",
                    "setting (chosen on the tuning split)",
                    "recall@5",
                    "recall@10",
                    "MRR",
                    "vs best input",
                ],
                lines,
            )
        )
    report = "\n".join(out)
    print(report)
    if args.out:
        Path(args.out).write_text(report + "\n")


if __name__ == "__main__":
    asyncio.run(main())
