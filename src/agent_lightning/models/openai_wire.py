"""The OpenAI-compatible wire format: request schemas, their translation to the service's own, and the
response, chunk and error bodies exactly as OpenAI's API shapes them."""

from __future__ import annotations

import base64
import json
import struct
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent_lightning.core.bounds import MAX_TIMEOUT_S, MIN_TIMEOUT_S
from agent_lightning.core.errors import AppError
from agent_lightning.core.tenancy import current_tenant
from agent_lightning.models.schemas import (
    ChatDelta,
    ChatMessage,
    ChatRequest,
    ChatResult,
    EmbeddingResult,
    ModelInfo,
)

HANDLED = {
    "model",
    "messages",
    "temperature",
    "top_p",
    "n",
    "stream",
    "stream_options",
    "stop",
    "max_tokens",
    "max_completion_tokens",
    "tools",
    "tool_choice",
    "metadata",
    "user",
    "timeout",
}
ATTRIBUTION = ("task_id", "agent_id", "tenant_id")


class WireMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class ChatCompletionRequest(BaseModel):
    """`POST /v1/chat/completions`. Unknown fields are passed through to OpenAI-shaped upstreams."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[WireMessage] = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    n: int | None = Field(default=None, ge=1, le=1, description="Only one choice is supported.")
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    stop: str | list[str] | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=32768)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=32768)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    metadata: dict[str, str] | None = Field(
        default=None, description="task_id, agent_id, tenant_id attribute usage."
    )
    user: str | None = None
    timeout: float | None = Field(
        default=None,
        ge=MIN_TIMEOUT_S,
        le=MAX_TIMEOUT_S,
        description="Extension: seconds for the whole request.",
    )
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1, description="Passed to the model.")

    def to_internal(self) -> ChatRequest:
        fields: dict[str, Any] = {
            "model": self.model,
            "messages": [_message(m) for m in self.messages],
            "metadata": _attribution(self.metadata),
        }
        if self.temperature is not None:
            fields["temperature"] = self.temperature
        if self.top_p:
            fields["top_p"] = self.top_p
        limit = self.max_completion_tokens or self.max_tokens
        if limit is not None:
            fields["max_tokens"] = limit
        if self.stop:
            fields["stop"] = [self.stop] if isinstance(self.stop, str) else self.stop
        if self.tools:
            fields["tools"] = self.tools
        if self.tool_choice is not None:
            fields["tool_choice"] = self.tool_choice
        if self.timeout:
            fields["timeout_s"] = self.timeout
        extra = {k: v for k, v in self.model_dump(exclude_none=True).items() if k not in HANDLED}
        if self.user:
            extra["user"] = self.user
        if extra:
            fields["extra"] = extra
        return ChatRequest(**fields)

    @property
    def include_usage(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))


class EmbeddingsRequest(BaseModel):
    """`POST /v1/embeddings`."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    input: str | list[str] = Field(description="Text or texts (token arrays are not supported).")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1, le=65536)
    user: str | None = None
    metadata: dict[str, str] | None = None

    def texts(self) -> list[str]:
        texts = [self.input] if isinstance(self.input, str) else list(self.input)
        if not texts:
            raise AppError("'input' must not be empty.", code="invalid_value", details={"param": "input"})
        return texts


def _message(message: WireMessage) -> ChatMessage:
    content, images = message.content, []
    if isinstance(content, list):
        unknown = sorted(
            {str(p.get("type")) for p in content if p.get("type") not in ("text", "input_text", "image_url")}
        )
        if unknown:
            raise AppError(
                f"Content parts of type {', '.join(unknown)} are not supported.",
                code="unsupported_content",
                details={"param": "messages", "types": unknown},
            )
        images = [_image_url(part) for part in content if part.get("type") == "image_url"]
        content = "".join(
            part.get("text", "") for part in content if part.get("type") in ("text", "input_text")
        )
    role = {"developer": "system", "function": "tool"}.get(message.role, message.role)
    return ChatMessage(
        role=role,
        content=content or "",
        name=message.name,
        tool_calls=message.tool_calls,
        tool_call_id=message.tool_call_id,
        images=images or None,
    )


def _image_url(part: dict[str, Any]) -> str:
    value = part.get("image_url")
    url = value.get("url") if isinstance(value, dict) else value
    if not isinstance(url, str) or not url.startswith(("https://", "http://", "data:image/")):
        raise AppError(
            "An image_url part needs an http(s) URL or a data:image/… URL.",
            code="invalid_value",
            details={"param": "messages"},
        )
    return url


def _attribution(metadata: dict[str, str] | None) -> dict[str, str]:
    result = dict(metadata or {})
    result.setdefault("tenant_id", current_tenant())
    return result


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def completion_body(result: ChatResult) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": result.content, "refusal": None}
    if result.tool_calls:
        message["tool_calls"] = result.tool_calls
        message["content"] = result.content or None
    return {
        "id": completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": result.model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": result.finish_reason}
        ],
        "usage": {
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "total_tokens": result.prompt_tokens + result.completion_tokens,
        },
        "system_fingerprint": None,
    }


class ChunkWriter:
    """Turns deltas into `chat.completion.chunk` server-sent events, as OpenAI sends them."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.id = completion_id()
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage

    def _event(self, choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": choices,
        }
        if self.include_usage:
            chunk["usage"] = usage
        return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"

    def role(self) -> bytes:
        return self._event([_choice({"role": "assistant", "content": "", "refusal": None})])

    def delta(self, delta: ChatDelta) -> bytes:
        body: dict[str, Any] = {}
        if delta.content:
            body["content"] = delta.content
        if delta.tool_calls:
            body["tool_calls"] = delta.tool_calls
        return self._event([_choice(body)])

    def finish(self, reason: str) -> bytes:
        return self._event([_choice({}, reason)])

    def usage(self, prompt_tokens: int, completion_tokens: int) -> bytes:
        total = prompt_tokens + completion_tokens
        return self._event(
            [],
            {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": total},
        )

    @staticmethod
    def error(exc: AppError) -> bytes:
        return b"data: " + json.dumps(error_body(exc.status, exc.message, exc.code)).encode() + b"\n\n"

    @staticmethod
    def done() -> bytes:
        return b"data: [DONE]\n\n"


def _choice(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


def embeddings_body(result: EmbeddingResult, encoding: str) -> dict[str, Any]:
    def encode(vector: list[float]) -> list[float] | str:
        if encoding == "base64":
            return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        return vector

    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(result.vectors)
        ],
        "model": result.model,
        "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
    }


def model_body(info: ModelInfo) -> dict[str, Any]:
    created = int(info.created_at.timestamp()) if info.created_at else 0
    return {"id": info.id, "object": "model", "created": created, "owned_by": info.provider}


ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def error_body(status: int, message: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape: ``{"error": {"message", "type", "param", "code"}}``."""
    kind = ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


# --- response shapes, for the OpenAPI document (bodies are built as dicts above for speed) ---------------


class WireUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int


class WireChoice(BaseModel):
    index: int
    message: dict[str, Any]
    logprobs: None = None
    finish_reason: str


class ChatCompletion(BaseModel):
    """`chat.completion`; with `"stream": true` the answer is `text/event-stream` of
    `chat.completion.chunk`."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[WireChoice]
    usage: WireUsage
    system_fingerprint: str | None = None


class WireEmbedding(BaseModel):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str


class EmbeddingList(BaseModel):
    object: Literal["list"]
    data: list[WireEmbedding]
    model: str
    usage: WireUsage


class WireModel(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class WireModelList(BaseModel):
    object: Literal["list"]
    data: list[WireModel]


class WireErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class WireError(BaseModel):
    """OpenAI's error body."""

    error: WireErrorDetail
