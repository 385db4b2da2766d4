"""Work delivery through taskiq. The database row stays the source of truth; the queue only delivers.

`ALP_QUEUE_URL` picks the broker (`make_broker`):

- empty: taskiq's in-memory broker; a job runs on the event loop of the process that enqueued it.
- ``nats://host:4222`` (or ``tls://``): NATS JetStream, one work-queue stream per job with one durable
  pull consumer that every process shares, explicit acks.
- ``redis://host:6379/0`` (or ``rediss://``): Redis Streams, one stream per job with one consumer
  group that every process shares.

Each job (``execution.run``, ``orchestrator.run_task``) has its own stream, named after
`ALP_QUEUE_PREFIX`, so that a process consumes only the jobs of the services it hosts and deployments
(or test runs) sharing a broker do not see each other's work. With a real broker every process runs
taskiq's `Receiver` for its jobs (`JobQueue.start`), at most `job_concurrency(settings)` at a time.

Delivery is at least once; a handler run twice is harmless because it starts by claiming the row
atomically in the database. A delivery is acknowledged once its job has run. While the job runs, the
consumer keeps the delivery (JetStream ``in_progress``, Redis ``XCLAIM`` of its own entry), so a long
job is not handed to another process; a delivery that stays unacknowledged for `ACK_WAIT_S` (its
process died) goes to another consumer. From `JobQueue.stop_accepting` on, nothing more is
acknowledged and new deliveries are left alone: another process gets them. On Redis, this replaces
taskiq-redis's own recovery of pending entries (which runs only after new entries arrived, under a lock
that never expires by default), and acknowledged entries are deleted so that the streams stay short.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StreamConfig
from redis.asyncio import Redis
from taskiq import AckableMessage, AsyncBroker, AsyncTaskiqDecoratedTask, InMemoryBroker
from taskiq.acks import AcknowledgeType
from taskiq.receiver import Receiver
from taskiq_nats import PullBasedJetStreamBroker
from taskiq_redis import RedisStreamBroker

from agent_lightning.core import tracing
from agent_lightning.core.config import Settings
from agent_lightning.core.db import unavailable
from agent_lightning.core.logging import get_logger

log = get_logger(__name__)

ACK_WAIT_S = 30.0
"""A delivery unacknowledged (and not kept alive) this long goes to another consumer."""
KEEPALIVE_S = ACK_WAIT_S / 3
"""How often a consumer says it is still working on a delivery."""
RESTART_S = 1.0
"""Pause before a receiver that lost its broker listens again."""
OUTAGE_RETRY_S = 0.5
"""First pause before a job that met a database outage runs again (doubling, at most `OUTAGE_RETRY_MAX_S`)."""
OUTAGE_RETRY_MAX_S = 15.0

NATS_SCHEMES = ("nats", "tls")
REDIS_SCHEMES = ("redis", "rediss")


def job_concurrency(settings: Settings) -> int:
    """Jobs one process runs at a time (per job name): `ALP_QUEUE_CONCURRENCY`."""
    return settings.queue_concurrency


def redact(url: str) -> str:
    """The URL without credentials, for logs and readiness."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


def _stream_name(prefix: str, job: str) -> str:
    """A name valid for a JetStream stream or consumer (no dots, wildcards or spaces)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", f"{prefix}.{job}")


class _Deliveries:
    """Deliveries in progress on one broker: each is kept alive until acknowledged."""

    def __init__(self) -> None:
        self.accepting = True
        self._keepalives: set[asyncio.Task] = set()

    def wrap(
        self, data: bytes, ack: Callable[[], Awaitable[Any]], touch: Callable[[], Awaitable[Any]]
    ) -> AckableMessage:
        keepalive = asyncio.create_task(self._keep_alive(touch))
        self._keepalives.add(keepalive)
        keepalive.add_done_callback(self._keepalives.discard)

        async def acknowledge() -> None:
            keepalive.cancel()
            if not self.accepting:
                return  # stopping: the job may not have run; another consumer gets the delivery again
            try:
                await ack()
            except Exception as exc:  # redelivered later, and harmless: the database claim guards the job
                log.warning("queue_ack_failed", error=repr(exc))

        return AckableMessage(data=data, ack=acknowledge)

    @staticmethod
    async def _keep_alive(touch: Callable[[], Awaitable[Any]]) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_S)
            try:
                await touch()
            except Exception as exc:
                log.warning("queue_keepalive_failed", error=repr(exc))

    async def close(self) -> None:
        keepalives = list(self._keepalives)
        for keepalive in keepalives:
            keepalive.cancel()
        await asyncio.gather(*keepalives, return_exceptions=True)


class JetStreamJobBroker(PullBasedJetStreamBroker):
    """One job's work-queue stream on NATS JetStream, with a durable pull consumer shared by every
    process: each message goes to one of them; acknowledged messages leave the stream."""

    def __init__(self, url: str, *, prefix: str, job: str) -> None:
        name = _stream_name(prefix, job)
        subject = f"{prefix}.{job}"
        super().__init__(
            servers=url,
            subject=subject,
            stream_name=name,
            durable=name,
            stream_config=StreamConfig(name=name, subjects=[subject], retention=RetentionPolicy.WORK_QUEUE),
            consumer_config=ConsumerConfig(
                durable_name=name, ack_policy=AckPolicy.EXPLICIT, ack_wait=ACK_WAIT_S, filter_subject=subject
            ),
            pull_consume_timeout=5.0,
            max_reconnect_attempts=-1,  # ride out a broker restart
            connect_timeout=5,
        )
        self.deliveries = _Deliveries()

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        while True:
            try:
                messages = await self.consumer.fetch(batch=1, timeout=self.pull_consume_timeout)
            except NatsTimeoutError:
                continue
            for message in messages:
                yield self.deliveries.wrap(message.data, message.ack, message.in_progress)

    async def connected(self) -> bool:
        return self.client.is_connected

    async def shutdown(self) -> None:
        await self.deliveries.close()
        await super().shutdown()


class RedisStreamJobBroker(RedisStreamBroker):
    """One job's Redis stream, with one consumer group shared by every process."""

    def __init__(self, url: str, *, prefix: str, job: str) -> None:
        super().__init__(
            url,
            queue_name=f"{prefix}.{job}",
            consumer_group_name="workers",
            consumer_id="0",  # entries added before the group existed are delivered too
            xread_block=1000,
            xread_count=1,  # take one entry per free slot: the others stay for the other processes
            idle_timeout=int(ACK_WAIT_S * 1000),
            socket_connect_timeout=5,
        )
        self.deliveries = _Deliveries()
        self._next_reclaim = 0.0
        self._reclaim_from: bytes | str = "0-0"

    def _ack_generator(self, id: str, queue_name: str) -> Callable[[], Awaitable[None]]:
        async def ack() -> None:
            async with (
                Redis(connection_pool=self.connection_pool) as conn,
                conn.pipeline(transaction=True) as pipe,
            ):
                pipe.xack(queue_name, self.consumer_group_name, id)
                pipe.xdel(queue_name, id)
                await pipe.execute()

        return ack

    def _touch(self, id: str) -> Callable[[], Awaitable[None]]:
        async def touch() -> None:  # claiming its own entry resets its idle time
            async with Redis(connection_pool=self.connection_pool) as conn:
                await conn.xclaim(
                    self.queue_name,
                    self.consumer_group_name,
                    self.consumer_name,
                    min_idle_time=0,
                    message_ids=[id],
                    justid=True,
                )

        return touch

    def _delivery(self, id: Any, fields: dict | None) -> AckableMessage | None:
        if not fields or b"data" not in fields:
            return None  # deleted meanwhile
        ack = self._ack_generator(id, self.queue_name)
        return self.deliveries.wrap(fields[b"data"], ack, self._touch(id))

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        async with Redis(connection_pool=self.connection_pool) as conn:
            while True:
                fetched = await conn.xreadgroup(
                    self.consumer_group_name,
                    self.consumer_name,
                    {self.queue_name: ">"},
                    block=self.block,
                    count=self.count,
                )
                for _, entries in fetched or []:
                    for id, fields in entries:
                        if (delivery := self._delivery(id, fields)) is not None:
                            yield delivery
                if time.monotonic() >= self._next_reclaim:  # entries a dead consumer left behind
                    reply = await conn.xautoclaim(
                        self.queue_name,
                        self.consumer_group_name,
                        self.consumer_name,
                        min_idle_time=self.idle_timeout,
                        start_id=self._reclaim_from,
                        count=10,
                    )
                    self._reclaim_from = reply[0]  # walk the whole pending list, a few entries each time
                    if self._reclaim_from in (b"0-0", "0-0"):
                        self._next_reclaim = time.monotonic() + KEEPALIVE_S
                    for id, fields in reply[1]:
                        if (delivery := self._delivery(id, fields)) is not None:
                            yield delivery

    async def connected(self) -> bool:
        try:
            async with Redis(connection_pool=self.connection_pool) as conn:
                return bool(await asyncio.wait_for(conn.ping(), 2))
        except Exception:
            return False

    async def shutdown(self) -> None:
        await self.deliveries.close()
        try:  # leave the group tidy; a consumer still holding entries stays, so that others reclaim them
            async with Redis(connection_pool=self.connection_pool) as conn:
                consumers = await conn.xinfo_consumers(self.queue_name, self.consumer_group_name)
                names = (self.consumer_name, self.consumer_name.encode())
                mine = next((c for c in consumers if c["name"] in names), None)
                if mine is not None and mine["pending"] == 0:
                    await conn.xgroup_delconsumer(self.queue_name, self.consumer_group_name, names[0])
        except Exception as exc:
            log.warning("queue_consumer_cleanup_failed", error=repr(exc))
        await super().shutdown()


def make_broker(settings: Settings, job: str = "jobs") -> AsyncBroker:
    """The taskiq broker for `job` in this process, chosen by `settings.queue_url` (see the module doc)."""
    url = settings.queue_url.strip()
    if not url:
        return InMemoryBroker(max_async_tasks=job_concurrency(settings), propagate_exceptions=False)
    scheme = urlsplit(url).scheme.lower()
    if scheme in NATS_SCHEMES:
        return JetStreamJobBroker(url, prefix=settings.queue_prefix, job=job)
    if scheme in REDIS_SCHEMES:
        return RedisStreamJobBroker(url, prefix=settings.queue_prefix, job=job)
    raise ValueError(
        f"ALP_QUEUE_URL: unsupported scheme {scheme!r} in {redact(url)!r}; "
        "use nats:// (JetStream), redis:// (Redis Streams) or leave it empty (in-memory)."
    )


class JobQueue:
    """The jobs of one process: one broker per job name and, with a real broker, a receiver per job."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.distributed = bool(settings.queue_url.strip())
        self.brokers: dict[str, AsyncBroker] = {}
        self._tasks: dict[str, AsyncTaskiqDecoratedTask] = {}
        self.accepting = False
        self._finish: asyncio.Event | None = None
        self._receivers: list[asyncio.Task] = []

    def sender(self, name: str) -> Callable[[str], Awaitable[None]]:
        """The function that enqueues one job `name`: given to a service when it is built, before the handler
        of the job (often the service's own method) is registered."""

        async def enqueue(record_id: str) -> None:
            task = self._tasks.get(name)
            if task is None:
                raise RuntimeError(f"The job {name!r} has no handler registered.")
            if not tracing.enabled():
                await task.kiq(record_id)
                return
            with tracing.send(name, record_id):  # the job carries this span's context (W3C traceparent)
                await task.kiq(record_id, trace_context=tracing.inject())

        return enqueue

    def register(self, name: str, handler: Callable[[str], Awaitable[None]], jobs: set[asyncio.Task]) -> None:
        """Register `handler` as the job `name` (its own stream on a real broker, consumed by every process
        that registers it). A job running in this process is in `jobs` while it runs, so that shutdown can
        stop it."""
        if name in self.brokers:
            raise ValueError(f"The job {name!r} is already registered.")
        broker = make_broker(self.settings, name)

        async def job(record_id: str, trace_context: dict[str, str] | None = None) -> None:
            if not self.accepting:
                return  # stopping: the delivery stays unacknowledged for another process
            current = asyncio.current_task()
            jobs.add(current)
            try:
                with tracing.consume(name, record_id, trace_context):  # joins the trace that queued it
                    await self._through_outages(name, handler, record_id)
            finally:
                jobs.discard(current)

        self._tasks[name] = broker.register_task(job, task_name=name)
        self.brokers[name] = broker

    async def _through_outages(
        self, name: str, handler: Callable[[str], Awaitable[None]], record_id: str
    ) -> None:
        """Run the job; while the database is unavailable, run it again after a pause (a job is safe to run
        twice), so that an outage delays work rather than dropping its delivery."""
        pause = OUTAGE_RETRY_S
        while True:
            try:
                await handler(record_id)
                return
            except Exception as exc:
                if not self.accepting or not unavailable(exc):
                    raise
                log.warning(
                    "job_waits_for_database",
                    job=name,
                    record_id=record_id,
                    retry_in_s=pause,
                    error=type(exc).__name__,
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, OUTAGE_RETRY_MAX_S)

    async def start(self) -> None:
        """Connect every broker: jobs can be enqueued from now on."""
        for broker in self.brokers.values():
            await broker.startup()
        self.accepting = True

    def consume(self) -> None:
        """With a real broker, start consuming this process's jobs (after `start`)."""
        if self.distributed and not self._receivers:
            finish = self._finish = asyncio.Event()
            for name, broker in self.brokers.items():
                self._receivers.append(
                    asyncio.create_task(self._consume(name, broker, finish), name=f"queue:{name}")
                )

    async def _consume(self, name: str, broker: AsyncBroker, finish: asyncio.Event) -> None:
        """Run taskiq's receiver until `stop` sets `finish`; listen again when the broker connection fails."""
        while not finish.is_set():
            receiver = Receiver(
                broker,
                max_async_tasks=job_concurrency(self.settings),
                max_prefetch=0,
                propagate_exceptions=False,
                run_startup=False,
                ack_type=AcknowledgeType.WHEN_EXECUTED,
                wait_tasks_timeout=0,  # the platform stops the jobs in flight itself
            )
            try:
                await receiver.listen(finish)
            except Exception as exc:
                log.error("queue_receiver_failed", job=name, error=repr(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(finish.wait(), RESTART_S)

    def stop_accepting(self) -> None:
        """Run no new job and acknowledge nothing more (other processes get those deliveries)."""
        self.accepting = False
        for broker in self.brokers.values():
            deliveries = getattr(broker, "deliveries", None)
            if deliveries is not None:
                deliveries.accepting = False
        if self._finish is not None:
            self._finish.set()

    async def stop(self) -> None:
        """Stop the receivers and close the broker connections (after `stop_accepting`)."""
        self.stop_accepting()
        if self._receivers:
            _, pending = await asyncio.wait(self._receivers, timeout=10)
            for receiver in pending:
                receiver.cancel()
            await asyncio.gather(*self._receivers, return_exceptions=True)
            self._receivers.clear()
        for broker in self.brokers.values():
            try:
                await broker.shutdown()
            except Exception as exc:
                log.warning("queue_shutdown_failed", error=repr(exc))

    def describe(self) -> str:
        if not self.distributed:
            return "in-memory (taskiq InMemoryBroker)"
        url = self.settings.queue_url.strip()
        kind = "NATS JetStream" if urlsplit(url).scheme.lower() in NATS_SCHEMES else "Redis Streams"
        return f"{kind} {redact(url)} prefix {self.settings.queue_prefix}"

    async def ready(self) -> tuple[bool, str]:
        """Whether jobs can be enqueued and consumed, and which broker carries them."""
        if not self.accepting:
            return False, f"{self.describe()}: not started"
        if not self.distributed:
            return True, self.describe()
        for name, broker in self.brokers.items():
            if not await broker.connected():
                return False, f"{self.describe()}: disconnected ({name})"
        for receiver in self._receivers:
            if receiver.done():
                return False, f"{self.describe()}: a receiver stopped"
        return True, f"{self.describe()}: connected"
