"""Anthropic's Messages API over httpx, translated to and from the OpenAI shape the gateway speaks."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from agent_lightning.core.egress import EgressDenied, EgressGuard
from agent_lightning.models.providers.base import ProviderError
from agent_lightning.models.providers.openai import error_from_response, http_client, transport_error
from agent_lightning.models.schemas import ChatDelta, ChatMessage, ChatRequest, ChatResult

API_VERSION = "2023-06-01"
STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls"}


def to_anthropic(request: ChatRequest, provider_model: str) -> dict[str, Any]:
    """The Messages API body for an OpenAI-shaped request."""
    system = "\n\n".join(m.content for m in request.messages if m.role == "system")
    messages: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role == "system":
            continue
        blocks = _blocks(message)
        role = "assistant" if message.role == "assistant" else "user"
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)  # Anthropic wants user and assistant turns to alternate
        else:
            messages.append({"role": role, "content": blocks})
    body: dict[str, Any] = {
        "model": provider_model,
        "messages": messages,
        "max_tokens": request.max_tokens,
        "temperature": min(request.temperature, 1.0),
    }
    if system:
        body["system"] = system
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop_sequences"] = request.stop
    if request.tools:
        body["tools"] = [
            {
                "name": tool["function"]["name"],
                "description": tool["function"].get("description", ""),
                "input_schema": tool["function"].get("parameters") or {"type": "object", "properties": {}},
            }
            for tool in request.tools
            if tool.get("type") == "function"
        ]
        choice = request.tool_choice
        if choice == "required":
            body["tool_choice"] = {"type": "any"}
        elif isinstance(choice, dict) and choice.get("function"):
            body["tool_choice"] = {"type": "tool", "name": choice["function"]["name"]}
        elif choice in ("auto", "none"):
            body["tool_choice"] = {"type": choice}
    return body


def _blocks(message: ChatMessage) -> list[dict[str, Any]]:
    if message.role == "tool":
        return [
            {"type": "tool_result", "tool_use_id": message.tool_call_id or "", "content": message.content}
        ]
    blocks: list[dict[str, Any]] = []
    for url in message.images or []:
        blocks.append({"type": "image", "source": _image_source(url)})
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    for call in message.tool_calls or []:
        function = call.get("function") or {}
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except ValueError:
            arguments = {}
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id", ""),
                "name": function.get("name", ""),
                "input": arguments,
            }
        )
    return blocks or [{"type": "text", "text": ""}]


def _image_source(url: str) -> dict[str, str]:
    """An image as Anthropic takes it: base64 data from a data: URL, or the URL itself."""
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        return {"type": "base64", "media_type": header[len("data:") :].split(";")[0], "data": data}
    return {"type": "url", "url": url}


class AnthropicProvider:
    """Claude models through the Messages API, with one key and base URL."""

    def __init__(
        self,
        name: str,
        base_url: str,
        api_key: str | None,
        *,
        timeout_s: float = 120.0,
        guard: EgressGuard | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        headers = {"anthropic-version": API_VERSION, "content-type": "application/json"}
        if api_key:
            headers["x-api-key"] = api_key
        self._client = http_client(headers, timeout_s, guard)

    def available(self) -> tuple[bool, str]:
        if not self._api_key:
            return False, "no Anthropic API key (set ALP_ANTHROPIC_API_KEY or ANTHROPIC_API_KEY)"
        return True, self.base_url

    async def close(self) -> None:
        await self._client.aclose()

    async def chat(self, request: ChatRequest, provider_model: str) -> ChatResult:
        started = time.perf_counter()
        try:
            response = await self._client.post(
                f"{self.base_url}/v1/messages", json=to_anthropic(request, provider_model)
            )
        except (httpx.HTTPError, EgressDenied) as exc:
            raise transport_error(exc) from exc
        if response.status_code >= 400:
            raise error_from_response(response, response.content)
        try:
            data = response.json()
            blocks = data["content"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ProviderError("The upstream's answer is not a message.", retryable=True) from exc
        text = "".join(block.get("text", "") for block in blocks if block.get("type") == "text")
        calls = [
            {
                "id": block["id"],
                "type": "function",
                "function": {"name": block["name"], "arguments": json.dumps(block.get("input") or {})},
            }
            for block in blocks
            if block.get("type") == "tool_use"
        ]
        usage = data.get("usage") or {}
        return ChatResult(
            content=text,
            tool_calls=calls or None,
            model=request.model,
            provider=self.name,
            provider_model=data.get("model") or provider_model,
            prompt_tokens=usage.get("input_tokens") or 0,
            completion_tokens=usage.get("output_tokens") or 0,
            latency_ms=(time.perf_counter() - started) * 1000,
            finish_reason=STOP_REASONS.get(data.get("stop_reason") or "", "stop"),
        )

    async def stream(self, request: ChatRequest, provider_model: str) -> AsyncIterator[ChatDelta]:
        body = {**to_anthropic(request, provider_model), "stream": True}
        prompt_tokens = completion_tokens = 0
        finish_reason = "stop"
        tool_index: dict[int, int] = {}  # Anthropic content block index -> OpenAI tool call index
        try:
            async with self._client.stream("POST", f"{self.base_url}/v1/messages", json=body) as response:
                if response.status_code >= 400:
                    raise error_from_response(response, await response.aread())
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    event = json.loads(line[5:].strip())
                    kind = event.get("type")
                    if kind == "message_start":
                        usage = event.get("message", {}).get("usage") or {}
                        prompt_tokens = usage.get("input_tokens") or 0
                        completion_tokens = usage.get("output_tokens") or 0
                    elif kind == "content_block_start" and event["content_block"].get("type") == "tool_use":
                        block = event["content_block"]
                        index = tool_index.setdefault(event["index"], len(tool_index))
                        yield ChatDelta(
                            tool_calls=[
                                {
                                    "index": index,
                                    "id": block["id"],
                                    "type": "function",
                                    "function": {"name": block["name"], "arguments": ""},
                                }
                            ]
                        )
                    elif kind == "content_block_delta":
                        delta = event["delta"]
                        if delta.get("type") == "text_delta" and delta.get("text"):
                            yield ChatDelta(content=delta["text"])
                        elif delta.get("type") == "input_json_delta":
                            index = tool_index.get(event["index"], 0)
                            yield ChatDelta(
                                tool_calls=[
                                    {"index": index, "function": {"arguments": delta.get("partial_json", "")}}
                                ]
                            )
                    elif kind == "message_delta":
                        reason = (event.get("delta") or {}).get("stop_reason")
                        if reason:
                            finish_reason = STOP_REASONS.get(reason, "stop")
                        completion_tokens = (event.get("usage") or {}).get("output_tokens", completion_tokens)
                    elif kind == "error":
                        error = event.get("error") or {}
                        raise ProviderError(
                            error.get("message", "Upstream stream error."),
                            code="upstream_error",
                            retryable=True,
                        )
                    elif kind == "message_stop":
                        break
        except (httpx.HTTPError, EgressDenied) as exc:
            raise transport_error(exc) from exc
        yield ChatDelta(
            finish_reason=finish_reason, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )
