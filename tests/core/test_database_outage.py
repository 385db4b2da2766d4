"""A database that goes away: answers are 503 `database_unavailable` with Retry-After (never a 500, never a
dropped connection), readiness flips and flips back, the pool reconnects by itself, and every accepted task
still ends.

PostgreSQL is never stopped (other test runs share it): the platform reaches it through a TCP proxy of this
test's own, which the test cuts (its port closed, every connection aborted) and restores. On SQLite the
equivalent is a database file another connection holds locked."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections import Counter

import httpx
import pytest
from sqlalchemy.engine import make_url
from support import free_port, running_app, wait_for_status

from agent_lightning.app import SERVICES

BACKEND = os.environ.get("ALP_TEST_DB", "sqlite")
FINISHED = ("succeeded", "failed", "cancelled")


class TcpProxy:
    """Forwards a local port to a server, on an event loop of its own (a thread); `cut` closes the port and
    aborts every connection, `restore` listens again on the same port."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def _call(self, coroutine) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    def start(self) -> None:
        self._thread.start()
        self.restore()

    def restore(self) -> None:
        self._call(self._listen())

    def cut(self) -> None:
        self._call(self._cut())

    def stop(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._link, "127.0.0.1", self.port, reuse_address=True)

    async def _cut(self) -> None:
        self._server.close()
        for client, upstream in list(self._links):
            client.transport.abort()
            upstream.transport.abort()
        await self._server.wait_closed()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        link = (writer, upstream_writer)
        self._links.add(link)
        try:
            await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))
        finally:
            self._links.discard(link)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()


class Load:
    """Clients submitting tasks and reading them back until stopped; every answer is kept."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.statuses: Counter = Counter()
        self.wrong: list[str] = []  # 5xx other than a 503 database_unavailable with Retry-After
        self.dropped: list[str] = []  # transport errors: the server closed or reset a connection
        self.accepted: list[str] = []
        self._stop = asyncio.Event()

    def _check(self, response: httpx.Response) -> None:
        self.statuses[response.status_code] += 1
        if response.status_code < 500:
            return
        code = response.json().get("error", {}).get("code")
        if (
            response.status_code != 503
            or code != "database_unavailable"
            or "retry-after" not in response.headers
        ):
            self.wrong.append(
                f"{response.request.method} {response.request.url.path}: {response.status_code} "
                f"{response.text[:200]}"
            )

    async def _client(self, n: int) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            try:
                posted = await self.client.post(
                    "/assign-task",
                    json={"description": f"Deploy the API with docker {n}-{i}", "force_execute": True},
                )
                self._check(posted)
                if posted.status_code == 200:
                    self.accepted.append(posted.json()["task_id"])
                    self._check(await self.client.get(f"/tasks/{posted.json()['task_id']}"))
            except httpx.TransportError as exc:
                self.dropped.append(repr(exc))
            await asyncio.sleep(0.05)

    def start(self, clients: int) -> list[asyncio.Task]:
        return [asyncio.create_task(self._client(n)) for n in range(clients)]

    async def stop(self, tasks: list[asyncio.Task]) -> None:
        self._stop.set()
        await asyncio.gather(*tasks)


async def _ready(client: httpx.AsyncClient, want: int, timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (response := await client.get("/health/ready")).status_code != want:
        assert asyncio.get_running_loop().time() < deadline, f"readiness stayed {response.status_code}"
        await asyncio.sleep(0.1)


@pytest.mark.slow
@pytest.mark.skipif(BACKEND != "postgres", reason="PostgreSQL through a proxy (ALP_TEST_DB=postgres)")
async def test_a_postgresql_outage_is_a_503_and_nothing_accepted_is_lost(cluster, database_url):
    url = make_url(database_url)
    proxy = TcpProxy(url.host, url.port or 5432)
    proxy.start()
    through_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    cluster.database_url = through_proxy
    base = cluster.start(
        "platform",
        ",".join(SERVICES),
        free_port(),
        ALP_DB_TIMEOUT_S="2",
        ALP_RATE_LIMIT="0",
        SCRIPTED_DELAY_S="0.2",
        ALP_HEARTBEAT_S="0.5",
        ALP_LEASE_S="2",
    )
    try:
        await _outage(base, proxy)
        assert cluster.processes["platform"].poll() is None, "the process survived the outage"
    finally:
        cluster.stop_all()
        proxy.stop()


async def _outage(base: str, proxy: TcpProxy) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        await _ready(client, 200, 10)
        load = Load(client)
        clients = load.start(4)
        await asyncio.sleep(2)
        proxy.cut()
        await _ready(client, 503, 15)  # readiness flips while the database is away
        unready = (await client.get("/health/ready")).json()["error"]["details"]["database"]
        assert unready["ok"] is False
        await asyncio.sleep(4)
        proxy.restore()
        await _ready(client, 200, 30)  # the pool reconnects by itself
        await asyncio.sleep(2)
        await load.stop(clients)
        print(f"\noutage: answers {dict(load.statuses)}, {len(load.accepted)} tasks accepted")
        assert load.statuses[503] > 0, f"the outage was not seen: {load.statuses}"
        assert load.wrong == [], load.wrong[:5]
        assert load.dropped == [], load.dropped[:5]
        assert load.accepted, "nothing was accepted"
        for task_id in load.accepted:  # every task that got a 200 ends, and succeeds
            task = await wait_for_status(client, task_id, timeout=60)
            assert task["status"] == "succeeded", task


@pytest.mark.skipif(BACKEND != "sqlite", reason="a locked SQLite file (ALP_TEST_DB=sqlite)")
async def test_a_locked_sqlite_file_is_a_503_and_writes_resume_after(settings, provider):
    settings = settings.model_copy(update={"db_timeout_s": 0.5})
    async with running_app(settings, provider) as client:
        holder = sqlite3.connect(settings.resolved_database_url().split("///", 1)[1], isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # another process holds the write lock past the timeout
        try:
            refused = await client.post("/assign-task", json={"description": "Deploy the API with docker"})
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "database_unavailable"
            assert refused.headers["retry-after"] == "5"
            assert (await client.get("/tasks")).status_code == 200, "reads go on (WAL)"
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        accepted = await client.post(
            "/assign-task", json={"description": "Deploy the API with docker", "force_execute": True}
        )
        assert accepted.status_code == 200
        assert (await wait_for_status(client, accepted.json()["task_id"]))["status"] == "succeeded"
