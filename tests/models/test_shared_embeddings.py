"""One embedding per text: the shared embedder in front of the local ONNX model caches recent texts, computes
a text asked for twice at once only once, merges concurrent requests into one batch, and a task's text is
embedded once for routing and knowledge together."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from embedded import embedded_app
from support import wait_for_status

from agent_lightning.core.errors import Unavailable
from agent_lightning.models.embeddings import MODEL_NAME, LocalEmbedder
from agent_lightning.models.shared_embeddings import SharedEmbedder

TEXTS = [f"Deploy service number {n} behind the load balancer" for n in range(20)]


@pytest.fixture(scope="module")
def local() -> LocalEmbedder:
    return LocalEmbedder(threads=1)


async def test_concurrent_requests_share_one_batch_and_match_the_model(local):
    shared = SharedEmbedder(local)
    results = await asyncio.gather(*(shared.embed([text], MODEL_NAME) for text in TEXTS))
    assert shared.batches == 1 and shared.computed == len(TEXTS), "twenty requests, one call of the model"
    direct, _ = await local.embed(TEXTS)
    np.testing.assert_allclose(np.array([r[0][0] for r in results]), np.array(direct), atol=1e-5)
    assert all(tokens > 0 for _, tokens in results)


async def test_a_repeated_text_is_answered_from_the_cache(local):
    shared = SharedEmbedder(local, cache_size=2)
    first, tokens = await shared.embed(TEXTS[:2], MODEL_NAME)
    again, cached_tokens = await shared.embed(TEXTS[:2], MODEL_NAME)
    assert again == first and shared.computed == 2 and shared.hits == 2 and cached_tokens == 0 < tokens
    await shared.embed([TEXTS[2]], MODEL_NAME)  # the least recently used text leaves the cache
    await shared.embed([TEXTS[0]], MODEL_NAME)
    assert shared.computed == 4


async def test_a_text_asked_for_twice_at_once_is_computed_once_and_a_cancelled_caller_spoils_nothing(local):
    shared = SharedEmbedder(local)
    impatient = asyncio.create_task(shared.embed([TEXTS[5]], MODEL_NAME))
    patient = asyncio.create_task(shared.embed([TEXTS[5]], MODEL_NAME))
    await asyncio.sleep(0)
    impatient.cancel()
    vectors, _ = await patient
    assert len(vectors[0]) == 384 and shared.computed == 1
    with pytest.raises(asyncio.CancelledError):
        await impatient


async def test_a_failure_reaches_every_waiter_and_is_not_cached():
    shared = SharedEmbedder(LocalEmbedder(Path("/nonexistent/model.onnx")))
    outcomes = await asyncio.gather(
        shared.embed(["a"], MODEL_NAME), shared.embed(["a", "b"], MODEL_NAME), return_exceptions=True
    )
    assert all(isinstance(o, Unavailable) for o in outcomes)
    with pytest.raises(Unavailable):
        await shared.embed(["a"], MODEL_NAME)


async def test_a_task_text_is_embedded_once_for_routing_and_knowledge(settings):
    # linucb: a policy that routes on the embedding (the default, topics, reads the words alone)
    async with embedded_app(settings.model_copy(update={"policy": "linucb"})) as client:
        embedder = client.app.state.platform.model_service.embedder
        before = embedder.computed
        description = "Tune the connection pool of the billing database for the Monday peak"
        response = await client.post("/assign-task", json={"description": description, "force_execute": True})
        task = await wait_for_status(client, response.json()["task_id"], timeout=60)
        assert task["status"] == "succeeded"
        asked = [key for key in embedder._cache if key[1] == description]
        assert len(asked) == 1, "one vector for the text"
        assert embedder.computed - before == 1 and embedder.hits >= 1, (
            "routing computed it, knowledge reused it"
        )
