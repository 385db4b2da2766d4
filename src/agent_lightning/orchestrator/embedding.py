"""Task embeddings for contextual routing policies, through the model service's embedding gateway.

The orchestrator depends only on `TaskEmbedder`; the composition root wraps the model service in
`GatewayEmbedder`. When embeddings cannot be had (no model, model service down, a slow call), the
embedder returns None and the policies route on the text features alone.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from agent_lightning.core.logging import get_logger
from agent_lightning.models.schemas import EmbeddingGateway, EmbeddingRequest

log = get_logger(__name__)

MAX_CHARS = (
    4000  # as the knowledge service cuts a task (the model reads 256 tokens): one embedding serves both
)


class TaskEmbedder(Protocol):
    """Sentence embeddings of task descriptions, or None when there are none to be had."""

    async def embed(self, texts: list[str]) -> list[tuple[float, ...]] | None: ...


class GatewayEmbedder:
    """A `TaskEmbedder` over the model service; after a failure it rests `retry_after_s` seconds."""

    def __init__(
        self, gateway: EmbeddingGateway, model: str, *, timeout_s: float = 5.0, retry_after_s: float = 60.0
    ):
        self.gateway = gateway
        self.model = model
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self._resting_until = 0.0

    async def embed(self, texts: list[str]) -> list[tuple[float, ...]] | None:
        """One vector per text, or None if the model service cannot embed right now."""
        if not texts or time.monotonic() < self._resting_until:
            return None
        request = EmbeddingRequest(
            model=self.model, input=[t[:MAX_CHARS] for t in texts], metadata={"purpose": "routing"}
        )
        try:
            result = await asyncio.wait_for(self.gateway.embed(request), self.timeout_s)
        except Exception as exc:  # any failure: route without embeddings for a while
            self._resting_until = time.monotonic() + self.retry_after_s
            log.warning("routing_embeddings_unavailable", model=self.model, error=type(exc).__name__)
            return None
        return [tuple(v) for v in result.vectors]
