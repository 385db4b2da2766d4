"""Outbound requests to URLs that a caller chose (a model's base URL, a fetch tool): the SSRF guard.

A URL is allowed when every address its host resolves to is a public unicast address, or when the operator
allowed it (`ALP_EGRESS_ALLOW`: host names, `*.suffix` wildcards, IP addresses or CIDR networks, each with an
optional `:port`). Private, loopback, link-local (cloud metadata at 169.254.169.254), shared, multicast,
reserved and unspecified ranges are refused, for IPv4 and IPv6 alike, including IPv4 addresses embedded in
IPv6 ones (IPv4-mapped, 6to4, Teredo, NAT64).

Checking a name and then letting the HTTP client resolve it again would let a DNS server answer a public
address to the check and a private one to the connection (DNS rebinding). So the guard *pins*: it resolves
the host once, checks those addresses, and the request is sent to the checked address itself, with the
original name kept in the `Host` header and as the TLS server name (SNI and certificate check).

Use it as:

    guard = EgressGuard(settings.egress_allow)
    client = guard.client(timeout=30, follow_redirects=True)     # every request and redirect is pinned
    pinned = await guard.pin(url)                                # or pin one URL yourself (e.g. for aiohttp)
    await guard.check(url)                                       # or only check (validation of a setting)

A refused URL raises `EgressDenied` (an `AppError`, code `egress_denied`, status 403).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from agent_lightning.core.errors import AppError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""Resolves a host name and port to IP address strings (the seam for a test's DNS)."""

DEFAULT_PORTS = {"http": 80, "https": 443}
NAT64 = ipaddress.ip_network("64:ff9b::/96")
RESOLVE_CACHE_S = 5.0
"""Checked resolutions are reused this long (they were checked: reusing them cannot open a
rebinding window)."""


class EgressDenied(AppError):
    """An outbound URL aims at an address the operator has not allowed."""

    status = 403
    code = "egress_denied"


@dataclass(frozen=True)
class Pinned:
    """A URL with its host replaced by the checked address, and what the request must carry to still be
    the same request: the original `Host` header and, for https, the server name to verify."""

    url: str
    address: str
    host_header: str
    server_hostname: str | None


@dataclass(frozen=True)
class _Rule:
    name: str | None = None  # exact host name, or ".suffix" for a wildcard
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    port: int | None = None

    def matches_name(self, host: str, port: int) -> bool:
        if self.name is None or (self.port is not None and self.port != port):
            return False
        return host.endswith(self.name) if self.name.startswith(".") else host == self.name

    def matches_address(self, address: IPAddress, port: int) -> bool:
        if self.network is None or (self.port is not None and self.port != port):
            return False
        return address in self.network


def parse_rule(entry: str) -> _Rule:
    """One allow-list entry: `host`, `*.suffix`, `1.2.3.4`, `10.0.0.0/8`, `fd00::/8`, each with an
    optional `:port` (`[::1]:8080` for IPv6 with a port)."""
    text = entry.strip().lower()
    if not text:
        raise ValueError("An empty egress allow-list entry.")
    port: int | None = None
    if text.startswith("["):  # [v6] or [v6]:port
        inside, _, rest = text[1:].partition("]")
        text, port = inside, _port(rest.removeprefix(":"), entry) if rest else None
    elif text.count(":") == 1:  # host:port or v4:port (a bare IPv6 address has several colons)
        text, raw_port = text.split(":")
        port = _port(raw_port, entry)
    try:
        return _Rule(network=ipaddress.ip_network(text, strict=False), port=port)
    except ValueError:
        pass
    if text.startswith("*."):
        return _Rule(name=text[1:], port=port)
    if not text or any(c in text for c in "/*@ "):
        raise ValueError(f"Invalid egress allow-list entry {entry!r}: use a host, *.suffix, an IP or a CIDR.")
    return _Rule(name=text.rstrip("."), port=port)


def _port(raw: str, entry: str) -> int:
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ValueError(f"Invalid port in egress allow-list entry {entry!r}.")
    return int(raw)


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo client, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: IPAddress) -> bool:
    """A globally routable unicast address (and, for IPv6, so is any IPv4 address inside it)."""
    if not address.is_global or address.is_multicast:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        return inner is None or is_public(inner)
    return True


def parse_address(text: str) -> IPAddress:
    """An address as getaddrinfo or a URL spells it (brackets and an IPv6 zone are dropped)."""
    return ipaddress.ip_address(text.strip("[]").split("%", 1)[0])


async def system_resolver(host: str, port: int) -> list[str]:
    """The host's addresses from the system resolver (getaddrinfo, in a thread)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class EgressGuard:
    """Checks and pins outbound URLs against the operator's allow-list (see the module docstring)."""

    def __init__(self, allow: Iterable[str] = (), *, resolver: Resolver | None = None) -> None:
        self.rules = [parse_rule(entry) for entry in allow]
        self._resolve = resolver or system_resolver
        self._cache: dict[tuple[str, int], tuple[float, list[str]]] = {}

    def allow(self, *entries: str) -> None:
        """Allow more destinations."""
        self.rules.extend(parse_rule(entry) for entry in entries)

    def allow_url(self, url: str) -> None:
        """Allow the host and port of a URL the operator configured (not the host's other ports)."""
        parts = urlsplit(url)
        if parts.hostname and parts.scheme in DEFAULT_PORTS:
            host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
            self.allow(f"{host}:{parts.port or DEFAULT_PORTS[parts.scheme]}")

    async def check(self, url: str) -> None:
        """Raise `EgressDenied` unless `url` may be requested."""
        await self.pin(url)

    async def pin(self, url: str) -> Pinned:
        """Resolve and check `url`'s host; the URL with the checked address in its place."""
        parts = urlsplit(url)
        scheme = (parts.scheme or "").lower()
        if scheme not in DEFAULT_PORTS or not parts.hostname:
            raise EgressDenied(
                f"Only http and https URLs with a host can be requested (got {url[:200]!r}).",
                details={"url": url[:200]},
            )
        try:
            port = parts.port or DEFAULT_PORTS[scheme]
        except ValueError as exc:
            raise EgressDenied(
                f"The URL {url[:200]!r} has an invalid port.", details={"url": url[:200]}
            ) from exc
        host = parts.hostname.rstrip(".")
        named_ok = any(rule.matches_name(host, port) for rule in self.rules)
        addresses = await self._addresses(host, port)
        chosen = None
        for text in addresses:
            address = parse_address(text)
            if not (
                named_ok or is_public(address) or any(r.matches_address(address, port) for r in self.rules)
            ):
                raise EgressDenied(
                    f"Requests to {host} are refused: it resolves to {address}, a private, loopback, "
                    "link-local or reserved address. An operator can allow it with ALP_EGRESS_ALLOW.",
                    details={"host": host, "address": str(address), "port": port},
                )
            chosen = chosen or address
        if chosen is None:  # resolution returned no address at all
            raise EgressDenied(f"{host} resolved to no address.", details={"host": host})
        literal = f"[{chosen}]" if chosen.version == 6 else str(chosen)
        netloc = f"{literal}:{parts.port}" if parts.port else literal
        pinned_url = parts._replace(netloc=netloc).geturl()
        host_header = parts.netloc.rsplit("@", 1)[-1]
        is_name = not _is_ip_literal(parts.hostname)
        return Pinned(
            url=pinned_url,
            address=str(chosen),
            host_header=host_header,
            server_hostname=host if scheme == "https" and is_name else None,
        )

    async def _addresses(self, host: str, port: int) -> list[str]:
        if _is_ip_literal(host):
            return [host.strip("[]")]
        key = (host, port)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        try:
            addresses = await self._resolve(host, port)
        except OSError as exc:
            raise EgressDenied(f"The host {host} cannot be resolved.", details={"host": host}) from exc
        if not addresses:
            raise EgressDenied(f"The host {host} has no address.", details={"host": host})
        if len(self._cache) > 1024:
            self._cache.clear()
        self._cache[key] = (time.monotonic() + RESOLVE_CACHE_S, addresses)
        return addresses

    def transport(self, **kwargs: Any) -> httpx.AsyncBaseTransport:
        """An httpx transport that pins every request (redirects included); `kwargs` go to
        `httpx.AsyncHTTPTransport` (limits, verify, …)."""
        return PinnedTransport(self, lambda: httpx.AsyncHTTPTransport(**kwargs))

    def client(
        self, *, limits: httpx.Limits | None = None, verify: Any = True, **kwargs: Any
    ) -> httpx.AsyncClient:
        """An `httpx.AsyncClient` whose every request is pinned. Proxies from the environment are ignored
        (`trust_env=False`): a proxy would connect on its own, past the guard."""
        transport = self.transport(limits=limits or httpx.Limits(), verify=verify)
        return httpx.AsyncClient(transport=transport, trust_env=False, **kwargs)


def _is_ip_literal(host: str) -> bool:
    try:
        parse_address(host)
    except ValueError:
        return False
    return True


class PinnedTransport(httpx.AsyncBaseTransport):
    """Sends each request to the address `EgressGuard.pin` checked, keeping its Host header and TLS name.

    Connections are pooled by address, so TLS connections get a pool per server name: a connection verified
    for one name is never reused for another name that resolves to the same address."""

    MAX_POOLS = 64

    def __init__(self, guard: EgressGuard, make_inner: Callable[[], httpx.AsyncBaseTransport]) -> None:
        self.guard = guard
        self._make_inner = make_inner
        self._pools: dict[str, httpx.AsyncBaseTransport] = {}

    async def _pool(self, server_hostname: str | None) -> httpx.AsyncBaseTransport:
        key = server_hostname or ""
        pool = self._pools.get(key)
        if pool is None:
            if len(self._pools) >= self.MAX_POOLS:  # drop the oldest name's connections
                await self._pools.pop(next(iter(self._pools))).aclose()
            pool = self._pools[key] = self._make_inner()
        return pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        pinned = await self.guard.pin(str(request.url))
        headers = request.headers.copy()
        headers["Host"] = pinned.host_header
        extensions = dict(request.extensions)
        if pinned.server_hostname:
            extensions["sni_hostname"] = pinned.server_hostname
        sent = httpx.Request(
            request.method, pinned.url, headers=headers, stream=request.stream, extensions=extensions
        )
        return await (await self._pool(pinned.server_hostname)).handle_async_request(sent)

    async def aclose(self) -> None:
        for pool in self._pools.values():
            await pool.aclose()
        self._pools.clear()
