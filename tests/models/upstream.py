"""Fake OpenAI and Anthropic upstreams served over real HTTP (uvicorn on a loopback port in a thread).

Each answers from a script: a list of steps (status, body, delay, headers) consumed in order, then a
default answer that echoes the last user message, so tests can tell which upstream answered."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class Step:
    status: int = 200
    body: Any = None
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeUpstream:
    """One fake provider endpoint. `script` is consumed first; `requests` records every body received."""

    def __init__(
        self, name: str, usage: tuple[int, int] = (10, 5), *, host: str = "127.0.0.1", **ssl: str
    ) -> None:
        self.name = name
        self.usage = usage
        self.script: list[Step] = []
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.port = free_port()
        self.url = f"{'https' if ssl else 'http'}://{host}:{self.port}"
        app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._openai_chat, methods=["POST"]),
                Route("/v1/embeddings", self._openai_embeddings, methods=["POST"]),
                Route("/v1/messages", self._anthropic_messages, methods=["POST"]),
            ]
        )
        self._server = uvicorn.Server(
            uvicorn.Config(app, host=host, port=self.port, log_level="error", **ssl)
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> FakeUpstream:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake upstream did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5)

    def push(self, *steps: Step) -> None:
        self.script.extend(steps)

    async def _next(self, request: Request) -> tuple[dict[str, Any], Step | None]:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        step = self.script.pop(0) if self.script else None
        if step is not None and step.delay_s:
            await asyncio.sleep(step.delay_s)
        return body, step

    def _scripted(self, step: Step) -> Response:
        return JSONResponse(step.body, status_code=step.status, headers=step.headers)

    @staticmethod
    def _last_user(messages: list[dict[str, Any]]) -> str:
        for message in reversed(messages):
            if message["role"] == "user":
                content = message["content"]
                if isinstance(content, list):
                    return "".join(block.get("text", "") for block in content)
                return content
        return ""

    async def _openai_chat(self, request: Request) -> Response:
        body, step = await self._next(request)
        if step is not None and (step.status != 200 or step.body is not None):
            return self._scripted(step)
        text = f"{self.name} says: {self._last_user(body['messages'])}"
        prompt, completion = self.usage
        if body.get("tools"):
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {
                            "name": body["tools"][0]["function"]["name"],
                            "arguments": '{"city": "Paris"}',
                        },
                    }
                ],
            }
            finish = "tool_calls"
        else:
            message, finish = {"role": "assistant", "content": text}, "stop"
        if not body.get("stream"):
            return JSONResponse(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": 1,
                    "model": body["model"],
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": {
                        "prompt_tokens": prompt,
                        "completion_tokens": completion,
                        "total_tokens": prompt + completion,
                    },
                }
            )

        async def events():
            base = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": body["model"],
            }
            for word in text.split(" "):
                chunk = {
                    **base,
                    "choices": [{"index": 0, "delta": {"content": word + " "}, "finish_reason": None}],
                }
                yield f"data: {json.dumps(chunk)}\n\n"
            yield (
                "data: "
                f"{json.dumps({**base, 'choices': [{'index': 0, 'delta': {}, 'finish_reason': 'stop'}]})}\n\n"
            )
            usage = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }
            yield f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    async def _openai_embeddings(self, request: Request) -> Response:
        body, step = await self._next(request)
        if step is not None and (step.status != 200 or step.body is not None):
            return self._scripted(step)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(t)), 1.0, 0.0]}
            for i, t in enumerate(inputs)
        ]
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": 3, "total_tokens": 3},
            }
        )

    async def _anthropic_messages(self, request: Request) -> Response:
        body, step = await self._next(request)
        if step is not None and (step.status != 200 or step.body is not None):
            return self._scripted(step)
        prompt, completion = self.usage
        text = f"{self.name} says: {self._last_user(body['messages'])}"
        if not body.get("stream"):
            return JSONResponse(
                {
                    "id": "msg_fake",
                    "type": "message",
                    "role": "assistant",
                    "model": body["model"],
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": "end_turn",
                    "usage": {"input_tokens": prompt, "output_tokens": completion},
                }
            )

        async def events():
            def event(kind: str, data: dict[str, Any]) -> str:
                return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n"

            yield event(
                "message_start",
                {
                    "message": {
                        "id": "msg_fake",
                        "model": body["model"],
                        "usage": {"input_tokens": prompt, "output_tokens": 1},
                    }
                },
            )
            yield event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
            for word in text.split(" "):
                yield event(
                    "content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": word + " "}}
                )
            yield event("content_block_stop", {"index": 0})
            yield event(
                "message_delta",
                {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": completion}},
            )
            yield event("message_stop", {})

        return StreamingResponse(events(), media_type="text/event-stream")
