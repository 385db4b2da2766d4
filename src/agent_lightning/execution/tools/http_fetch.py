"""`http_fetch`: GET or POST a URL, through the outbound guard (`core/egress.py`: no private, loopback or
link-local address unless the operator allowed it in `ALP_EGRESS_ALLOW`), to hosts on the allow-list
(`ALP_HTTP_FETCH_HOSTS`; empty: any public host), with a size and a time limit; HTML comes back as text."""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin, urlsplit

import html_text
import httpx

from agent_lightning.core.egress import EgressDenied, EgressGuard
from agent_lightning.execution.tools.base import ToolContext, ToolMisuse, ToolOutage, ToolSpec, object_schema

MAX_REDIRECTS = 5
TEXT_TYPES = ("text/", "application/json", "application/xml", "application/xhtml", "application/javascript")


def host_allowed(host: str, patterns: list[str]) -> bool:
    """Whether `host` is on the allow-list (`example.org`, or `*.example.org` for its subdomains too)."""
    if not patterns:
        return True
    host = host.lower().rstrip(".")
    for pattern in patterns:
        pattern = pattern.lower()
        if pattern.startswith("*.") and (host == pattern[2:] or host.endswith(pattern[1:])):
            return True
        if host == pattern:
            return True
    return False


class HttpFetch:
    def __init__(self, guard: EgressGuard, *, hosts: list[str], max_bytes: int, timeout_s: float) -> None:
        self.guard = guard
        self.hosts = hosts
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.spec = ToolSpec(
            name="http_fetch",
            description="Fetch a web page or API over HTTP(S): GET, or POST with a body. Returns the status "
            "and the content (HTML as plain text)."
            + (f" Allowed hosts: {', '.join(hosts)}." if hosts else ""),
            parameters=object_schema(
                {
                    "url": {
                        "type": "string",
                        "minLength": 8,
                        "maxLength": 2000,
                        "description": "http:// or https:// URL",
                    },
                    "method": {"type": "string", "enum": ["GET", "POST"]},
                    "body": {"type": "string", "maxLength": 100_000, "description": "POST body"},
                    "content_type": {"type": "string", "maxLength": 100},
                },
                ["url"],
            ),
            timeout_s=timeout_s + 5,
        )

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> str:
        method = arguments.get("method", "GET")
        url = arguments["url"]
        content = arguments.get("body")
        headers = (
            {"Content-Type": arguments.get("content_type") or "application/json"}
            if content is not None
            else {}
        )
        async with self.guard.client(timeout=self.timeout_s, follow_redirects=False) as client:
            for _ in range(MAX_REDIRECTS + 1):
                self._check_host(url)
                try:
                    status, reason, kind, body, cut, location = await self._send(
                        client, method, url, content, headers
                    )
                except EgressDenied as exc:
                    raise ToolMisuse(exc.message) from exc
                except httpx.TimeoutException as exc:
                    raise ToolOutage(
                        f"{urlsplit(url).hostname} did not answer within {self.timeout_s:g} s."
                    ) from exc
                except httpx.HTTPError as exc:
                    raise ToolOutage(
                        f"{urlsplit(url).hostname} could not be reached ({type(exc).__name__})."
                    ) from exc
                if location is None:
                    break
                url, method, content, headers = urljoin(url, location), "GET", None, {}
            else:
                raise ToolMisuse(f"More than {MAX_REDIRECTS} redirects.")
        return self._render(url, status, reason, kind, body, cut)

    def _check_host(self, url: str) -> None:
        host = urlsplit(url).hostname or ""
        if not host_allowed(host, self.hosts):
            raise ToolMisuse(f"{host or url!r} is not on the allowed hosts ({', '.join(self.hosts)}).")

    async def _send(
        self, client: httpx.AsyncClient, method: str, url: str, content: str | None, headers: dict
    ):
        async with client.stream(method, url, content=content, headers=headers) as response:
            if response.is_redirect and response.headers.get("location"):
                return (
                    response.status_code,
                    response.reason_phrase,
                    "",
                    b"",
                    False,
                    response.headers["location"],
                )
            chunks, size, cut = [], 0, False
            async for chunk in response.aiter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size > self.max_bytes:
                    cut = True
                    break
            body = b"".join(chunks)[: self.max_bytes]
            kind = response.headers.get("content-type", "")
            return response.status_code, response.reason_phrase, kind, body, cut, None

    def _render(self, url: str, status: int, reason: str, kind: str, body: bytes, cut: bool) -> str:
        head = f"HTTP {status} {reason} from {url}"
        if kind and not kind.startswith(TEXT_TYPES):
            return f"{head}\n[{len(body)} bytes of {kind}: not text]"
        text = body.decode("utf-8", errors="replace")
        if "html" in kind or text.lstrip()[:15].lower().startswith(("<!doctype html", "<html")):
            text = html_text.extract_text(text, guess_layout=True)
        note = f"\n[cut at {self.max_bytes} bytes]" if cut else ""
        return f"{head}\n\n{text}{note}"
