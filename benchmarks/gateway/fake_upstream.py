"""A fake OpenAI upstream: a bare ASGI app answering every chat completion with the same body, at once or
after DELAY seconds (a model at work; benchmarks/recovery).

    python fake_upstream.py PORT [DELAY [HOST]]
"""

from __future__ import annotations

import asyncio
import json
import sys

import uvicorn

BODY = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1,
        "model": "bench-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 8, "completion_tokens": 1, "total_tokens": 9},
    }
).encode()


DELAY_S = float(sys.argv[2]) if __name__ == "__main__" and len(sys.argv) > 2 else 0.0


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    if DELAY_S:
        await asyncio.sleep(DELAY_S)
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": BODY})


if __name__ == "__main__":
    host = sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1"
    uvicorn.run(app, host=host, port=int(sys.argv[1]), log_level="error", access_log=False)
