"""Added latency and throughput of our /v1/chat/completions in front of an instant fake upstream, against the
fake upstream alone, measured in one run (and optionally the LiteLLM proxy in front of the same upstream).

    .venv/bin/python benchmarks/gateway/run.py [--seconds 10] [--rounds 3]
        [--litellm-venv /tmp/alp-bench-litellm]

The load is wrk (Debian package `wrk`: a C load generator, so that the client costs little of the 2 CPUs).
Each server is one process; ours is the models service as `alp serve models` runs it, with the rate limiter
off (one client at a thousand requests a second is what a limiter refuses; its 429s are not the path being
measured). Every round measures every target at concurrency 1 (latency percentiles), 16 and 64 (requests
per second), in the same order; the table holds the median of the rounds. "added" is ours minus the fake
upstream's at the same percentile; "CPU ms/request" is the server process's own CPU time (user + system,
from /proc) divided by the requests it served, which contention on the machine changes little.

Any error (a non-2xx answer, a socket error, a server that exits) fails the run (exit 1) before any ratio is
printed.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEY = "sk-" + "5a17" * 16  # LiteLLM refuses to start without a strong master key; sent to every target
BODY = '{"model": "bench", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}'
CONCURRENCY = (1, 16, 64)
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


class BenchError(RuntimeError):
    """Anything that makes the numbers meaningless."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(port: int, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"a server exited with {process.returncode} before it listened")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise BenchError(f"nothing listened on port {port}")


@dataclass
class Target:
    name: str
    url: str
    process: subprocess.Popen
    results: dict[int, list[dict[str, float]]] = field(default_factory=dict)

    def cpu_s(self) -> float:
        """User + system CPU seconds of the server process (and its children, for LiteLLM's workers)."""
        total = 0.0
        for pid in [self.process.pid, *_children(self.process.pid)]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total


def _children(pid: int) -> list[int]:
    found = []
    for path in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(child) for child in path.read_text().split()]
    return found


def wrk(url: str, concurrency: int, seconds: float, script: Path) -> dict[str, float]:
    """One wrk run: p50/p90/p99 latency (ms), requests/s, requests; errors raise."""
    threads = 1 if concurrency == 1 else 2
    done = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{concurrency}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(script),
            f"{url}/v1/chat/completions",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    out = done.stdout
    if done.returncode != 0:
        raise BenchError(f"wrk exited with {done.returncode}: {(done.stderr + done.stdout).strip()[:300]}")
    for problem in ("Non-2xx or 3xx responses", "Socket errors"):
        if problem in out:
            line = next(line for line in out.splitlines() if problem in line)
            raise BenchError(f"{url} at c={concurrency}: {line.strip()}")
    result = {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": float(re.search(r"(\d+) requests in", out).group(1)),
    }
    for percentile in ("50", "90", "99"):
        value, unit = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        result[f"p{percentile}"] = float(value) * _UNITS[unit]
    if result["requests"] == 0:
        raise BenchError(f"{url} answered no request at c={concurrency}")
    return result


def start(cmd: list[str], env: dict[str, str], port: int, quiet: bool = True) -> subprocess.Popen:
    process = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.DEVNULL if quiet else None,
        stderr=subprocess.DEVNULL if quiet else None,
    )
    wait_until_up(port, process)
    return process


def litellm(venv: Path, upstream: str, env: dict[str, str]) -> tuple[subprocess.Popen, str, str]:
    exe = venv / "bin" / "litellm"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "litellm[proxy]"], check=True)
    config = Path(tempfile.mkdtemp(prefix="alp-bench-litellm-")) / "config.yaml"
    config.write_text(
        "model_list:\n  - model_name: bench\n    litellm_params:\n      model: openai/bench-model\n"
        f"      api_base: {upstream}/v1\n      api_key: sk-bench\n"
    )
    port = free_port()
    lite_env = {
        **env,
        "LITELLM_LOG": "ERROR",
        "DISABLE_ADMIN_UI": "True",
        "LITELLM_TELEMETRY": "False",
        "LITELLM_MASTER_KEY": KEY,
    }
    process = start(
        [str(exe), "--config", str(config), "--port", str(port), "--num_workers", "1"], lite_env, port
    )
    version = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return process, f"http://127.0.0.1:{port}", version


def median(target: Target, concurrency: int, key: str) -> float:
    return statistics.median(run[key] for run in target.results[concurrency])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--litellm-venv", type=Path, help="also measure the LiteLLM proxy (installed there if missing)"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise BenchError("wrk is not installed (Debian: apt-get install wrk)")

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ALP_RATE_LIMIT": "0"}
    script = Path(tempfile.mkdtemp(prefix="alp-bench-wrk-")) / "post.lua"
    script.write_text(
        f"wrk.method = 'POST'\nwrk.body = '{BODY}'\nwrk.headers['Content-Type'] = 'application/json'\n"
        f"wrk.headers['Authorization'] = 'Bearer {KEY}'\n"
    )
    targets: list[Target] = []
    version = ""
    try:
        port = free_port()
        upstream = f"http://127.0.0.1:{port}"
        targets.append(
            Target(
                "fake upstream (direct)",
                upstream,
                start([sys.executable, str(HERE / "fake_upstream.py"), str(port)], env, port),
            )
        )
        port = free_port()
        targets.append(
            Target(
                "agent-lightning",
                f"http://127.0.0.1:{port}",
                start(
                    [sys.executable, str(HERE / "gateway_server.py"), str(port), upstream],
                    env,
                    port,
                    quiet=False,
                ),
            )
        )
        if args.litellm_venv:
            process, url, version = litellm(args.litellm_venv, upstream, env)
            targets.append(Target("LiteLLM proxy", url, process))
        for target in targets:  # warm-up: connections, code paths, the first usage batch
            wrk(target.url, 4, 2, script)
        for round_ in range(args.rounds):
            for target in targets:
                for concurrency in CONCURRENCY:
                    before = target.cpu_s()
                    result = wrk(target.url, concurrency, args.seconds, script)
                    result["cpu_ms"] = (target.cpu_s() - before) * 1000 / result["requests"]
                    target.results.setdefault(concurrency, []).append(result)
                    if target.process.poll() is not None:
                        raise BenchError(f"{target.name} exited with {target.process.returncode}")
            print(
                f"round {round_ + 1}/{args.rounds} done (load average {os.getloadavg()[0]:.1f})", flush=True
            )
    finally:
        for target in reversed(targets):  # the upstream last: a gateway without it logs failures
            target.process.terminate()
        for target in reversed(targets):
            try:
                target.process.wait(15)
            except subprocess.TimeoutExpired:
                target.process.kill()

    base = targets[0]
    print(
        f"\nGateway benchmark, {date.today()}, {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, wrk, {args.rounds} rounds of {args.seconds:.0f} s per measurement "
        f"(medians); load average {os.getloadavg()[0]:.1f} at the end"
        + (f"; LiteLLM {version}, one worker" if version else "")
    )
    header = (
        f"{'target':<24}{'p50 c=1':>9}{'p99 c=1':>9}{'added p50':>11}{'added p99':>11}{'req/s c=1':>11}"
        f"{'req/s c=16':>12}{'req/s c=64':>12}{'c64/c16':>9}{'CPU ms/req c=1/16/64':>22}"
    )
    print(header)
    for target in targets:
        p50, p99 = median(target, 1, "p50"), median(target, 1, "p99")
        added50 = p50 - median(base, 1, "p50") if target is not base else 0.0
        added99 = p99 - median(base, 1, "p99") if target is not base else 0.0
        r16, r64 = median(target, 16, "rps"), median(target, 64, "rps")
        cpu = " / ".join(f"{median(target, c, 'cpu_ms'):.3f}" for c in CONCURRENCY)
        print(
            f"{target.name:<24}{p50:>9.2f}{p99:>9.2f}{added50:>11.2f}{added99:>11.2f}"
            f"{median(target, 1, 'rps'):>11.0f}{r16:>12.0f}{r64:>12.0f}{r64 / r16:>9.2f}{cpu:>22}"
        )
    ours = targets[1]
    print(
        f"\nours: added p99 at c=1 {median(ours, 1, 'p99') - median(base, 1, 'p99'):.2f} ms (target <= 1 "
        f"ms); req/s c=64 / c=16 {median(ours, 64, 'rps') / median(ours, 16, 'rps'):.2f} (target >= 0.9)"
    )
    if len(targets) > 2:
        lite = targets[2]
        added_ours = median(ours, 1, "p50") - median(base, 1, "p50")
        added_lite = median(lite, 1, "p50") - median(base, 1, "p50")
        print(
            f"added p50, ours / LiteLLM: {added_ours / added_lite:.3f}; "
            f"req/s at c=16, ours / LiteLLM: {median(ours, 16, 'rps') / median(lite, 16, 'rps'):.1f}x"
        )


if __name__ == "__main__":
    try:
        main()
    except BenchError as exc:
        print(f"\nFAILED: {exc}", file=sys.stderr)
        sys.exit(1)
