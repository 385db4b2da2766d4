"""The split topology across hosts, not just ports: the deploy guide's "On plain hosts", run as written.

The test makes four hosts of Linux network namespaces joined by veth pairs to a bridge (iproute2): `db` runs a
private PostgreSQL, NATS with JetStream and Redis (plus a fake OpenAI-compatible model, so 500 tasks take
seconds, not hours of the local model); `front` runs the orchestrator, auth, models, validation, knowledge and
memory; `worker-1` and `worker-2` one execution replica each. Each host resolves the others by name
(`ip netns exec` mounts /etc/netns/NS/hosts over /etc/hosts). The guide's blocks are executed: its secrets,
its settings, its one-off commands and its `alp serve` lines, each on the host it names.

Then 500 tasks go in; a worker's link goes down in the middle: every task completes, none is lost, none has
two successful attempts or two outcome rewards. The link comes back and the worker takes work again.

Needs root (network namespaces) and the machine's PostgreSQL, NATS and Redis binaries; skipped otherwise.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "operate" / "deploy.md"
PG_BIN = (
    next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)
    if Path("/usr/lib/postgresql").exists()
    else None
)
TASKS = 500
NET_LOCK = Path(tempfile.gettempdir()) / "alp-test-multihost-net.lock"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.geteuid() != 0 or not shutil.which("ip"), reason="network namespaces need root and iproute2"
    ),
    pytest.mark.skipif(
        os.environ.get("ALP_TEST_DB") == "postgres",
        reason="runs once, in the SQLite pass: it brings its own PostgreSQL on its own host",
    ),
    pytest.mark.skipif(
        not (PG_BIN and shutil.which("nats-server") and shutil.which("redis-server")),
        reason="needs the PostgreSQL server binaries, nats-server and redis-server on this machine",
    ),
]


def guide_block(name: str) -> str:
    """The bash block of docs/operate/deploy.md after its `<!-- deploy-guide: NAME -->` marker."""
    match = re.search(rf"<!-- deploy-guide: {name} -->\s*```bash\n(.*?)```", GUIDE.read_text(), re.S)
    assert match, f"docs/operate/deploy.md has no deploy-guide block {name!r}"
    return match.group(1)


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True)


class Hosts:
    """Namespaces on a bridge of their own, named hosts, and the processes started in them."""

    def __init__(self, names: list[str], aliases: dict[str, list[str]]) -> None:
        tag = secrets.token_hex(2)
        self.bridge = f"alpbr{tag}"
        self.names = names
        self.ns = {name: f"alp{tag}-{name}" for name in names}
        self.veth = {name: f"v{tag}{i}" for i, name in enumerate(names)}
        self.aliases = aliases
        self.processes: list[subprocess.Popen] = []
        self.cleanup: list[Path] = []

    def __enter__(self) -> Hosts:
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        # A /24 no other run of this test on the machine has (another checkout's CI, a pytest-xdist worker):
        # chosen and given to the bridge under a lock, so two runs starting together never pick the same one.
        with open(NET_LOCK, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            used = sh("ip", "-o", "-4", "addr").stdout
            third = next(n for n in range(10, 250) if f"10.213.{n}." not in used)
            self.net = f"10.213.{third}"
            sh("ip", "addr", "add", f"{self.net}.1/24", "dev", self.bridge)
        self.ip = {name: f"{self.net}.{i + 2}" for i, name in enumerate(self.names)}
        sh("ip", "link", "set", self.bridge, "up")
        hosts = "127.0.0.1 localhost\n" + "".join(
            f"{self.ip[name]} {' '.join([f'{name}.internal', *self.aliases.get(name, [])])}\n"
            for name in self.ns
        )
        for name, ns in self.ns.items():
            sh("ip", "netns", "add", ns)
            Path(f"/etc/netns/{ns}").mkdir(parents=True, exist_ok=True)
            Path(f"/etc/netns/{ns}/hosts").write_text(hosts)
            veth = self.veth[name]
            sh("ip", "link", "add", veth, "type", "veth", "peer", "name", veth + "n")
            sh("ip", "link", "set", veth + "n", "netns", ns)
            sh("ip", "link", "set", veth, "master", self.bridge, "up")
            sh("ip", "-n", ns, "addr", "add", f"{self.ip[name]}/24", "dev", veth + "n")
            sh("ip", "-n", ns, "link", "set", veth + "n", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        return self

    def __exit__(self, *exc) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        for name, ns in self.ns.items():
            sh("ip", "link", "del", self.veth[name], check=False)
            sh("ip", "netns", "del", ns, check=False)
            shutil.rmtree(f"/etc/netns/{ns}", ignore_errors=True)
        sh("ip", "link", "del", self.bridge, check=False)
        for path in self.cleanup:
            shutil.rmtree(path, ignore_errors=True)

    def run(self, host: str, *args: str, user: str | None = None, **kwargs) -> subprocess.CompletedProcess:
        prefix = ["ip", "netns", "exec", self.ns[host]] + (["runuser", "-u", user, "--"] if user else [])
        return subprocess.run([*prefix, *args], capture_output=True, text=True, **kwargs)

    def start(self, host: str, *args: str, user: str | None = None, log: Path, **kwargs) -> subprocess.Popen:
        prefix = ["ip", "netns", "exec", self.ns[host]] + (["runuser", "-u", user, "--"] if user else [])
        process = subprocess.Popen(
            [*prefix, *args], stdout=log.open("ab"), stderr=subprocess.STDOUT, **kwargs
        )
        self.processes.append(process)
        return process

    def link(self, host: str, up: bool) -> None:
        sh("ip", "link", "set", self.veth[host], "up" if up else "down")


def wait_for(check, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.3)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def start_infrastructure(hosts: Hosts, workdir: Path) -> None:
    """PostgreSQL, NATS and Redis on the db host, listening on its address; the fake model beside them."""
    ip = hosts.ip["db"]
    pgdata = Path(tempfile.mkdtemp(prefix="alp-pgdata-"))  # pytest's tmp_path is private to root
    hosts.cleanup.append(pgdata)
    shutil.chown(pgdata, "postgres", "postgres")
    init = subprocess.run(
        [
            "runuser",
            "-u",
            "postgres",
            "--",
            str(PG_BIN / "initdb"),
            "-D",
            str(pgdata),
            "-A",
            "trust",
            "-U",
            "postgres",
        ],
        capture_output=True,
        text=True,
    )
    assert init.returncode == 0, init.stderr
    with (pgdata / "pg_hba.conf").open("a") as hba:
        hba.write(f"host all all {hosts.net}.0/24 scram-sha-256\n")
    hosts.start(
        "db",
        str(PG_BIN / "postgres"),
        "-D",
        str(pgdata),
        "-c",
        f"listen_addresses={ip}",
        "-c",
        f"unix_socket_directories={pgdata}",
        "-c",
        "max_connections=300",
        "-p",
        "5432",
        user="postgres",
        log=workdir / "postgres.log",
    )
    wait_for(
        lambda: hosts.run("db", str(PG_BIN / "pg_isready"), "-h", ip, "-q").returncode == 0, "PostgreSQL"
    )
    made = hosts.run(
        "db",
        str(PG_BIN / "psql"),
        "-h",
        str(pgdata),
        "-U",
        "postgres",
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        "CREATE ROLE alp LOGIN PASSWORD 'secret'",
        "-c",
        "CREATE DATABASE alp OWNER alp",
    )
    assert made.returncode == 0, made.stderr
    (workdir / "nats").mkdir()
    hosts.start(
        "db",
        "nats-server",
        "-a",
        ip,
        "-p",
        "4222",
        "-js",
        "-sd",
        str(workdir / "nats"),
        log=workdir / "nats.log",
    )
    hosts.start(
        "db",
        "redis-server",
        "--bind",
        ip,
        "--port",
        "6379",
        "--save",
        "",
        "--appendonly",
        "no",
        "--protected-mode",
        "no",
        log=workdir / "redis.log",
    )
    hosts.start(
        "db",
        sys.executable,
        str(ROOT / "benchmarks" / "gateway" / "fake_upstream.py"),
        "9000",
        "0.2",
        ip,
        log=workdir / "model.log",
    )
    wait_for(lambda: hosts.run("db", "redis-cli", "-h", ip, "ping").stdout.strip() == "PONG", "Redis")
    wait_for(
        lambda: httpx.post(f"http://{ip}:9000/v1/chat/completions", json={}, timeout=2).status_code == 200,
        "the fake model",
    )


def guide_environment(workdir: Path, hosts: Hosts) -> dict[str, str]:
    """The guide's secrets made and its settings exported, as a shell on a host would have them, plus what
    only this test needs (the fake model as the `local` alias, no rate limit for 500 tasks in seconds, short
    timeouts so a dead link is noticed fast: an attempt in flight on the worker cut off is given up after the
    task timeout, 20 s here rather than 120, and retried on the other worker)."""
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    base = {"PATH": path, "HOME": str(workdir), "HF_HUB_OFFLINE": "1"}
    made = subprocess.run(
        ["bash", "-ec", guide_block("secrets")], cwd=workdir, env=base, capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr
    shell = subprocess.run(
        ["bash", "-ec", guide_block("settings") + "\nenv -0"],
        cwd=workdir,
        env=base,
        capture_output=True,
        text=True,
    )
    assert shell.returncode == 0, shell.stderr
    env = dict(item.split("=", 1) for item in shell.stdout.split("\0") if "=" in item)
    models = workdir / "models.json"
    models.write_text(
        json.dumps(
            [
                {
                    "id": "local",
                    "deployments": [
                        {
                            "provider": "openai-compatible",
                            "model": "bench-model",
                            "base_url": f"http://{hosts.ip['db']}:9000/v1",
                        }
                    ],
                }
            ]
        )
    )
    env.update(
        ALP_MODELS_FILE=str(models),
        ALP_RATE_LIMIT="0",
        ALP_HTTP_TIMEOUT_S="3",
        ALP_TASK_TIMEOUT_S="20",
        ALP_HTTP_RETRIES="2",
        ALP_BREAKER_RESET_S="3",
        ALP_LOG_LEVEL="WARNING",
        ALP_DATA_DIR=str(workdir / "data"),
        ALP_CONFIDENCE_THRESHOLD="0",
    )
    return env


def serve_lines() -> Iterator[tuple[str, str]]:
    """(service, host) of each `alp serve SERVICE --host 0.0.0.0   # on HOST.internal` line of the guide."""
    for line in guide_block("services").splitlines():
        match = re.fullmatch(r"alp serve (\w+) --host 0\.0\.0\.0\s+# on ([\w-]+)\.internal", line.strip())
        assert match, f"unexpected line in the guide's services block: {line!r}"
        yield match.group(1), match.group(2)


def test_split_topology_across_hosts_survives_a_worker_link_going_down(tmp_path: Path):
    from agent_lightning.core.config import SERVICE_PORTS

    workdir = tmp_path
    aliases = {"db": ["nats.internal", "redis.internal"]}
    with Hosts(["db", "front", "worker-1", "worker-2"], aliases) as hosts:
        start_infrastructure(hosts, workdir)
        env = guide_environment(workdir, hosts)
        once = hosts.run("front", "bash", "-ec", guide_block("once"), cwd=workdir, env=env)
        assert once.returncode == 0, once.stdout + once.stderr

        served: dict[str, list[str]] = {}
        for service, host in serve_lines():
            hosts.start(
                host,
                sys.executable,
                "-m",
                "agent_lightning.cli",
                "serve",
                service,
                "--host",
                "0.0.0.0",
                cwd=workdir,
                env=env,
                log=workdir / f"{host}-{service}.log",
            )
            served.setdefault(host, []).append(f"http://{hosts.ip[host]}:{SERVICE_PORTS[service]}")
        for urls in served.values():
            for url in urls:
                wait_for(
                    lambda url=url: httpx.get(f"{url}/health", timeout=2).status_code == 200,
                    f"{url} healthy",
                    120,
                )

        front = f"http://{hosts.ip['front']}:{SERVICE_PORTS['orchestrator']}"
        login = httpx.post(
            f"http://{hosts.ip['front']}:{SERVICE_PORTS['auth']}/auth/token",
            data={"username": "admin", "password": "correct horse battery staple, twice"},
        )
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        worker_1 = f"http://{hosts.ip['worker-1']}:{SERVICE_PORTS['execution']}"

        def executions(url: str) -> float:
            text = httpx.get(f"{url}/metrics", headers=headers, timeout=5).text
            return sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("alp_http_requests_total{") and "/agents/execute" in line
            )

        with httpx.Client(base_url=front, headers=headers, timeout=30) as client:

            def submit(i: int) -> str:
                response = client.post(
                    "/assign-task",
                    json={"description": f"Deploy service {i} with docker", "force_execute": True},
                )
                assert response.status_code == 200, response.text
                return response.json()["task_id"]

            def finished() -> list[dict]:
                items, cursor = [], None
                while True:
                    page = client.get(
                        "/tasks", params={"limit": 200, **({"cursor": cursor} if cursor else {})}
                    ).json()
                    items += page["items"]
                    cursor = page.get("next_cursor")
                    if not cursor:
                        return [t for t in items if t["status"] in ("succeeded", "failed", "cancelled")]

            with ThreadPoolExecutor(16) as pool:
                ids = list(pool.map(submit, range(TASKS // 2)))
                wait_for(lambda: executions(worker_1) >= 20, "worker-1 running tasks")
                hosts.link("worker-1", up=False)  # mid-run: its in-flight calls hang, then fail over
                down_at = time.monotonic()
                ids += list(pool.map(submit, range(TASKS // 2, TASKS)))
            wait_for(lambda: len(finished()) >= TASKS, f"all {TASKS} tasks finished", 300)
            print(
                f"\nall {TASKS} tasks finished {time.monotonic() - down_at:.1f} s after worker-1's link went "
                "down"
            )

            details = [client.get(f"/tasks/{task_id}").json() for task_id in ids]
            assert len({d["task_id"] for d in details}) == TASKS
            statuses = [d["status"] for d in details]
            assert statuses.count("succeeded") == TASKS, {s: statuses.count(s) for s in set(statuses)}
            for detail in details:
                succeeded = [a for a in detail["attempts"] if a["status"] == "succeeded"]
                outcome = [r for r in detail["rewards"] if r["source"] == "outcome"]
                assert len(succeeded) == 1 and len(outcome) == 1, detail["task_id"]

            # The link comes back: worker-1 rejoins once its circuit breaker lets calls through again.
            hosts.link("worker-1", up=True)
            wait_for(
                lambda: httpx.get(f"{worker_1}/health", timeout=2).status_code == 200, "worker-1 reachable"
            )
            before = executions(worker_1)
            more = [submit(i) for i in range(TASKS, TASKS + 40)]
            wait_for(
                lambda: all(client.get(f"/tasks/{t}").json()["status"] == "succeeded" for t in more),
                "the tasks after the rejoin",
                120,
            )
            assert executions(worker_1) > before, "worker-1 took no work after its link came back"
