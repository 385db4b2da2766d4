"""Event buses that several processes share: Redis pub/sub and NATS core pub/sub.

Each event goes to the broker under ``<prefix>.<event type>`` (prefix ``alp.events`` by default) as the
JSON of its envelope. Every bus listens to ``<prefix>.*`` (Redis pattern) or ``<prefix>.>`` (NATS
wildcard) and hands each event it receives to the subscribers of its own process whose glob matches,
recording it in `recent()`, exactly as `InProcessBus` does.

Local delivery goes through the broker only: a process receives its own events back (the broker's
echo) and that echo is the one delivery to its own subscribers, so every process, the publisher
included, sees each event exactly once and in the broker's order. The price: `publish` returns once the
broker has the event, before the subscribers have run. If the broker refuses the event (Redis down),
the failure is logged and the event is delivered to this process's subscribers only; the database stays
the source of truth. Handlers run one after the other on the reader; a handler's failure is logged and
never reaches the publisher.

`make_bus(url)` picks the implementation: empty → in-process, ``redis://`` / ``rediss://`` → Redis,
``nats://`` / ``tls://`` → NATS.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from urllib.parse import urlsplit

import nats
import redis.asyncio as redis
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from pydantic import ValidationError
from redis.asyncio.client import PubSub

from agent_lightning.core.events import Event, InProcessBus, LocalSubscribers
from agent_lightning.core.logging import get_logger

log = get_logger(__name__)

DEFAULT_PREFIX = "alp.events"


def _redact(url: str) -> str:
    """The URL without its password, for logs and readiness details."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class BrokerBus(LocalSubscribers):
    """What the Redis and NATS buses share: publish through the broker, deliver what comes back."""

    kind = "broker"

    def __init__(self, url: str, *, prefix: str = DEFAULT_PREFIX, history: int = 1000) -> None:
        super().__init__(history)
        self.url = url
        self.prefix = prefix.rstrip(".")
        self._started = False

    def _name(self, event_type: str) -> str:
        return f"{self.prefix}.{event_type}"

    async def publish(self, event: Event) -> None:
        if not self._started:
            raise RuntimeError(f"{type(self).__name__} is not started: await start() first.")
        self._published(event)
        payload = event.model_dump_json().encode()
        try:
            await self._send(self._name(event.type), payload)
        except Exception as exc:
            log.error("event_publish_failed", event_type=event.type, bus=self.kind, error=repr(exc))
            await self._deliver(event)  # the broker has not got it, so no echo will come back

    async def _receive(self, payload: bytes | str) -> None:
        try:
            event = Event.model_validate_json(payload)
        except ValidationError:
            log.warning("event_discarded", bus=self.kind, reason="not an event envelope")
            return
        await self._deliver(event)

    async def _send(self, name: str, payload: bytes) -> None:
        raise NotImplementedError


class RedisBus(BrokerBus):
    """Redis pub/sub: one channel per event type, one pattern subscription per process.

    Pub/sub channels are global to a Redis server (the database number does not separate them): give
    deployments that share a server different prefixes."""

    kind = "redis"

    def __init__(self, url: str, *, prefix: str = DEFAULT_PREFIX, history: int = 1000) -> None:
        super().__init__(url, prefix=prefix, history=history)
        self._client: redis.Redis | None = None
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task | None = None

    @property
    def _pattern(self) -> str:
        return re.sub(r"([\\*?\[\]])", r"\\\1", self.prefix) + ".*"

    async def start(self) -> None:
        if self._started:
            return
        client = self._client = redis.from_url(self.url, health_check_interval=30, socket_connect_timeout=5)
        try:
            pubsub = self._pubsub = client.pubsub(ignore_subscribe_messages=True)
            await pubsub.psubscribe(self._pattern)
            # Wait for the confirmation: from here on, every event published anywhere reaches us.
            while True:
                message = await pubsub.parse_response(block=False, timeout=5)
                if message is None:
                    raise TimeoutError("Redis did not confirm the subscription")
                if message[0] in (b"psubscribe", "psubscribe"):
                    break
        except BaseException:
            await self._disconnect()
            raise
        self._started = True
        self._reader = asyncio.create_task(self._read(pubsub), name="redis-event-bus")
        log.info("event_bus_started", bus=self.kind, url=_redact(self.url), prefix=self.prefix)

    async def _read(self, pubsub: PubSub) -> None:
        while True:
            try:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the connection dropped: redis-py reconnects and resubscribes
                log.warning("event_bus_reconnecting", bus=self.kind, error=repr(exc))
                await asyncio.sleep(1)
                continue
            if message is not None and message.get("type") == "pmessage":
                await self._receive(message["data"])

    def _connected(self) -> redis.Redis:
        if self._client is None:
            raise RuntimeError("the Redis event bus is not started")
        return self._client

    async def _send(self, name: str, payload: bytes) -> None:
        await self._connected().publish(name, payload)

    async def ready(self) -> tuple[bool, str]:
        if not self._started:
            return False, "not started"
        try:
            await asyncio.wait_for(self._connected().ping(), 2)
        except Exception as exc:
            return False, f"redis unreachable: {type(exc).__name__}"
        return True, f"redis {_redact(self.url)}"

    async def close(self) -> None:
        self._started = False
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None
        await self._disconnect()

    async def _disconnect(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(Exception):  # the connection may already be gone
                await self._pubsub.punsubscribe()
            await self._pubsub.aclose()
            self._pubsub = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class NatsBus(BrokerBus):
    """NATS core pub/sub: subject ``<prefix>.<event type>``, one wildcard subscription per process.
    Core NATS keeps nothing: an event published while a process is disconnected is lost for it."""

    kind = "nats"

    def __init__(self, url: str, *, prefix: str = DEFAULT_PREFIX, history: int = 1000) -> None:
        super().__init__(url, prefix=prefix, history=history)
        self._nc: NatsClient | None = None

    async def start(self) -> None:
        if self._started:
            return

        async def on_error(exc: Exception) -> None:
            log.warning("event_bus_error", bus=self.kind, error=repr(exc))

        async def on_disconnected() -> None:
            if self._started:  # not when close() disconnects
                log.warning("event_bus_disconnected", bus=self.kind)

        async def on_reconnected() -> None:
            log.info("event_bus_reconnected", bus=self.kind)

        nc = self._nc = await nats.connect(
            self.url,
            name="agent-lightning",
            connect_timeout=5,
            allow_reconnect=True,
            max_reconnect_attempts=2,  # a server that is not there fails start() within seconds…
            reconnect_time_wait=1,
            error_cb=on_error,
            disconnected_cb=on_disconnected,
            reconnected_cb=on_reconnected,
        )
        nc.options["max_reconnect_attempts"] = -1  # …but once connected, reconnect for ever
        try:
            await nc.subscribe(f"{self.prefix}.>", cb=self._on_message)
            await self._confirm_subscription(nc)
        except BaseException:
            await nc.close()
            self._nc = None
            raise
        self._started = True
        log.info("event_bus_started", bus=self.kind, url=_redact(self.url), prefix=self.prefix)

    @staticmethod
    async def _confirm_subscription(nc: NatsClient) -> None:
        """Return once the server has our subscription, so that every event published from now on
        reaches us. `flush()` is not enough: nats-py writes its PING ahead of commands still buffered.
        A message sent to ourselves after the SUB, on the same connection, comes back only after it."""
        probe = await nc.subscribe(nc.new_inbox(), max_msgs=1)
        await nc.publish(probe.subject, b"")
        await probe.next_msg(timeout=5)

    async def _on_message(self, msg: Msg) -> None:
        await self._receive(msg.data)

    async def _send(self, name: str, payload: bytes) -> None:
        if self._nc is None:
            raise RuntimeError("the NATS event bus is not started")
        await self._nc.publish(name, payload)

    async def ready(self) -> tuple[bool, str]:
        if not self._started or self._nc is None:
            return False, "not started"
        if not self._nc.is_connected:
            return False, "nats disconnected"
        return True, f"nats {_redact(self.url)}"

    async def close(self) -> None:
        self._started = False
        if self._nc is not None:
            nc, self._nc = self._nc, None
            if not nc.is_closed:
                await nc.close()


def make_bus(url: str | None, *, prefix: str = DEFAULT_PREFIX) -> InProcessBus | RedisBus | NatsBus:
    """The event bus for `url` (``ALP_EVENT_BUS_URL``): empty → in-process, ``redis://host:6379/0`` →
    Redis, ``nats://host:4222`` → NATS. Call `start()` before publishing and `close()` at the end."""
    if not url or not url.strip():
        return InProcessBus()
    url = url.strip()
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("redis", "rediss", "unix"):
        return RedisBus(url, prefix=prefix)
    if scheme in ("nats", "tls"):
        return NatsBus(url, prefix=prefix)
    raise ValueError(
        f"Unknown event bus URL scheme {scheme!r} in ALP_EVENT_BUS_URL: use redis://host:6379/0, "
        "nats://host:4222, or leave it empty for the in-process bus."
    )
