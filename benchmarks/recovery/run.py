"""Recovery time after a worker dies (docs "Limits and recovery").

    .venv/bin/python benchmarks/recovery/run.py [--kills 5] [--heartbeat 2] [--lease 5] [--rate 4]
                                                [--database-url URL] [--redis-url URL]

Two replicas run every service (`alp up`, as a user starts them), share one database (by default a fresh
PostgreSQL database on 127.0.0.1:5432, dropped at the end) and a Redis Streams queue (a prefix of this run's
own), and call a fake model that takes 1 s per answer. Tasks arrive at one replica at a steady rate below
capacity; the other is killed (SIGKILL) `--kills` times and started again after each kill. For every task the
killed replica held:

- takeover: from the kill until a sweep requeued the task (the end of its abandoned attempt);
- rerun: from the kill until the task's next attempt started.

The baseline is the heartbeat of the same run (ALP_HEARTBEAT_S); the target is a takeover within 3 heartbeats.
The run fails (exit 1, no ratios printed) when a request errs, or a task is lost, does not succeed, or has
other than one succeeded attempt and one outcome reward.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, datetime
from pathlib import Path

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from agent_lightning.core.db import Database, utcnow
from agent_lightning.orchestrator.tables import AttemptRow, RewardRow, TaskRow

HERE = Path(__file__).parent
ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
MODEL_DELAY_S = 1.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not start")


class Replica:
    """One `alp up` process with every service."""

    def __init__(self, name: str, env: dict[str, str], data_dir: Path, log: Path) -> None:
        self.name, self.env, self.data_dir, self.log = name, env, data_dir, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "agent_lightning.cli",
                    "up",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                ],
                env=self.env,
                stdout=log,
                stderr=log,
            )
        wait_healthy(self.url, self.process)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()


async def fresh_database(url: str | None) -> tuple[str, object]:
    """The database to use, and how to drop it afterwards (nothing to drop for a given URL)."""
    if url:

        async def keep() -> None:
            return None

        return url, keep
    name = f"alp_bench_recovery_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()

    async def drop() -> None:
        engine = create_async_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await engine.dispose()

    return ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", drop


async def feed(url: str, rate: float, stop: asyncio.Event, task_ids: list[str], errors: list[str]) -> None:
    """Submit tasks at `rate` per second until `stop`."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        pending: set[asyncio.Task] = set()

        async def submit(n: int) -> None:
            try:
                response = await client.post(
                    "/assign-task",
                    json={"description": f"Deploy the API with docker #{n}", "force_execute": True},
                )
            except httpx.HTTPError as exc:
                errors.append(f"submit: {type(exc).__name__}")
                return
            if response.status_code != 200:
                errors.append(f"submit: {response.status_code} {response.text[:200]}")
                return
            task_ids.append(response.json()["task_id"])

        n = 0
        while not stop.is_set():
            job = asyncio.create_task(submit(n))
            pending.add(job)
            job.add_done_callback(pending.discard)
            n += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1 / rate)
        await asyncio.gather(*pending)


async def finished(db: Database, task_ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with db.session() as session:
            left = await session.scalar(
                select(func.count())
                .select_from(TaskRow)
                .where(TaskRow.status.not_in(("succeeded", "failed", "cancelled")))
            )
        if not left:
            return
        await asyncio.sleep(0.5)
    raise RuntimeError(f"{left} tasks did not finish within {timeout} s")


async def check(db: Database, task_ids: list[str]) -> tuple[list[AttemptRow], list[str]]:
    """Every attempt, and what is wrong with the tasks (nothing, if the run is sound)."""
    problems = []
    async with db.session() as session:
        tasks = {t.id: t for t in await session.scalars(select(TaskRow))}
        attempts = list(
            await session.scalars(select(AttemptRow).order_by(AttemptRow.task_id, AttemptRow.number))
        )
        rewards = dict(
            (
                await session.execute(
                    select(RewardRow.task_id, func.count())
                    .where(RewardRow.source == "outcome")
                    .group_by(RewardRow.task_id)
                )
            ).all()
        )
    for task_id in task_ids:
        task = tasks.get(task_id)
        if task is None:
            problems.append(f"{task_id}: lost")
            continue
        if task.status != "succeeded":
            problems.append(f"{task_id}: {task.status} ({task.error})")
        succeeded = sum(1 for a in attempts if a.task_id == task_id and a.status == "succeeded")
        if succeeded != 1:
            problems.append(f"{task_id}: {succeeded} succeeded attempts")
        if rewards.get(task_id) != 1:
            problems.append(f"{task_id}: {rewards.get(task_id)} outcome rewards")
    return attempts, problems


def takeovers(attempts: list[AttemptRow], kills: list[datetime]) -> list[tuple[list[float], list[float]]]:
    """Per kill: the takeover and rerun seconds of each task the killed replica held."""
    by_task: dict[str, dict[int, AttemptRow]] = {}
    for attempt in attempts:
        by_task.setdefault(attempt.task_id, {})[attempt.number] = attempt
    out = []
    for k, killed in enumerate(kills):
        until = kills[k + 1] if k + 1 < len(kills) else None
        took, reran = [], []
        for attempt in attempts:
            if not (attempt.error or "").startswith("abandoned") or attempt.finished_at is None:
                continue
            if attempt.started_at < killed <= attempt.finished_at and (
                until is None or attempt.finished_at < until
            ):
                took.append((attempt.finished_at - killed).total_seconds())
                following = by_task[attempt.task_id].get(attempt.number + 1)
                if following is not None:
                    reran.append((following.started_at - killed).total_seconds())
        out.append((took, reran))
    return out


async def run(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="alp-recovery-"))
    database_url, drop = await fresh_database(args.database_url)
    upstream_port = free_port()
    upstream = subprocess.Popen(
        [
            sys.executable,
            str(HERE.parent / "gateway" / "fake_upstream.py"),
            str(upstream_port),
            str(MODEL_DELAY_S),
        ]
    )
    models_file = tmp / "models.json"
    models_file.write_text(
        json.dumps(
            [
                {
                    "id": "local",
                    "deployments": [
                        {
                            "provider": "openai-compatible",
                            "model": "bench-model",
                            "base_url": f"http://127.0.0.1:{upstream_port}/v1",
                            "api_key": "sk-bench",
                        }
                    ],
                }
            ]
        )
    )
    prefix = f"alp.bench.recovery.{uuid.uuid4().hex[:10]}"
    env = {
        **os.environ,
        "ALP_DATABASE_URL": database_url,
        "ALP_QUEUE_URL": args.redis_url,
        "ALP_QUEUE_PREFIX": prefix,
        "ALP_HEARTBEAT_S": str(args.heartbeat),
        "ALP_LEASE_S": str(args.lease),
        "ALP_MODELS_FILE": str(models_file),
        "ALP_RATE_LIMIT": "0",
        "ALP_POLICY_EMBEDDINGS": "false",
        "ALP_KNOWLEDGE_BUDGET_TOKENS": "0",
        "ALP_ALERT_INTERVAL_S": "0",
        "ALP_LOG_LEVEL": "WARNING",
        "HF_HUB_OFFLINE": "1",
    }
    log = tmp / "replicas.log"
    survivor = Replica("survivor", env, tmp / "survivor", log)
    victim = Replica("victim", env, tmp / "victim", log)
    db = Database(database_url)
    errors: list[str] = []
    task_ids: list[str] = []
    kills: list[datetime] = []
    rng = random.Random(7)
    try:
        survivor.start()  # migrates first
        victim.start()
        stop = asyncio.Event()
        feeding = asyncio.create_task(feed(survivor.url, args.rate, stop, task_ids, errors))
        for k in range(args.kills):
            await asyncio.sleep(rng.uniform(3, 6))  # work flows through both replicas
            kills.append(utcnow())
            victim.kill()
            print(f"kill {k + 1}: {len(task_ids)} tasks submitted so far", file=sys.stderr)
            await asyncio.sleep(args.lease + 3 * args.heartbeat)  # its tasks are taken over meanwhile
            await asyncio.to_thread(victim.start)
        await asyncio.sleep(3)
        stop.set()
        await feeding
        await finished(db, task_ids, timeout=120)
        attempts, problems = await check(db, task_ids)
    finally:
        await db.close()
        survivor.stop()
        victim.stop()
        upstream.terminate()
        await drop()
    problems = errors + problems
    if problems:
        print(
            f"FAILED: {len(problems)} problems (replica logs: {log}):",
            *problems[:20],
            sep="\n  ",
            file=sys.stderr,
        )
        return 1
    rows = takeovers(attempts, kills)
    if not any(took for took, _ in rows):
        print("FAILED: the killed replica never held a task; nothing was measured", file=sys.stderr)
        return 1
    backend = "PostgreSQL" if database_url.startswith("postgresql") else "SQLite"
    print(
        f"\nRecovery after SIGKILL, {date.today()}, {platform.machine()}, {os.cpu_count()} CPUs, {backend}, "
        f"Redis Streams, two replicas, heartbeat {args.heartbeat} s, lease {args.lease} s, "
        f"{len(task_ids)} tasks at {args.rate}/s, model {MODEL_DELAY_S} s per answer\n"
    )
    print(
        "| kill | tasks taken over | takeover median (s) | takeover max (s) | rerun max (s) | "
        "takeover max / heartbeat |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    every = []
    for k, (took, reran) in enumerate(rows, 1):
        every.extend(took)
        if not took:
            print(f"| {k} | 0 | – | – | – | – |")
            continue
        print(
            f"| {k} | {len(took)} | {statistics.median(took):.2f} | {max(took):.2f} | "
            f"{max(reran) if reran else float('nan'):.2f} | {max(took) / args.heartbeat:.2f} |"
        )
    print(
        f"| all | {len(every)} | {statistics.median(every):.2f} | {max(every):.2f} | | "
        f"{max(every) / args.heartbeat:.2f} |"
    )
    print(f"\n{len(task_ids)} tasks: every one succeeded once, with one outcome reward; no request failed.")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--heartbeat", type=float, default=2.0)
    parser.add_argument("--lease", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=4.0, help="tasks per second")
    parser.add_argument("--database-url", default=None, help="default: a fresh database on 127.0.0.1:5432")
    parser.add_argument(
        "--redis-url", default=os.environ.get("ALP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    sys.exit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
