"""One embedding per text for the whole process, in front of an embedding provider (the local ONNX model).

Routing, knowledge and memory all ask the model service for the embedding of the same task text; each
text is computed once: an LRU of recent vectors answers repeats, a text already being computed is waited
for rather than computed again, and requests that arrive while the model is busy are merged into its
next batch (a micro-batcher: no timer, the batch is whatever queued up during the previous one, so a lone
request is never delayed).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

import numpy as np

from agent_lightning.core.logging import get_logger

log = get_logger(__name__)

Key = tuple[str, str]  # (provider model, text)


class SharedEmbedder:
    """An `EmbeddingProvider` that caches and batches another one (`inner`: `embed(texts, provider_model)`
    returning vectors and the tokens read, and `available()`)."""

    def __init__(self, inner: Any, *, cache_size: int = 4096, max_batch: int = 64) -> None:
        self.inner = inner
        self.name = getattr(inner, "name", "local")
        self.cache_size = cache_size
        self.max_batch = max_batch
        self._cache: OrderedDict[Key, tuple[np.ndarray, int]] = OrderedDict()
        self._pending: dict[Key, asyncio.Future] = {}
        self._queue: list[Key] = []
        self._worker: asyncio.Task | None = None
        self.hits = self.computed = self.batches = 0

    def available(self) -> tuple[bool, str]:
        return self.inner.available()

    async def embed(self, texts: list[str], provider_model: str = "") -> tuple[list[list[float]], int]:
        """One vector per text and the tokens the model read for this request (cached texts read none; a
        merged batch's tokens are shared out by text length)."""
        futures: list[asyncio.Future] = []
        for text in texts:
            key = (provider_model, text)
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                self.hits += 1
                done = asyncio.get_running_loop().create_future()
                done.set_result((cached[0], 0))
                futures.append(done)
                continue
            future = self._pending.get(key)
            if future is None:
                future = self._pending[key] = asyncio.get_running_loop().create_future()
                self._queue.append(key)
            futures.append(future)
        if self._queue and (self._worker is None or self._worker.done()):
            self._worker = asyncio.create_task(self._work())
        # Shielded: a caller that gives up must not cancel a vector other callers wait for.
        results = await asyncio.gather(*(asyncio.shield(f) for f in futures))
        return [vector.tolist() for vector, _ in results], sum(tokens for _, tokens in results)

    async def _work(self) -> None:
        """Compute queued texts a batch at a time (one model per batch) until none is left."""
        while self._queue:
            model = self._queue[0][0]
            batch = [k for k in self._queue if k[0] == model][: self.max_batch]
            taken = set(batch)
            self._queue = [k for k in self._queue if k not in taken]
            try:
                vectors, tokens = await self.inner.embed([text for _, text in batch], model)
            except BaseException as exc:
                for key in batch:
                    future = self._pending.pop(key)
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            self.batches += 1
            self.computed += len(batch)
            chars = sum(len(text) for _, text in batch) or 1
            for key, vector in zip(batch, vectors, strict=True):
                share = round(tokens * len(key[1]) / chars)
                vector = np.asarray(vector, dtype=np.float32)
                self._remember(key, vector, share)
                future = self._pending.pop(key)
                if not future.done():
                    future.set_result((vector, share))

    def _remember(self, key: Key, vector: np.ndarray, tokens: int) -> None:
        if self.cache_size <= 0:
            return
        self._cache[key] = (vector, tokens)
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
