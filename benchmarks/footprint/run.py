"""Resident memory of each service, the numbers behind the resource requests in core/topology.py.

Starts `alp up --split` (SQLite in a temporary data dir, the real local model and embedder), warms every
service the way a task does (a task run by the local model, a knowledge item added and searched, a memory
stored and recalled), then reads each process's resident set size from /proc. The baseline, measured in the
same run, is `alp up`: the whole platform in one process after the same warm-up.

    .venv/bin/python benchmarks/footprint/run.py

Any failed request fails the benchmark (exit 1) and no ratio is printed.
"""

from __future__ import annotations

import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import httpx

from agent_lightning.core import topology


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def _children(pid: int) -> dict[str, int]:
    """The `alp serve NAME` processes started by `alp up --split` (pid by service name)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("PPid:"))
        if ppid == pid and b"serve" in cmdline:
            found[cmdline[cmdline.index(b"serve") + 1].decode()] = int(entry.name)
    return found


def _wait_healthy(urls: list[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    for url in urls:
        while True:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not start")
            time.sleep(0.5)


def _check(response: httpx.Response) -> dict:
    if response.status_code >= 400:
        raise RuntimeError(
            f"{response.request.method} {response.request.url}: {response.status_code} {response.text[:300]}"
        )
    return response.json()


def warm_up(orchestrator: str, knowledge: str, memory: str) -> None:
    """What a task touches: routing and the local model, knowledge, memory."""
    with httpx.Client(timeout=300) as client:
        _check(
            client.post(
                f"{knowledge}/knowledge/items",
                json={
                    "title": "Lighthouse",
                    "content": (
                        "The lighthouse keeper lights the lamp at dusk and logs every ship that passes the "
                        "point."
                    ),
                },
            )
        )
        _check(client.post(f"{knowledge}/knowledge/search", json={"query": "who lights the lamp?"}))
        _check(
            client.post(f"{memory}/memory/memories", json={"user_id": "bench", "content": "Bench likes tea."})
        )
        _check(client.post(f"{memory}/memory/memories/search", json={"user_id": "bench", "query": "drinks"}))
        task = _check(
            client.post(
                f"{orchestrator}/assign-task",
                json={"description": "Say hello to the lighthouse keeper", "force_execute": True},
            )
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            detail = _check(client.get(f"{orchestrator}/tasks/{task['task_id']}"))
            if detail["status"] in ("succeeded", "failed", "cancelled"):
                if detail["status"] != "succeeded":
                    raise RuntimeError(f"warm-up task {detail['status']}: {detail.get('error')}")
                return
            time.sleep(0.5)
        raise RuntimeError("warm-up task did not finish")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], data_dir: str) -> subprocess.Popen:
    env = {**os.environ, "ALP_DATA_DIR": data_dir, "ALP_LOG_LEVEL": "WARNING", "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "agent_lightning.cli", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def main() -> int:
    rows = []
    with tempfile.TemporaryDirectory() as one_dir:
        port = _free_port()
        one = _start(["up", "--port", str(port)], one_dir)
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_healthy([base])
            warm_up(base, base, base)
            one_process = _rss_mib(one.pid)
        finally:
            _stop(one)
    with tempfile.TemporaryDirectory() as split_dir:
        split = _start(["up", "--split"], split_dir)
        try:
            url = {spec.name: f"http://127.0.0.1:{spec.port}" for spec in topology.SERVICES}
            _wait_healthy([url[s.name] for s in topology.SERVICES if s.name != "auth"])
            idle = {name: _rss_mib(pid) for name, pid in _children(split.pid).items()}
            warm_up(url["orchestrator"], url["knowledge"], url["memory"])
            warm = {name: _rss_mib(pid) for name, pid in _children(split.pid).items()}
        finally:
            _stop(split)
    for spec in topology.SERVICES:
        if spec.name in warm:
            request = int(spec.memory.removesuffix("Mi"))
            rows.append((spec.name, idle[spec.name], warm[spec.name], request, warm[spec.name] / request))

    print(
        f"# Resident memory per service ({date.today()}, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()})\n"
    )
    print("| service | RSS idle (MiB) | RSS warm (MiB) | request (MiB) | warm / request |")
    print("|---|---|---|---|---|")
    for name, idle_mib, warm_mib, request, ratio in rows:
        print(f"| {name} | {idle_mib:.0f} | {warm_mib:.0f} | {request} | {ratio:.2f} |")
    total = sum(row[2] for row in rows)
    print(
        f"| **all split processes** | {sum(r[1] for r in rows):.0f} | {total:.0f} | "
        f"{sum(r[3] for r in rows)} | {total / sum(r[3] for r in rows):.2f} |"
    )
    print(
        f"\nBaseline `alp up` (one process, same warm-up): {one_process:.0f} MiB; "
        f"split / one process = {total / one_process:.2f}×"
    )
    over = [row[0] for row in rows if row[4] > 1.0]
    if over:
        print(f"\nOver their request (raise it in core/topology.py): {', '.join(over)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except RuntimeError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        raise SystemExit(1) from exc
