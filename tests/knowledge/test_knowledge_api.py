"""The knowledge service over HTTP: ingest (Markdown, HTML, PDF), hybrid search with filters, export and
import, learning from rewarded tasks, the vector index file, and re-embedding."""

from __future__ import annotations

from pathlib import Path

from embedded import embedded_app

POOLS = """# Connection pools

## Sizing
Keep the database connection pool small: twice the number of CPU cores is a good start. A pool that is
too large makes PostgreSQL spend its time switching between backends.

## Timeouts
Set a checkout timeout so that a request fails fast when every connection is busy.
"""

DEPLOY_HTML = """<html><head><title>x</title><script>var ignored = 1;</script></head><body>
<nav>Home | Docs</nav>
<h1>Blue-green deployment</h1><p>Run two identical production environments called blue and green.
Route traffic to green after its smoke tests pass, and keep blue for an instant rollback.</p>
<h2>Database migrations</h2><p>Make every migration backward compatible so both colours can run at once.</p>
</body></html>"""


def tiny_pdf(text: str) -> bytes:
    """A one-page PDF showing `text` in Helvetica (enough for a text extractor)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 "
        b"0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


async def upload(client, name: str, data: bytes | str, **params) -> dict:
    body = data.encode() if isinstance(data, str) else data
    response = await client.post("/knowledge/upload", params={"filename": name, **params}, content=body)
    assert response.status_code == 201, response.text
    return response.json()


async def search(client, query: str, **body) -> list[dict]:
    response = await client.post("/knowledge/search", json={"query": query, **body})
    assert response.status_code == 200, response.text
    return response.json()["hits"]


async def test_ingest_markdown_html_and_pdf_on_structure(kclient):
    md = await upload(kclient, "pools.md", POOLS, category="best_practices")
    assert md["format"] == "markdown" and md["chunks"] == 2 and md["item"]["title"] == "Connection pools"
    html = await upload(kclient, "deploy.html", DEPLOY_HTML, category="architecture_patterns")
    assert html["format"] == "html" and html["chunks"] == 2
    pdf = await upload(kclient, "refunds.pdf", tiny_pdf("Refunds are paid within 14 days of the request."))
    assert pdf["format"] == "pdf" and pdf["item"]["chunks"] == 1

    hits = await search(kclient, "how many database connections should the pool have", k=3)
    assert hits[0]["item_id"] == md["item"]["id"] and hits[0]["heading"] == "Connection pools > Sizing"
    html_hits = await search(kclient, "rollback to the previous environment", k=1)
    assert html_hits[0]["item_id"] == html["item"]["id"] and "ignored" not in html_hits[0]["text"]
    assert "Home | Docs" not in html_hits[0]["text"]
    pdf_hits = await search(kclient, "refund delay", k=1, mode="fulltext")
    assert pdf_hits[0]["item_id"] == pdf["item"]["id"]

    again = await upload(kclient, "pools.md", POOLS, category="best_practices")
    assert again["item"]["id"] == md["item"]["id"] and again["chunks"] == 0  # same document, stored once


async def test_modes_filters_and_scopes(kclient):
    pools = await upload(kclient, "pools.md", POOLS, category="best_practices")
    private = (
        await kclient.post(
            "/knowledge/items",
            json={
                "title": "Deploy runbook",
                "content": "Deploy on Tuesdays only, after the change advisory board meets.",
                "category": "project_specific",
                "agent_id": "devops-agent",
            },
        )
    ).json()
    assert private["item"]["scope"] == "agent"

    for mode in ("vector", "fulltext", "hybrid"):
        hits = await search(kclient, "connection pool size and CPU cores", mode=mode, k=2)
        assert hits[0]["item_id"] == pools["item"]["id"], mode
    hybrid = (await search(kclient, "connection pool size and CPU cores", k=1))[0]
    assert hybrid["vector_rank"] is not None and hybrid["text_rank"] is not None

    others = await search(kclient, "when do we deploy", filters={"agent_id": "writer-agent"}, k=5)
    assert others and private["item"]["id"] not in {h["item_id"] for h in others}
    mine = await search(kclient, "when do we deploy", filters={"agent_id": "devops-agent"}, k=1)
    assert mine[0]["item_id"] == private["item"]["id"]
    only = await search(kclient, "deploy", filters={"category": ["best_practices"]}, k=5)
    assert {h["item_id"] for h in only} == {pools["item"]["id"]}
    later = await search(kclient, "deploy", filters={"created_after": "2100-01-01T00:00:00Z"})
    assert later == []


async def test_stats_export_delete_import(kclient):
    pools = await upload(kclient, "pools.md", POOLS, category="best_practices")
    await upload(kclient, "deploy.html", DEPLOY_HTML, category="architecture_patterns")
    stats = (await kclient.get("/knowledge/stats")).json()
    assert stats["items"] == 2 and stats["chunks"] == 4
    assert stats["by_category"] == {"best_practices": 1, "architecture_patterns": 1}
    exported = (await kclient.get("/knowledge/export")).text.splitlines()
    assert len(exported) == 2

    deleted = await kclient.delete(f"/knowledge/items/{pools['item']['id']}")
    assert deleted.status_code == 200
    assert (await kclient.get(f"/knowledge/items/{pools['item']['id']}")).status_code == 404
    assert all(
        h["item_id"] != pools["item"]["id"] for h in await search(kclient, "connection pool sizing", k=5)
    )

    imported = (await kclient.post("/knowledge/import", content="\n".join(exported))).json()
    assert imported == {"imported": 1, "skipped": 1}
    hits = await search(kclient, "connection pool sizing", k=1)
    assert hits[0]["item_id"] == pools["item"]["id"]
    bad = await kclient.post("/knowledge/import", content='{"title": "no chunks"}')
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_import"


async def test_learning_needs_a_high_reward_and_deduplicates(kclient):
    base = {
        "task": "Our API returns 502 errors under load; what should we change?",
        "answer": "Raise the upstream keep-alive timeout above the load balancer's idle timeout.",
    }
    low = (await kclient.post("/knowledge/learn", json={**base, "task_id": "t-low", "reward": 0.3})).json()
    assert low["action"] == "skipped"
    created = (
        await kclient.post("/knowledge/learn", json={**base, "task_id": "t-high", "reward": 0.9})
    ).json()
    assert created["action"] == "created"
    item = (await kclient.get(f"/knowledge/items/{created['item_id']}")).json()
    assert (
        item["origin"] == "learned"
        and item["task_id"] == "t-high"
        and item["metadata"]["provenance"] == ["t-high"]
    )
    twin = (await kclient.post("/knowledge/learn", json={**base, "task_id": "t-twin", "reward": 1.0})).json()
    assert twin["action"] == "merged" and twin["item_id"] == created["item_id"]
    merged = (await kclient.get(f"/knowledge/items/{created['item_id']}")).json()
    assert merged["metadata"]["provenance"] == ["t-high", "t-twin"]
    repeat = (
        await kclient.post("/knowledge/learn", json={**base, "task_id": "t-high", "reward": 0.9})
    ).json()
    assert repeat["action"] == "skipped"
    assert (await kclient.get("/knowledge/stats")).json()["learned"] == 1


async def test_usage_feedback_moves_relevance(kclient):
    pools = await upload(kclient, "pools.md", POOLS, category="best_practices")
    used = (
        await kclient.post(
            "/knowledge/context",
            json={"task": "How big should my connection pool be?", "task_id": "t-1", "budget_tokens": 400},
        )
    ).json()
    assert used["used"][0]["item_id"] == pools["item"]["id"] and "[K1]" in used["text"]
    assert used["tokens"] <= 400
    item = (await kclient.get(f"/knowledge/items/{pools['item']['id']}")).json()
    assert item["usage_count"] == 1
    learned = (
        await kclient.post(
            "/knowledge/learn", json={"task_id": "t-1", "task": "pool size", "answer": "small", "reward": 0.0}
        )
    ).json()
    assert learned["adjusted"] == 1
    assert (await kclient.get(f"/knowledge/items/{pools['item']['id']}")).json()["relevance"] < 1.0
    nothing = (
        await kclient.post("/knowledge/context", json={"task": "Bake a sourdough loaf", "budget_tokens": 400})
    ).json()
    assert nothing["used"] == []


async def test_reembedding_tracks_the_model_per_item(kclient):
    pools = await upload(kclient, "pools.md", POOLS, category="best_practices")
    kclient.app.state.platform.model_service.register_alias(
        "minilm-v2", provider="local", provider_model="all-MiniLM-L6-v2", kind="embedding"
    )
    result = (await kclient.post("/knowledge/reembed", json={"model": "minilm-v2"})).json()
    assert result == {"model": "minilm-v2", "items": 1, "chunks": 2}
    assert (await kclient.get(f"/knowledge/items/{pools['item']['id']}")).json()[
        "embedding_model"
    ] == "minilm-v2"
    assert (await kclient.get("/knowledge/stats")).json()["by_embedding_model"] == {"minilm-v2": 1}
    hits = await search(kclient, "connection pool sizing", mode="vector", k=1)
    assert hits[0]["item_id"] == pools["item"]["id"]


async def test_vector_backend_is_reported_and_the_index_file_is_rebuilt(settings, quoting):
    async with embedded_app(settings, quoting) as client:
        item = await upload(client, "pools.md", POOLS)
        ready = (await client.get("/health/ready")).json()["checks"]["knowledge"]
        before = await search(client, "pool sizing", mode="vector", k=2)
    if settings.resolved_database_url().startswith("sqlite"):
        assert "hnswlib" in ready["detail"]
        index = Path(settings.data_dir) / "knowledge.hnsw"
        assert index.exists()
        index.unlink()
    else:
        assert "pgvector" in ready["detail"] or "exact search in the app" in ready["detail"]
    async with embedded_app(settings, quoting) as client:
        after = await search(client, "pool sizing", mode="vector", k=2)
        assert [h["chunk"] for h in after] == [h["chunk"] for h in before]
        assert after[0]["item_id"] == item["item"]["id"]
