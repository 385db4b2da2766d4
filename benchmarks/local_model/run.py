"""The local model, measured in one run:

1. tokens/s of our local provider versus llama-cpp-python called directly (same model, prompt, settings), and
   directly with llama.cpp's threads spinning while they wait (OMP_WAIT_POLICY=ACTIVE, what we turned off);
2. sentences/s of the local embeddings;
3. tasks through the platform: `alp up` as a user starts it (default settings, a fresh data dir); the same
   max(N) x waves tasks at each level, submitted N = 1, 4, 8 at once (a wave starts when the previous one
   ended); each task's time from submission to its end (followed on the event stream), p50 / p95, and the
   throughput against N = 1.

    .venv/bin/python benchmarks/local_model/run.py [--runs 3] [--max-tokens 128] [--concurrency 1,4,8]
        [--waves 2] [--platform-only]

Any task that does not succeed, any refused request or a server that exits fails the run (exit 1) and no
ratio is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path

import httpx
from httpx_sse import aconnect_sse

from agent_lightning.models.embeddings import LocalEmbedder
from agent_lightning.models.providers.local import LocalLlamaProvider, _model_params, packaged_gguf
from agent_lightning.models.schemas import ChatMessage, ChatRequest

PROMPT = "Write a short story about a lighthouse keeper and a cat."


def direct(runs: int, max_tokens: int) -> float:
    from llama_cpp import Llama

    with _model_params(False):
        llama = Llama(
            model_path=str(packaged_gguf()), n_ctx=2048, n_threads=2, flash_attn=True, verbose=False
        )
    messages = [{"role": "user", "content": PROMPT}]
    llama.create_chat_completion(messages=messages, max_tokens=8, temperature=0)
    tokens = seconds = 0.0
    for _ in range(runs):
        started = time.perf_counter()
        out = llama.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=0)
        seconds += time.perf_counter() - started
        tokens += out["usage"]["completion_tokens"]
    return tokens / seconds


async def ours(runs: int, max_tokens: int) -> float:
    provider = LocalLlamaProvider(None, threads=2, context=2048, flash_attn=True)
    request = ChatRequest(
        model="local",
        messages=[ChatMessage(role="user", content=PROMPT)],
        max_tokens=max_tokens,
        temperature=0,
    )
    await provider.chat(request.model_copy(update={"max_tokens": 8}), "local")
    tokens = seconds = 0.0
    for _ in range(runs):
        started = time.perf_counter()
        result = await provider.chat(request, "local")
        seconds += time.perf_counter() - started
        tokens += result.completion_tokens
    return tokens / seconds


async def embeddings(n: int = 512) -> float:
    embedder = LocalEmbedder(threads=2, batch_size=32)
    sentences = [f"Sentence number {i} talks about topic {i % 17} in a few more words." for i in range(n)]
    await embedder.embed(sentences[:32])
    started = time.perf_counter()
    await embedder.embed(sentences)
    return n / (time.perf_counter() - started)


def _ours(runs: int, max_tokens: int) -> float:
    return asyncio.run(ours(runs, max_tokens))


def _spinning() -> None:
    """In a fresh process, before llama.cpp loads: its OpenMP threads spin while they wait (libgomp's
    default)."""
    os.environ["OMP_WAIT_POLICY"] = "ACTIVE"


# -- tasks through the platform ------------------------------------------------------------------------------

TASKS = (
    "Explain what a race condition is in two sentences.",
    "Write a haiku about the sea.",
    "Give three tips for writing clear commit messages.",
    "What is the difference between a list and a tuple in Python?",
    "Suggest a name for a coffee shop run by robots.",
    "Summarise why unit tests are useful.",
    "Describe the water cycle briefly.",
    "List two benefits of code review.",
)
FINISHED = ("task.succeeded", "task.failed", "task.cancelled")


class BenchError(RuntimeError):
    """Anything that makes the numbers meaningless."""


class Server:
    """`alp up` on a fresh data dir, as a user starts it."""

    def __init__(self, folder: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        alp = Path(sys.executable).with_name("alp")
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "ALP_LOG_LEVEL": "WARNING"}
        self.log = (folder / "server.log").open("wb")
        self.process = subprocess.Popen(
            [str(alp), "up", "--port", str(self.port), "--data-dir", str(folder / "data")],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            self.check()
            try:
                if httpx.get(self.url + "/health/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise BenchError("alp up did not become ready")

    def check(self) -> None:
        if self.process.poll() is not None:
            raise BenchError(f"alp up exited with {self.process.returncode} (log: {self.log.name})")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


async def wave(server: Server, client: httpx.AsyncClient, n: int, first: int, timeout: float) -> list[float]:
    """N tasks submitted at once; the seconds from each submission to its end (all must succeed)."""
    ended: dict[str, float] = {}
    every = asyncio.Event()
    submitted: dict[str, float] = {}

    async def follow() -> None:
        async with aconnect_sse(
            client,
            "GET",
            "/events",
            params={"types": ",".join(FINISHED)},
            timeout=httpx.Timeout(10, read=None),
        ) as source:
            ready.set()
            async for event in source.aiter_sse():
                task_id = event.json()["data"].get("task_id")
                if event.event in FINISHED and task_id not in ended:
                    ended[task_id] = time.perf_counter()
                    if submitted and set(submitted) <= set(ended):
                        every.set()

    ready = asyncio.Event()
    stream = asyncio.create_task(follow())
    try:
        await asyncio.wait_for(ready.wait(), 30)

        async def submit(number: int) -> None:
            body = {"description": TASKS[number % len(TASKS)], "force_execute": True}
            started = time.perf_counter()
            response = await client.post("/assign-task", json=body)
            if response.status_code != 200:
                raise BenchError(f"/assign-task answered {response.status_code}: {response.text[:300]}")
            submitted[response.json()["task_id"]] = started

        await asyncio.gather(*(submit(first + i) for i in range(n)))
        if set(submitted) <= set(ended):
            every.set()
        try:
            await asyncio.wait_for(every.wait(), timeout)
        except TimeoutError:
            server.check()
            raise BenchError(
                f"{len(set(submitted) - set(ended))} of {n} tasks had not ended after {timeout:.0f} s"
            ) from None
    finally:
        stream.cancel()
    for task_id in submitted:
        task = (await client.get(f"/tasks/{task_id}")).json()
        if task["status"] != "succeeded":
            raise BenchError(f"task {task_id} {task['status']}: {task.get('error')}")
    return [ended[t] - submitted[t] for t in submitted]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def through_platform(concurrency: list[int], waves: int, timeout: float) -> list[dict]:
    with tempfile.TemporaryDirectory() as folder:
        server = Server(Path(folder))
        try:
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                await wave(server, client, 1, 0, timeout)  # warm-up: the model and the embedder load
                rows = []
                total = max(concurrency) * waves  # every level runs the same tasks, N at a time
                for n in concurrency:
                    times, started = [], time.perf_counter()
                    for first in range(0, total, n):
                        times += await wave(server, client, min(n, total - first), first, timeout)
                    wall = time.perf_counter() - started
                    queue = (await client.get("/models/local/stats")).json()["deployments"][0]["queue"]
                    rows.append(
                        {
                            "n": n,
                            "tasks": len(times),
                            "p50": statistics.median(times),
                            "p95": percentile(times, 0.95),
                            "per_min": len(times) / wall * 60,
                            "rejected": queue["rejected"],
                            "aborted": queue["aborted"],
                        }
                    )
            server.check()
        finally:
            server.stop()
    return rows


def platform_table(rows: list[dict]) -> None:
    base = rows[0]
    print(
        "\nTasks through the platform (alp up, default settings: ALP_LOCAL_CONCURRENCY=1, "
        f"ALP_LOCAL_QUEUE_SIZE=16; routed, force_execute; load average {os.getloadavg()[0]:.1f} at the end)"
    )
    print(
        f"{'N at once':>9}{'tasks':>7}{'p50 s':>8}{'p95 s':>8}{'tasks/min':>11}{'vs N=' + str(base['n']):>9}"
        f"{'refused':>9}{'aborted':>9}"
    )
    for row in rows:
        print(
            f"{row['n']:>9}{row['tasks']:>7}{row['p50']:>8.1f}{row['p95']:>8.1f}{row['per_min']:>11.1f}"
            f"{row['per_min'] / base['per_min']:>9.2f}{row['rejected']:>9}{row['aborted']:>9}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--concurrency", default="1,4,8", help="Tasks submitted at once, comma-separated.")
    parser.add_argument("--waves", type=int, default=2, help="Tasks per level: the largest N times this.")
    parser.add_argument("--timeout", type=float, default=900, help="Seconds a wave may take.")
    parser.add_argument("--platform-only", action="store_true", help="Only the tasks through the platform.")
    args = parser.parse_args()
    try:
        rows = asyncio.run(
            through_platform([int(n) for n in args.concurrency.split(",")], args.waves, args.timeout)
        )
    except BenchError as exc:
        print(f"\nFAILED: {exc}", file=sys.stderr)
        sys.exit(1)
    if not args.platform_only:
        # Each measurement in a fresh process: two llama.cpp instances in one process compete for the cores.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(1, mp_context=context) as pool:
            first = pool.submit(_ours, args.runs, args.max_tokens).result()
        with ProcessPoolExecutor(1, mp_context=context) as pool:
            direct_tps = pool.submit(direct, args.runs, args.max_tokens).result()
        with ProcessPoolExecutor(1, mp_context=context, initializer=_spinning) as pool:
            spinning_tps = pool.submit(direct, args.runs, args.max_tokens).result()
        with ProcessPoolExecutor(1, mp_context=context) as pool:
            ours_tps = (
                first + pool.submit(_ours, args.runs, args.max_tokens).result()
            ) / 2  # before and after direct
        eps = asyncio.run(embeddings())
    print(
        f"\nLocal model benchmark, {date.today()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"SmolLM2-135M-Instruct Q4_1, n_threads=2"
    )
    if not args.platform_only:
        print(f"{'path':<58}{'tokens/s':>10}")
        print(f"{'llama-cpp-python directly':<58}{direct_tps:>10.1f}")
        print(f"{'llama-cpp-python directly, threads spinning (OMP ACTIVE)':<58}{spinning_tps:>10.1f}")
        print(f"{'agent-lightning local provider':<58}{ours_tps:>10.1f}")
        print(
            f"ratio ours / direct: {ours_tps / direct_tps:.3f}  (target >= 0.95); "
            f"spinning / sleeping: {spinning_tps / direct_tps:.3f}"
        )
        print(f"embeddings all-MiniLM-L6-v2 int8 ONNX, batch 32: {eps:.0f} sentences/s")
    platform_table(rows)


if __name__ == "__main__":
    main()
