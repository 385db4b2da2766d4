"""Tasks per second through the whole platform, with an instant fake OpenAI-compatible upstream as every
agent's model (so the model costs nothing and the platform's own cost shows).

    .venv/bin/python benchmarks/throughput/run.py [--tasks 2000] [--concurrency 32]
        [--shapes sqlite,postgres,replicas]

Shapes: `sqlite` (`alp up`, one process, SQLite), `postgres` (`alp up`, one process, PostgreSQL), `replicas`
(two `alp up` processes on one PostgreSQL database sharing a NATS JetStream queue and event bus; the load
is spread over both). Each shape gets a fresh database (a new PostgreSQL database, dropped afterwards) and
unique queue and bus names. Every task is sent to `POST /assign-task` with `force_execute` by C concurrent
clients, each description different; after a warm-up, N tasks are measured from the first request until
the last task finished. Printed per shape: tasks/s, `/assign-task` p50/p99, platform CPU per task (the
servers' process CPU), time per task in each stage (`alp_task_stage_seconds` from /metrics: means over the
tasks), and lost learning updates (rewards stored for the policy minus the version every replica reaches).
Any failed request, failed task or lost update makes the run fail (exit 1) and prints no ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

HERE = Path(__file__).resolve().parent
FAKE_UPSTREAM = HERE.parent / "gateway" / "fake_upstream.py"
POSTGRES = os.environ.get("ALP_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
NATS = os.environ.get("ALP_BENCH_NATS_URL", "nats://127.0.0.1:4222")
STAGES = ("intake", "routing", "queue_wait", "execution", "persistence", "learning")

VERBS = [
    "Build",
    "Fix",
    "Review",
    "Write",
    "Deploy",
    "Analyze",
    "Test",
    "Document",
    "Tune",
    "Design",
    "Audit",
    "Plan",
]
OBJECTS = [
    "the checkout page",
    "the login API",
    "a data pipeline",
    "the README",
    "the docker image",
    "a SQL query",
    "the payment service",
    "a regression model",
    "the unit tests",
    "the search index",
    "a CSS layout",
    "the kubernetes deployment",
    "an encryption helper",
    "the sales dataset",
    "the onboarding guide",
]
DETAILS = [
    "for the mobile team",
    "before Friday",
    "with clear steps",
    "and report what changed",
    "for customer {n}",
    "in region {n}",
    "for release {n}",
    "keeping it backwards compatible",
]


def description(n: int) -> str:
    """The n-th task: a different text every time (no cache can answer it)."""
    verb, obj, detail = (
        VERBS[n % len(VERBS)],
        OBJECTS[(n // len(VERBS)) % len(OBJECTS)],
        DETAILS[n % len(DETAILS)],
    )
    return f"{verb} {obj} {detail.format(n=n)} (ticket {n})"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_up(url: str, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server at {url} exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not become ready")


def metric_sums(exposition: str) -> dict[str, float]:
    """The values of the samples this benchmark reads, by sample name and labels."""
    wanted = ("alp_task_stage_seconds_sum", "alp_task_stage_seconds_count", "process_cpu_seconds_total")
    values: dict[str, float] = {}
    for line in exposition.splitlines():
        if line.startswith(wanted):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


@dataclass
class Result:
    shape: str
    tasks: int
    seconds: float
    latencies_ms: list[float]
    cpu_s: float
    stages_ms: dict[str, float]
    rewards: int
    versions: list[int]
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.tasks / self.seconds

    @property
    def lost(self) -> int:
        return max(self.rewards - v for v in self.versions) if self.versions else self.rewards


class Shape:
    """Servers of one shape on a fresh database; stopped (and the database dropped) at the end."""

    def __init__(self, name: str, upstream: str, replicas: int, postgres: bool, distributed: bool) -> None:
        self.name, self.upstream, self.replicas = name, upstream, replicas
        self.tmp = Path(tempfile.mkdtemp(prefix=f"alp-throughput-{name}-"))
        self.database = f"alp_bench_{uuid.uuid4().hex[:12]}" if postgres else None
        self.url = (
            (POSTGRES.rsplit("/", 1)[0] + f"/{self.database}")
            if postgres
            else f"sqlite+aiosqlite:///{self.tmp / 'alp.db'}"
        )
        self.distributed = distributed
        self.processes: list[subprocess.Popen] = []
        self.urls: list[str] = []

    async def __aenter__(self) -> Shape:
        if self.database:
            await self._admin(f'CREATE DATABASE "{self.database}"')
        models = self.tmp / "models.json"
        models.write_text(
            json.dumps(
                [
                    {
                        "id": "bench",
                        "deployments": [
                            {
                                "provider": "openai-compatible",
                                "model": "bench-model",
                                "base_url": f"{self.upstream}/v1",
                                "api_key": "sk-bench",
                            }
                        ],
                    }
                ]
            )
        )
        suffix = uuid.uuid4().hex[:8]
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "ALP_DATABASE_URL": self.url,
            "ALP_MODELS_FILE": str(models),
            "ALP_LOG_LEVEL": "WARNING",
            "ALP_RATE_LIMIT": "",
            "ALP_RATE_LIMIT_WRITE": "",
        }
        if self.distributed:
            env |= {
                "ALP_QUEUE_URL": NATS,
                "ALP_QUEUE_PREFIX": f"alp.bench.{suffix}.jobs",
                "ALP_EVENT_BUS_URL": NATS,
                "ALP_EVENT_BUS_PREFIX": f"alp.bench.{suffix}.events",
            }
        alp = str(Path(sys.executable).with_name("alp"))
        for n in range(self.replicas):  # one after the other: the first migrates the database
            port = free_port()
            data_dir = self.tmp / f"replica{n}"
            log = open(self.tmp / f"replica{n}.log", "w")  # noqa: SIM115 (open while the replica runs)
            process = subprocess.Popen(
                [alp, "up", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            self.processes.append(process)
            self.urls.append(f"http://127.0.0.1:{port}")
            wait_up(self.urls[-1], process)
        async with httpx.AsyncClient(
            base_url=self.urls[0], timeout=30
        ) as client:  # every agent on the fake upstream
            for agent in (await client.get("/api/v2/agents", params={"status": "active"})).json()["items"]:
                response = await client.patch(f"/api/v2/agents/{agent['id']}", json={"model": "bench"})
                response.raise_for_status()
        return self

    async def __aexit__(self, *exc) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        if self.database:
            await self._admin(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    @staticmethod
    async def _admin(statement: str) -> None:
        engine = create_async_engine(POSTGRES, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(statement))
        await engine.dispose()

    async def count(self, query: str, **params) -> int:
        engine = create_async_engine(self.url)
        try:
            async with engine.connect() as conn:
                return int((await conn.execute(text(query), params)).scalar_one())
        finally:
            await engine.dispose()


async def send(
    urls: list[str], first: int, count: int, concurrency: int, errors: list[str]
) -> tuple[list[str], list[float]]:
    """`count` tasks from number `first` on, by `concurrency` clients spread over the replicas."""
    ids: list[str] = []
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, keepalive_expiry=2.0)
    clients = [httpx.AsyncClient(base_url=url, timeout=120, limits=limits) for url in urls]
    next_task = first

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal next_task
        while next_task < first + count:
            n, next_task = next_task, next_task + 1
            started = time.perf_counter()
            try:
                response = await client.post(
                    "/assign-task", json={"description": description(n), "force_execute": True}
                )
            except httpx.HTTPError as exc:
                errors.append(f"/assign-task: {type(exc).__name__}")
                continue
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                errors.append(f"/assign-task {response.status_code}: {response.text[:200]}")
                continue
            ids.append(response.json()["task_id"])

    try:
        await asyncio.gather(*(worker(clients[i % len(clients)]) for i in range(concurrency)))
    finally:
        for client in clients:
            await client.aclose()
    return ids, latencies


async def finished(shape: Shape, expected: int, timeout: float) -> float:
    """Wait until `expected` tasks have finished; the time it happened."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = await shape.count(
            "SELECT count(*) FROM tasks WHERE status IN ('succeeded', 'failed', 'cancelled')"
        )
        if done >= expected:
            return time.perf_counter()
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{shape.name}: only {done} of {expected} tasks finished within {timeout:.0f} s")


async def scrape(urls: list[str]) -> dict[str, float]:
    total: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=30) as client:
        for url in urls:
            for name, value in metric_sums((await client.get(f"{url}/metrics")).text).items():
                total[name] = total.get(name, 0.0) + value
    return total


async def measure(shape: Shape, tasks: int, concurrency: int, warmup: int, profile: Path | None) -> Result:
    errors: list[str] = []
    await send(shape.urls, 0, warmup, min(concurrency, warmup), errors)
    await finished(shape, warmup, 300)
    before = await scrape(shape.urls)
    profilers = (
        [
            subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "--pid",
                    str(p.pid),
                    "--format",
                    "raw",
                    "--rate",
                    "50",
                    "--nonblocking",
                    "--gil",
                    "--output",
                    str(profile / f"{shape.name}-{n}.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for n, p in enumerate(shape.processes)
        ]
        if profile
        else []
    )
    started = time.perf_counter()
    _, latencies = await send(shape.urls, warmup, tasks, concurrency, errors)
    ended = await finished(shape, warmup + tasks, 1800)
    for profiler in profilers:  # py-spy writes its file when interrupted
        profiler.send_signal(2)
        profiler.wait(60)
    after = await scrape(shape.urls)
    failed = await shape.count("SELECT count(*) FROM tasks WHERE status <> 'succeeded'")
    if failed:
        errors.append(f"{failed} tasks did not succeed")
    try:  # the rewards the policy learns from
        rewards = await shape.count("SELECT count(*) FROM rewards WHERE policy IS NOT NULL")
    except Exception:  # a release before the log of lessons: every reward of a decision
        rewards = await shape.count("SELECT count(*) FROM rewards WHERE decision_id IS NOT NULL")
    versions = await settled_versions(shape.urls)

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    stages_ms = {
        stage: 1000 * delta(f'alp_task_stage_seconds_sum{{stage="{stage}"}}') / tasks for stage in STAGES
    }
    return Result(
        shape.name,
        tasks,
        ended - started,
        latencies,
        delta("process_cpu_seconds_total"),
        stages_ms,
        rewards,
        versions,
        errors,
    )


async def settled_versions(urls: list[str], quiet_s: float = 2.0, timeout: float = 120) -> list[int]:
    """Each replica's policy version once none has changed for `quiet_s` (learning may lag behind the tasks'
    end: a reward is stored with the task, and learned after)."""
    deadline = time.monotonic() + timeout
    last: list[int] = []
    async with httpx.AsyncClient(timeout=30) as client:
        while True:
            versions = [(await client.get(f"{url}/policy")).json()["version"] for url in urls]
            if versions == last or time.monotonic() > deadline:
                return versions
            last = versions
            await asyncio.sleep(quiet_s)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def table(results: list[Result], ratios: bool) -> str:
    head = [
        "shape",
        "tasks/s",
        "vs 1st",
        "/assign-task p50 ms",
        "p99 ms",
        "CPU ms/task",
        *(f"{s} ms" for s in STAGES),
        "lost updates",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    base = results[0].rate
    for r in results:
        ratio = f"{r.rate / base:.2f}" if ratios else "—"
        lines.append(
            "| "
            + " | ".join(
                [
                    r.shape,
                    f"{r.rate:.1f}",
                    ratio,
                    f"{statistics.median(r.latencies_ms):.1f}",
                    f"{percentile(r.latencies_ms, 0.99):.1f}",
                    f"{1000 * r.cpu_s / r.tasks:.2f}",
                    *(f"{r.stages_ms[s]:.2f}" for s in STAGES),
                    str(r.lost),
                ]
            )
            + " |"
        )
    return "\n".join(lines)


SHAPES = {
    "sqlite": ("one process, SQLite", 1, False, False),
    "postgres": ("one process, PostgreSQL", 1, True, False),
    "replicas": ("two replicas, PostgreSQL + NATS", 2, True, True),
}


async def main_async(args: argparse.Namespace) -> int:
    up_port = free_port()
    upstream = subprocess.Popen([sys.executable, str(FAKE_UPSTREAM), str(up_port)])
    results: list[Result] = []
    try:
        for key in args.shapes.split(","):
            label, replicas, postgres, distributed = SHAPES[key]
            async with Shape(key, f"http://127.0.0.1:{up_port}", replicas, postgres, distributed) as shape:
                result = await measure(shape, args.tasks, args.concurrency, args.warmup, args.profile)
            result.shape = label
            results.append(result)
            print(
                f"{label}: {result.rate:.1f} tasks/s, errors {len(result.errors)}, lost {result.lost}",
                flush=True,
            )
    finally:
        upstream.terminate()
        upstream.wait(10)
    print(
        f"\nThroughput, {date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; {args.tasks} tasks at concurrency {args.concurrency} after "
        f"{args.warmup} warm-up"
    )
    bad = [(r.shape, e) for r in results for e in r.errors[:5]] + [
        (r.shape, f"{r.lost} lost learning updates") for r in results if r.lost
    ]
    print(table(results, ratios=not bad))
    for shape, error in bad:
        print(f"ERROR {shape}: {error}", file=sys.stderr)
    if args.markdown and not bad:
        args.markdown.write_text(table(results, ratios=True) + "\n")
    return 1 if bad else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=64)
    parser.add_argument("--shapes", default="sqlite,postgres,replicas")
    parser.add_argument(
        "--markdown", type=Path, help="Also write the table here (only when the run had no error)."
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="Record each server with py-spy during the measured run (collapsed "
        "stacks, one file per server, in this folder; `pip install py-spy`).",
    )
    sys.exit(asyncio.run(main_async(parser.parse_args())))


if __name__ == "__main__":
    main()
