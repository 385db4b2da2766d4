"""Request overhead of OpenTelemetry tracing: the one-process platform with tracing off (the baseline) and on,
measured in one run.

    .venv/bin/python benchmarks/tracing/run.py [--requests 300] [--rounds 3]

Configurations (each run in its own process, the configurations interleaved round after round; a row reports
the median over rounds of each round's figure):

- off: ALP_TRACING=false (the default).
- on, no export: spans made and sampled, handed to no exporter (what log correlation alone costs).
- on, OTLP: spans batched and sent over OTLP/HTTP to a receiver on loopback (this process, another thread).
- on, OTLP, statement spans: the same with ALP_TRACING_DB=true (a span per database statement).

Requests go in-process (httpx.ASGITransport, so no network noise), one at a time, to an instant model
provider: the numbers are the platform's own cost, which the tracing adds to. Measured per request (p50):
`GET /tasks/{id}` (a read), `POST /api/v2/agents/execute` (agent, knowledge, memory, model call, records) and
a task's round trip (`POST /assign-task` until the worker's `task.succeeded` event: routing, queue, attempt);
and the process's CPU time per iteration of the three (every thread, so the exporter's batches count, flushed
at the end). Ratios are taken against the baseline of the same round, then the median over rounds.

Any failed request or task, or a configuration's process that fails, fails the run (exit 1) before any ratio
is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CONFIGS = {
    "off": {"ALP_TRACING": "false"},
    "on, no export": {"ALP_TRACING": "true", "ALP_OTEL_EXPORTER": "none", "ALP_TRACING_DB": "false"},
    "on, OTLP": {"ALP_TRACING": "true", "ALP_OTEL_EXPORTER": "otlp", "ALP_TRACING_DB": "false"},
    "on, OTLP, statement spans": {
        "ALP_TRACING": "true",
        "ALP_OTEL_EXPORTER": "otlp",
        "ALP_TRACING_DB": "true",
    },
}
MEASURES = ("read", "execute", "task")
LABELS = {
    "read": "GET /tasks/{id}",
    "execute": "POST execute",
    "task": "task round trip",
    "cpu": "CPU per iteration (all three)",
}


# -- one configuration, in a child process ---------------------------------------------------------------


async def measure(requests: int) -> dict[str, list[float]]:
    import httpx

    from agent_lightning.app import create_app
    from agent_lightning.core.config import Settings
    from agent_lightning.models.schemas import ChatRequest, ChatResult
    from agent_lightning.models.service import ModelService

    class Instant:
        name = "instant"

        def available(self) -> tuple[bool, str]:
            return True, "instant"

        async def chat(self, request: ChatRequest, provider_model: str) -> ChatResult:
            return ChatResult(
                content="done",
                model=request.model,
                provider=self.name,
                provider_model=provider_model,
                prompt_tokens=20,
                completion_tokens=1,
            )

    with tempfile.TemporaryDirectory() as data:
        settings = Settings(
            _env_file=None,
            data_dir=Path(data),
            log_level="ERROR",
            rate_limit="0",
            policy_embeddings=False,
            knowledge_budget_tokens=0,
            q_epsilon=0.0,
            policy_seed=1,
        )
        models = ModelService(default_model="local")
        models.register_provider(Instant())
        models.register_alias("local", provider="instant", provider_model="instant-1")
        app = create_app(settings, model_service=models)
        platform_ = app.state.platform
        async with app.router.lifespan_context(app):
            finished: dict[str, asyncio.Event] = {}

            async def on_done(event) -> None:
                if event.type != "task.succeeded":
                    failures.append(f"task {event.data['task_id']}: {event.type} {event.data.get('error')}")
                finished.setdefault(event.data["task_id"], asyncio.Event()).set()

            failures: list[str] = []
            for ending in ("task.succeeded", "task.failed", "task.cancelled"):
                platform_.bus.subscribe(ending, on_done)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://alp") as client:
                results: dict[str, list[float]] = {m: [] for m in MEASURES}

                async def task() -> tuple[str, float]:
                    started = time.perf_counter()
                    body = {"description": "Write a Python function that parses dates", "force_execute": True}
                    response = await client.post("/assign-task", json=body)
                    if response.status_code != 200:
                        raise BenchError(
                            f"/assign-task answered {response.status_code}: {response.text[:300]}"
                        )
                    task_id = response.json()["task_id"]
                    await asyncio.wait_for(finished.setdefault(task_id, asyncio.Event()).wait(), 60)
                    if failures:
                        raise BenchError(failures[0])
                    return task_id, time.perf_counter() - started

                async def read(task_id: str) -> float:
                    started = time.perf_counter()
                    response = await client.get(f"/tasks/{task_id}")
                    if response.status_code != 200:
                        raise BenchError(
                            f"/tasks/{{id}} answered {response.status_code}: {response.text[:300]}"
                        )
                    return time.perf_counter() - started

                async def execute() -> float:
                    started = time.perf_counter()
                    answer = await client.post(
                        "/api/v2/agents/execute",
                        json={"task": "Explain CAP", "agent_id": "general_assistant"},
                    )
                    if answer.status_code != 200:
                        raise BenchError(
                            f"/api/v2/agents/execute answered {answer.status_code}: {answer.text[:300]}"
                        )
                    return time.perf_counter() - started

                for _ in range(20):  # warm-up
                    task_id, _ = await task()
                    await read(task_id)
                    await execute()
                cpu = time.process_time()  # every thread of the process: the exporter's work counts too
                for _ in range(requests):
                    task_id, seconds = await task()
                    results["task"].append(seconds)
                    results["read"].append(await read(task_id))
                    results["execute"].append(await execute())
                if platform_.settings.tracing:
                    from agent_lightning.core import tracing

                    tracing.current_provider().force_flush()  # the batches still waiting cost CPU too
                results["cpu"] = [(time.process_time() - cpu) / requests]
    return results


class BenchError(RuntimeError):
    """Anything that makes the numbers meaningless."""


def child(requests: int) -> None:
    results = asyncio.run(measure(requests))
    print(
        json.dumps(
            {
                m: {"p50": statistics.median(v) * 1000, "mean": statistics.fmean(v) * 1000}
                for m, v in results.items()
            }
        )
    )


# -- the driver ------------------------------------------------------------------------------------------


class Receiver:
    """A minimal OTLP/HTTP endpoint: reads and acknowledges every export, counts the bytes."""

    def __init__(self) -> None:
        counts = self.counts = {"exports": 0, "bytes": 0}

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers["Content-Length"])
                self.rfile.read(size)
                counts["exports"] += 1
                counts["bytes"] += size
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def run_config(name: str, requests: int, receiver: Receiver) -> dict:
    env = {**os.environ, **CONFIGS[name], "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}
    done = subprocess.run(
        [sys.executable, __file__, "--child", "--requests", str(requests)],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise BenchError(
            f"configuration {name!r} failed (exit {done.returncode}): {done.stderr.strip()[-500:]}"
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args.requests)
        return
    receiver = Receiver()
    rounds: dict[str, list[dict]] = {name: [] for name in CONFIGS}
    try:
        for number in range(args.rounds):
            for name in CONFIGS:
                rounds[name].append(run_config(name, args.requests, receiver))
                print(f"round {number + 1}: {name} done", file=sys.stderr)
    except BenchError as exc:
        print(f"\nFAILED: {exc}", file=sys.stderr)
        sys.exit(1)

    def figure(name: str, measure_: str, stat: str) -> float:
        return statistics.median(r[measure_][stat] for r in rounds[name])

    print(
        f"\nTracing overhead, {date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} "
        f"CPUs, Python {platform.python_version()}; {args.requests} requests of each kind per configuration "
        f"and round, median of {args.rounds} rounds; SQLite; instant model"
    )

    def ratio(name: str, measure_: str) -> float:  # per round against that round's baseline, then the median
        return statistics.median(
            r[measure_]["p50"] / off[measure_]["p50"]
            for r, off in zip(rounds[name], rounds["off"], strict=True)
        )

    header = "| configuration |" + "".join(
        f" {LABELS[m]} {'ms' if m == 'cpu' else 'p50 ms'} | ratio |" for m in (*MEASURES, "cpu")
    )
    print(header)
    print("|---|" + "---:|---:|" * (len(MEASURES) + 1))
    for name in CONFIGS:
        cells = "".join(f" {figure(name, m, 'p50'):.2f} | {ratio(name, m):.2f} |" for m in (*MEASURES, "cpu"))
        print(f"| {name} |{cells}")
    print(f"\nOTLP receiver: {receiver.counts['exports']} exports, {receiver.counts['bytes'] / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
