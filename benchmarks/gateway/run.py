"""Added latency and throughput of our /v1/chat/completions versus the LiteLLM proxy, both in front of the
same instant fake upstream on loopback, with the same load, measured in one run.

    .venv/bin/python benchmarks/gateway/run.py [--litellm-venv /tmp/alp-bench-litellm] [--requests 2000]

LiteLLM is installed from PyPI into its own venv (created if missing; `pip install 'litellm[proxy]'`).
Each server runs as one process with one worker; the load generator is a separate process (aiohttp).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import aiohttp

HERE = Path(__file__).resolve().parent
KEY = "sk-" + "5a17" * 16  # LiteLLM refuses to start without a strong master key; sent to every target
BODY = {"model": "bench", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((url.split(":")[1][2:], int(url.rsplit(":", 1)[1])), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not start")


async def load(url: str, requests: int, concurrency: int) -> tuple[list[float], float, int]:
    """Latencies (ms) of `requests` POSTs sent by `concurrency` workers, wall time, errors."""
    latencies: list[float] = []
    errors = 0
    remaining = requests
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers={"Authorization": f"Bearer {KEY}"}) as session:

        async def worker() -> None:
            nonlocal remaining, errors
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                async with session.post(f"{url}/v1/chat/completions", json=BODY) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                latencies.append((time.perf_counter() - started) * 1000)

        for _ in range(min(50, requests)):  # warm up connections and code paths
            async with session.post(f"{url}/v1/chat/completions", json=BODY) as response:
                await response.read()
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return latencies, wall, errors


def measure(url: str, requests: int, concurrency: int) -> dict[str, float]:
    latencies, wall, errors = asyncio.run(load(url, requests, concurrency))
    ordered = sorted(latencies)
    return {
        "p50": statistics.median(ordered),
        "p95": ordered[int(0.95 * (len(ordered) - 1))],
        "rps": len(latencies) / wall,
        "errors": errors,
    }


def ensure_litellm(venv: Path) -> Path:
    exe = venv / "bin" / "litellm"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "litellm[proxy]"], check=True)
    return exe


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--litellm-venv", type=Path, default=Path("/tmp/alp-bench-litellm"))
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--latency-requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--skip-litellm", action="store_true")
    args = parser.parse_args()

    procs: list[subprocess.Popen] = []
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    try:
        up_port = free_port()
        procs.append(subprocess.Popen([sys.executable, str(HERE / "fake_upstream.py"), str(up_port)], env=env))
        upstream = f"http://127.0.0.1:{up_port}"
        ours_port = free_port()
        procs.append(subprocess.Popen([sys.executable, str(HERE / "gateway_server.py"), str(ours_port), upstream], env=env))
        targets = {"fake upstream (direct)": upstream, "agent-lightning": f"http://127.0.0.1:{ours_port}"}
        if not args.skip_litellm:
            exe = ensure_litellm(args.litellm_venv)
            config = Path(tempfile.mkdtemp(prefix="alp-bench-litellm-")) / "config.yaml"
            config.write_text(
                "model_list:\n  - model_name: bench\n    litellm_params:\n      model: openai/bench-model\n"
                f"      api_base: {upstream}/v1\n      api_key: sk-bench\n"
            )
            lite_port = free_port()
            lite_env = {**env, "LITELLM_LOG": "ERROR", "DISABLE_ADMIN_UI": "True", "LITELLM_TELEMETRY": "False", "LITELLM_MASTER_KEY": KEY}
            procs.append(
                subprocess.Popen(
                    [str(exe), "--config", str(config), "--port", str(lite_port), "--num_workers", "1"],
                    env=lite_env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            targets["litellm proxy"] = f"http://127.0.0.1:{lite_port}"
            version = subprocess.run([str(args.litellm_venv / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('litellm'))"], capture_output=True, text=True).stdout.strip()
        for url in targets.values():
            wait_until_up(url)
        time.sleep(2)

        results = {}
        for name, url in targets.items():
            single = measure(url, args.latency_requests, 1)
            loaded = measure(url, args.requests, args.concurrency)
            results[name] = (single, loaded)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)

    base = results["fake upstream (direct)"][0]["p50"]
    print(f"\nGateway benchmark, {date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    if "litellm proxy" in results:
        print(f"LiteLLM {version}, one worker, no database; each server one process")
    print(f"{'target':<24}{'p50 c=1 ms':>12}{'added p50 ms':>14}{'p95 c=1 ms':>12}{f'req/s c={args.concurrency}':>14}{'errors':>8}")
    added = {}
    for name, (single, loaded) in results.items():
        added[name] = single["p50"] - base
        print(f"{name:<24}{single['p50']:>12.2f}{added[name]:>14.2f}{single['p95']:>12.2f}{loaded['rps']:>14.0f}{single['errors'] + loaded['errors']:>8}")
    if "litellm proxy" in results:
        ours, lite = results["agent-lightning"], results["litellm proxy"]
        print(f"\nadded latency p50, ours / LiteLLM: {added['agent-lightning'] / added['litellm proxy']:.3f}  (target <= 0.1)")
        print(f"throughput, ours / LiteLLM:        {ours[1]['rps'] / lite[1]['rps']:.1f}x  (target >= 10x)")


if __name__ == "__main__":
    main()
