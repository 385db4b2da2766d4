"""What a server exposes: refuse to listen beyond loopback without authentication, and on loopback accept
only requests addressed to a loopback name (the Host header), so that a web page cannot reach a local server
through a DNS name that it rebinds to 127.0.0.1 (DNS rebinding)."""

from __future__ import annotations

import ipaddress

from starlette.types import ASGIApp, Receive, Scope, Send

from agent_lightning.core.http import error_response

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    """Whether a bind address or host name stays on this machine."""
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def binding_refusal(host: str, *, auth_enabled: bool, insecure: bool) -> str | None:
    """Why a server must not listen on `host` as configured, or None."""
    if auth_enabled or insecure or is_loopback(host):
        return None
    return (
        f"Refusing to listen on {host} with authentication off: anyone who can reach it would be a platform "
        "admin (run tasks, register models, erase memory). Turn authentication on (ALP_AUTH_ENABLED=true, "
        "ALP_AUTH_SECRET, `alp users create`), listen on 127.0.0.1, or pass --insecure to accept the risk."
    )


def insecure_warning(host: str) -> str:
    return (
        f"INSECURE: authentication is off and the server listens on {host}; every caller who can reach it is "
        "a platform admin."
    )


def request_host(value: str) -> str:
    """The name in a Host header, without port or brackets, lower-case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


class HostHeaderGuard:
    """On a loopback bind: requests (and WebSocket handshakes) whose Host is not a loopback name or one of
    `extra` get 400 `invalid_host`."""

    def __init__(self, app: ASGIApp, extra: list[str] | tuple[str, ...] = ()) -> None:
        self.app = app
        self.allowed = LOOPBACK_NAMES | {request_host(name) for name in extra}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        hosts = [v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"host"]
        raw = hosts[0] if hosts else ""
        if len(hosts) == 1 and request_host(raw) in self.allowed:  # two Host headers: refused (RFC 9112 3.2)
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        response = error_response(
            400,
            "invalid_host",
            f"This server answers only to {', '.join(sorted(self.allowed))} "
            "(it listens on loopback); add other names with ALP_ALLOWED_HOSTS.",
            {"host": raw[:200]},
        )
        await response(scope, receive, send)
