"""OpenAI and any OpenAI-compatible upstream (Ollama, vLLM, LM Studio, another gateway), over httpx."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import orjson

from agent_lightning.core.egress import EgressDenied, EgressGuard
from agent_lightning.models.providers.base import ProviderError, classify_http_error
from agent_lightning.models.schemas import ChatDelta, ChatMessage, ChatRequest, ChatResult

JSON_HEADERS = {"Content-Type": "application/json"}


def _limits() -> httpx.Limits:
    return httpx.Limits(max_connections=200, max_keepalive_connections=100, keepalive_expiry=30)


def http_client(headers: dict[str, str], timeout_s: float, guard: EgressGuard | None) -> httpx.AsyncClient:
    """The httpx client of one upstream; with a guard, every request goes to the address it checked."""
    if guard is None:
        return httpx.AsyncClient(headers=headers, timeout=timeout_s, limits=_limits())
    return guard.client(headers=headers, timeout=timeout_s, limits=_limits())


def transport_error(exc: Exception) -> ProviderError:
    """A `ProviderError` for a transport failure: retryable, except a destination the egress guard refused."""
    if isinstance(exc, EgressDenied):
        return ProviderError(exc.message, status=403, code="egress_denied", fallback=True)
    if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
        return ProviderError("The upstream timed out.", status=504, code="upstream_timeout", retryable=True)
    return ProviderError(
        f"The upstream could not be reached ({type(exc).__name__}).",
        status=502,
        code="upstream_unreachable",
        retryable=True,
    )


def error_from_response(response: httpx.Response, body: bytes) -> ProviderError:
    """A `ProviderError` from an upstream's error answer (OpenAI and Anthropic shapes)."""
    return error_from_body(response.status_code, body, response.headers.get("retry-after"))


def error_from_body(status: int, body: bytes, retry_after: str | None) -> ProviderError:
    message, code = f"Upstream answered {status}.", None
    try:
        error = json.loads(body).get("error")
        if isinstance(error, dict):
            message = str(error.get("message") or message)
            code = error.get("code") or error.get("type")
        elif isinstance(error, str):
            message = error
    except (ValueError, AttributeError):
        pass
    return classify_http_error(status, message, code, retry_after)


def _wire_message(message: ChatMessage) -> dict[str, Any]:
    """The message as OpenAI takes it: with images, its content is a list of text and image_url parts."""
    body = message.model_dump(exclude_none=True, exclude={"images"})
    if message.images:
        body["content"] = [{"type": "text", "text": message.content}] + [
            {"type": "image_url", "image_url": {"url": url}} for url in message.images
        ]
    return body


class OpenAIProvider:
    """Chat completions and embeddings against one OpenAI-shaped base URL with one key."""

    def __init__(
        self,
        name: str,
        base_url: str,
        api_key: str | None,
        *,
        timeout_s: float = 120.0,
        requires_key: bool = False,
        guard: EgressGuard | None = None,
    ) -> None:
        self.name = name
        self.requires_key = requires_key
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._headers = headers
        self._timeout_s = timeout_s
        self._guard = guard
        self._client = http_client(headers, timeout_s, guard)
        self._session: aiohttp.ClientSession | None = None  # the one-shot path: aiohttp costs less per call

    def _aiohttp(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=200, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self._timeout_s),
            )
        return self._session

    def available(self) -> tuple[bool, str]:
        if self.requires_key and not self._api_key:
            return (
                False,
                "no API key (set ALP_OPENAI_API_KEY or OPENAI_API_KEY, or the deployment's api_key_env)",
            )
        return True, self.base_url

    async def close(self) -> None:
        await self._client.aclose()
        if self._session is not None:
            await self._session.close()

    def _body(self, request: ChatRequest, provider_model: str, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {**request.extra}
        body.update(
            model=provider_model,
            messages=[_wire_message(m) for m in request.messages],
            temperature=request.temperature,
            max_tokens=request.max_tokens,
        )
        for field in ("top_p", "stop", "tools", "tool_choice"):
            value = getattr(request, field)
            if value is not None:
                body[field] = value
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    async def chat(self, request: ChatRequest, provider_model: str) -> ChatResult:
        started = time.perf_counter()
        url, headers, server_hostname = f"{self.base_url}/chat/completions", JSON_HEADERS, None
        try:
            if self._guard is not None:  # aiohttp connects to the checked address; Host and TLS name stay
                pinned = await self._guard.pin(url)
                url, server_hostname = pinned.url, pinned.server_hostname
                headers = {**JSON_HEADERS, "Host": pinned.host_header}
            async with self._aiohttp().post(
                url,
                data=orjson.dumps(self._body(request, provider_model, False)),
                headers=headers,
                server_hostname=server_hostname,
            ) as response:
                raw = await response.read()
                status, retry_after = response.status, response.headers.get("retry-after")
        except (aiohttp.ClientError, OSError, EgressDenied) as exc:
            raise transport_error(exc) from exc
        if status >= 400:
            raise error_from_body(status, raw, retry_after)
        try:
            data = orjson.loads(raw)
            choice = data["choices"][0]
            message = choice.get("message") or {}
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ProviderError("The upstream's answer is not a chat completion.", retryable=True) from exc
        usage = data.get("usage") or {}
        return ChatResult(
            content=message.get("content") or "",
            tool_calls=message.get("tool_calls") or None,
            model=request.model,
            provider=self.name,
            provider_model=data.get("model") or provider_model,
            prompt_tokens=usage.get("prompt_tokens") or 0,
            completion_tokens=usage.get("completion_tokens") or 0,
            latency_ms=(time.perf_counter() - started) * 1000,
            finish_reason=choice.get("finish_reason") or "stop",
        )

    async def stream(self, request: ChatRequest, provider_model: str) -> AsyncIterator[ChatDelta]:
        body = self._body(request, provider_model, True)
        finish_reason: str | None = None
        usage: dict[str, int] = {}
        try:
            async with self._client.stream(
                "POST", f"{self.base_url}/chat/completions", json=body
            ) as response:
                if response.status_code >= 400:
                    raise error_from_response(response, await response.aread())
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        break
                    chunk = json.loads(payload)
                    if chunk.get("usage"):
                        usage = chunk["usage"]
                    for choice in chunk.get("choices") or []:
                        delta = choice.get("delta") or {}
                        if choice.get("finish_reason"):
                            finish_reason = choice["finish_reason"]
                        if delta.get("content") or delta.get("tool_calls"):
                            yield ChatDelta(
                                content=delta.get("content") or "", tool_calls=delta.get("tool_calls")
                            )
        except (httpx.HTTPError, EgressDenied) as exc:
            raise transport_error(exc) from exc
        yield ChatDelta(
            finish_reason=finish_reason or "stop",
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
        )

    async def embed(self, texts: list[str], provider_model: str) -> tuple[list[list[float]], int]:
        try:
            response = await self._client.post(
                f"{self.base_url}/embeddings", json={"model": provider_model, "input": texts}
            )
        except (httpx.HTTPError, EgressDenied) as exc:
            raise transport_error(exc) from exc
        if response.status_code >= 400:
            raise error_from_response(response, response.content)
        data = response.json()
        rows = sorted(data["data"], key=lambda row: row.get("index", 0))
        return [row["embedding"] for row in rows], (data.get("usage") or {}).get("prompt_tokens", 0)
