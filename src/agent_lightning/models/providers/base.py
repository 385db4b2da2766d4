"""The provider interface and the error every provider raises, classified for the gateway's routing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from agent_lightning.models.schemas import ChatDelta, ChatRequest, ChatResult


class Provider(Protocol):
    """Answers chat requests for one upstream (a local runtime, an API with one key and base URL)."""

    name: str

    async def chat(self, request: ChatRequest, provider_model: str) -> ChatResult: ...

    def available(self) -> tuple[bool, str]:
        """Whether the provider can answer now, and why not."""
        ...


@runtime_checkable
class StreamingProvider(Protocol):
    def stream(self, request: ChatRequest, provider_model: str) -> AsyncIterator[ChatDelta]: ...


@runtime_checkable
class EmbeddingProvider(Protocol):
    async def embed(self, texts: list[str], provider_model: str) -> tuple[list[list[float]], int]: ...


class ProviderError(Exception):
    """An upstream failure, with what the gateway may do about it.

    `retryable`: the same deployment may succeed if asked again (429, 5xx, timeouts, connection errors).
    `fallback`: another deployment may succeed (everything retryable, plus context-length and auth errors).
    Neither: the request itself is wrong, and the client gets the upstream's 4xx.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 502,
        code: str = "upstream_error",
        retryable: bool = False,
        fallback: bool = True,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.retryable = retryable
        self.fallback = fallback or retryable
        self.retry_after_s = retry_after_s


CONTEXT_HINTS = ("context length", "context_length", "maximum context", "too long", "too many tokens")


def classify_http_error(
    status: int, message: str, code: str | None, retry_after: str | None
) -> ProviderError:
    """Map an upstream HTTP error to a `ProviderError`."""
    lowered = f"{message} {code or ''}".lower()
    after = _parse_retry_after(retry_after)
    if status == 429:
        return ProviderError(message, status=429, code="rate_limited", retryable=True, retry_after_s=after)
    if status >= 500 or status == 408:
        return ProviderError(
            message, status=502, code="upstream_unavailable", retryable=True, retry_after_s=after
        )
    if any(hint in lowered for hint in CONTEXT_HINTS):
        return ProviderError(message, status=400, code="context_length_exceeded", fallback=True)
    if status in (401, 403):
        return ProviderError(message, status=502, code="upstream_auth_failed", fallback=True)
    if status == 404:
        return ProviderError(message, status=502, code="upstream_model_not_found", fallback=True)
    return ProviderError(message, status=400, code=code or "invalid_request", fallback=False)


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
