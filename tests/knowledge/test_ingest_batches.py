"""Ingest in batches (`POST /knowledge/items/batch`, what `alp knowledge add` sends): many documents in one
embedding pass, one transaction and one vector-index update; identical documents stored once; nothing stored
when one document of the batch is invalid."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import pytest
from test_knowledge_api import POOLS, search, upload

from agent_lightning.knowledge import service as service_module
from agent_lightning.knowledge.vectors import INDEX_FILE
from agent_lightning.models.schemas import EMBED_BATCH

TOPICS = [
    "connection pools",
    "retry budgets",
    "cache expiry",
    "blue-green deploys",
    "log rotation",
    "TLS certificates",
    "database indexes",
    "queue back-pressure",
    "feature flags",
    "rate limits",
]


def document(n: int) -> dict:
    topic = TOPICS[n % len(TOPICS)]
    body = (
        f"# Note {n} on {topic}\n\n## Why\nThe team wrote note {n} about {topic} after an incident. "
        + f"It explains what went wrong with {topic} and how the service recovered. " * 12
        + f"\n\n## How\nConfigure {topic} explicitly, measure it, and alert on it. " * 6
    )
    return {"content": body, "format": "markdown", "source": f"note-{n}.md", "category": "best_practices"}


async def test_a_batch_stores_each_document_once_and_in_order(kclient):
    before = await upload(kclient, "pools.md", POOLS)
    items = [
        document(1),
        {"content": POOLS, "format": "markdown", "source": "pools.md"},
        document(2),
        document(1),
    ]
    response = await kclient.post("/knowledge/items/batch", json={"items": items})
    assert response.status_code == 201, response.text
    result = response.json()
    assert result["stored"] == 2
    chunks = [r["chunks"] for r in result["results"]]
    assert chunks[0] > 0 and chunks[2] > 0 and chunks[1] == 0 and chunks[3] == 0
    assert result["chunks"] == chunks[0] + chunks[2]
    assert result["results"][1]["item"]["id"] == before["item"]["id"], "stored before: the stored item"
    assert result["results"][3]["item"]["id"] == result["results"][0]["item"]["id"], (
        "twice in the batch: once"
    )
    assert result["results"][0]["item"]["chunks"] == chunks[0]
    stats = (await kclient.get("/knowledge/stats")).json()
    assert stats["items"] == 3 and stats["chunks"] == before["chunks"] + result["chunks"]
    hits = await search(kclient, "what went wrong with the retry budgets", mode="vector", k=3)
    assert hits[0]["item_id"] == result["results"][0]["item"]["id"]
    hits = await search(kclient, "note 2 about cache expiry", mode="fulltext", k=3)
    assert hits[0]["item_id"] == result["results"][2]["item"]["id"]


async def test_an_invalid_document_fails_the_batch_and_nothing_is_stored(kclient):
    items = [
        document(1),
        {"content": "<html><script>only code</script></html>", "format": "html"},
        document(2),
    ]
    response = await kclient.post("/knowledge/items/batch", json={"items": items})
    assert response.status_code == 422
    error = response.json()["error"]
    assert (
        error["code"] == "empty_document"
        and error["details"] == {"index": 1}
        and "Document 1" in error["message"]
    )
    assert (await kclient.get("/knowledge/stats")).json()["items"] == 0
    assert (await kclient.post("/knowledge/items/batch", json={"items": []})).status_code == 422


async def test_a_batch_is_embedded_in_one_pass_and_indexed_once(kclient):
    platform = kclient.app.state.platform
    knowledge = platform.knowledge_service
    embedded: list[int] = []
    platform.model_service.usage.listeners.append(
        lambda usage: (
            embedded.append(usage.prompt_tokens) if usage.metadata.get("purpose") == "knowledge" else None
        )
    )
    await search(kclient, "warm up: opens the vector index", mode="vector")
    embedded.clear()
    backend = knowledge.backend
    added: list[int] = []
    add = backend.add

    async def counting_add(keys, vectors):
        added.append(len(keys))
        await add(keys, vectors)

    backend.add = counting_add
    items = [document(n) for n in range(12)]
    response = await kclient.post("/knowledge/items/batch", json={"items": items})
    assert response.status_code == 201, response.text
    chunks = response.json()["chunks"]
    assert chunks > 64
    assert len(embedded) == math.ceil(chunks / EMBED_BATCH), (
        f"one pass for the batch, not one per document: {embedded}"
    )
    assert added in ([], [chunks]), f"the vector index is updated once per batch: {added}"
    hits = await search(kclient, "note 8 feature flags", mode="hybrid", k=3)
    assert hits[0]["title"] == "Note 8 on feature flags"


async def test_the_index_file_is_written_once_an_ingest_pauses(kclient, settings, monkeypatch):
    # A server killed after an ingest finds an index file that matches the database on its next start (no
    # rebuild): the file is written once writes pause, not only when the server stops cleanly.
    if not settings.resolved_database_url().startswith("sqlite"):
        pytest.skip("the index file is SQLite's (PostgreSQL keeps vectors in the database)")
    monkeypatch.setattr(service_module, "INDEX_SAVE_QUIET_S", 0.3)
    knowledge = kclient.app.state.platform.knowledge_service
    writes: list[int] = []
    await search(kclient, "opens the vector index", mode="vector")
    write = knowledge.backend._write

    def counting_write():
        writes.append(1)
        write()

    knowledge.backend._write = counting_write
    for batch in range(3):
        response = await kclient.post(
            "/knowledge/items/batch", json={"items": [document(batch * 2), document(batch * 2 + 1)]}
        )
        assert response.status_code == 201, response.text
    meta = Path(settings.data_dir) / INDEX_FILE
    stats = (await kclient.get("/knowledge/stats")).json()
    for _ in range(100):
        if writes:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)
    assert writes == [1], "one write for the three batches"
    assert json.loads(meta.with_suffix(".json").read_text())["live"] == stats["chunks"]
