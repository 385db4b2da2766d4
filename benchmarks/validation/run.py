"""Validation benchmark: what scanning costs, at intake and in logs, and what it blocks.

    .venv/bin/python benchmarks/validation/run.py [--tasks 300] [--markdown results.md]

Tables (every ratio is against a baseline measured in the same run):

1. Accuracy: recall on the labelled attack set (attacks.jsonl: tune and held-out parts, and the held-out part
   by obfuscation), false positives on the platform's texts and on hand-written hard negatives.
2. Scan cost per text, check by check, over the platform's texts (baseline: the input check alone).
3. Intake latency, POST /assign-task on the running app (SQLite, tasks held for review so nothing runs),
   with ALP_VALIDATION_ENABLED=false as the baseline.
4. Logging: one structured log line rendered to JSON, with and without the PII processor.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import structlog

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from attacks import load as load_attacks
from corpus import ATTACKS, HARD_BENIGN, platform_texts

from agent_lightning.app import create_app
from agent_lightning.core.config import Settings
from agent_lightning.core.pii import mask_log_event
from agent_lightning.validation import rules
from agent_lightning.validation.service import ValidationService


def table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def accuracy(service: ValidationService, texts: list[str]) -> str:
    """Recall on the labelled attack set (tuned on `tune`, reported on `heldout` too) and false positives on
    the platform's texts and the hand-written hard negatives; plus the payloads and secrets of `ATTACKS`."""
    blocked = lambda text: service._scan_fields({"description": text}).blocked  # noqa: E731
    labelled = load_attacks()
    rows = []
    for split in ("tune", "heldout"):
        part = [a for a in labelled if a["split"] == split]
        hits = sum(blocked(a["text"]) for a in part)
        rows.append(
            [
                f"attacks, {split} part (obfuscated injections, 9 languages)",
                len(part),
                hits,
                f"recall {hits / len(part):.3f}",
            ]
        )
    for name, benign in (
        ("platform texts (routing stream, fleet, test suite, tasks about security)", texts),
        ("hard negatives (injection words in ordinary work, encodings, other languages)", HARD_BENIGN),
    ):
        false = [t for t in benign if blocked(t)]
        for text in false:
            print("blocked a benign text:", text[:100], file=sys.stderr)
        rows.append([name, len(benign), len(false), f"false-positive rate {len(false) / len(benign):.4f}"])
    rows.append(
        ["payloads and secrets (`corpus.ATTACKS`)", len(ATTACKS), sum(blocked(t) for t in ATTACKS), "-"]
    )
    by_how = {}
    for a in labelled:
        if a["split"] == "heldout":
            total, hits = by_how.get(a["obfuscation"], (0, 0))
            by_how[a["obfuscation"]] = (total + 1, hits + blocked(a["text"]))
    detail = table(
        ["held-out attacks by obfuscation", "count", "recall"],
        [[how, total, f"{hits / total:.3f}"] for how, (total, hits) in sorted(by_how.items())],
    )
    return table(["texts", "count", "blocked", "measure"], rows) + "\n\n" + detail


def scan_cost(texts: list[str], repeat: int = 3) -> str:
    steps = [
        ("input (baseline)", lambda t: list(rules.check_input(t, 20_000))),
        ("+ injection", lambda t: list(rules.check_injection(t))),
        ("+ secrets (detect-secrets)", lambda t: list(rules.check_secrets(t))),
        ("+ html (nh3)", lambda t: rules.check_html(t)),
        ("+ pii", lambda t: list(rules.check_pii(t))),
    ]
    for _, fn in steps:  # warm up (plugins, regexes, schwifty)
        for t in texts[:20]:
            fn(t)
    rows, cumulative, base = [], 0.0, None
    for name, fn in steps:
        best = min(_timed(lambda fn=fn: [fn(t) for t in texts]) for _ in range(repeat))
        cumulative += best / len(texts) * 1e6
        base = base or cumulative
        rows.append([name, f"{cumulative:.1f}", f"{1e6 / cumulative:,.0f}", f"{cumulative / base:.1f}×"])
    mean_chars = statistics.mean(len(t) for t in texts)
    return table(
        [f"checks (texts of {mean_chars:.0f} chars on average)", "µs per text", "texts/s", "ratio"], rows
    )


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


async def intake(texts: list[str], n: int) -> str:
    """Both configurations run side by side and take turns, so that load from elsewhere hits both alike."""
    from contextlib import AsyncExitStack

    from scripted import scripted_models

    labels = {False: "validation off (baseline)", True: "validation on"}
    latencies: dict[bool, list[float]] = {False: [], True: []}
    async with AsyncExitStack() as stack:
        clients = {}
        for enabled in (False, True):
            tmp = stack.enter_context(tempfile.TemporaryDirectory())
            settings = Settings(
                _env_file=None,
                data_dir=Path(tmp),
                log_level="ERROR",
                rate_limit="0",
                confidence_threshold=1.01,
                validation_enabled=enabled,
                policy_embeddings=False,
            )
            models, _ = scripted_models(settings)
            app = create_app(settings, model_service=models)
            await stack.enter_async_context(app.router.lifespan_context(app))
            clients[enabled] = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://alp")
            )
        for i in range(n):
            text = texts[i % len(texts)]
            for enabled in (False, True) if i % 2 else (True, False):
                started = time.perf_counter()
                answer = await clients[enabled].post("/assign-task", json={"description": text})
                latencies[enabled].append((time.perf_counter() - started) * 1000)
                if answer.status_code != 200:  # a failed request fails the run, before any ratio
                    raise RuntimeError(f"/assign-task answered {answer.status_code}: {answer.text[:300]}")
    results = {}
    for enabled, values in latencies.items():
        values = values[10:]  # warm-up
        results[labels[enabled]] = (statistics.median(values), statistics.quantiles(values, n=20)[18])
    base_p50, _ = results[labels[False]]
    rows = [
        [label, f"{p50:.2f}", f"{p95:.2f}", f"{p50 / base_p50:.2f}×", f"{p50 - base_p50:+.2f}"]
        for label, (p50, p95) in results.items()
    ]
    return table(
        ["POST /assign-task (tasks held for review)", "p50 ms", "p95 ms", "p50 ratio", "added p50 ms"], rows
    )


def logging_cost(n: int = 5000) -> str:
    event = {
        "event": "attempt_failed",
        "task_id": "7c1f3089a1b2c3d4",
        "attempt": 2,
        "retry": True,
        "error": "upstream said: quota exceeded for ada@example.com (429)",
        "timestamp": "2026-12-02T01:10:00Z",
        "level": "warning",
        "correlation_id": "0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c",
    }
    render = structlog.processors.JSONRenderer()
    rows, base = [], None
    for label, chain in (
        ("JSON line (baseline)", [render]),
        ("PII masking + JSON line", [mask_log_event, render]),
    ):

        def run(chain=chain) -> None:
            out = io.StringIO()
            for _ in range(n):
                value = dict(event)
                for processor in chain:
                    value = processor(None, "warning", value)
                out.write(value)

        best = min(_timed(run) for _ in range(3)) / n * 1e6
        base = base or best
        rows.append([label, f"{best:.1f}", f"{best / base:.1f}×"])
    return table(["one log event", "µs", "ratio"], rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=300, help="Tasks submitted per intake configuration.")
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    texts = platform_texts()
    service = ValidationService(settings=Settings(_env_file=None), db=None)
    sections = [
        ("Accuracy", accuracy(service, texts)),
        ("Scan cost", scan_cost(texts)),
        ("Intake latency", asyncio.run(intake(texts, args.tasks))),
        ("Logging", logging_cost()),
    ]
    out = "\n\n".join(f"### {title}\n\n{body}" for title, body in sections)
    print(out)
    if args.markdown:
        args.markdown.write_text(out + "\n")


if __name__ == "__main__":
    main()
