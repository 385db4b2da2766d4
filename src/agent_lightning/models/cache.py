"""An exact-match response cache keyed on the normalised request (off by default)."""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict

from agent_lightning.models.schemas import ChatRequest, ChatResult

IGNORED = {"timeout_s", "metadata"}


def cache_key(request: ChatRequest) -> str:
    """A hash of everything that changes the answer (not timeouts or attribution)."""
    body = request.model_dump(mode="json", exclude=IGNORED, exclude_none=True)
    for message in body["messages"]:
        message["content"] = message.get("content", "").strip()
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class ResponseCache:
    """Least-recently-used, with a time to live."""

    def __init__(self, size: int = 1024, ttl_s: float = 300.0) -> None:
        self.size = size
        self.ttl_s = ttl_s
        self._entries: OrderedDict[str, tuple[float, ChatResult]] = OrderedDict()

    def get(self, key: str) -> ChatResult | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        stored_at, result = entry
        if time.monotonic() - stored_at > self.ttl_s:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return result.model_copy(update={"cached": True, "cost_usd": 0.0})

    def put(self, key: str, result: ChatResult) -> None:
        self._entries[key] = (time.monotonic(), result)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
