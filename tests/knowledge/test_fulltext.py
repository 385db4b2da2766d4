"""Full-text search (knowledge.fulltext) on the database under test: the filters hold whatever the ranking
fetches first, the rarest words select the chunks and every word still counts, a query of common words
still finds chunks, frequencies follow new documents, and hybrid search over HTTP keeps the filters."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from agent_lightning.core.db import Database
from agent_lightning.knowledge import fulltext
from agent_lightning.knowledge.fulltext import Term, choose
from agent_lightning.knowledge.schemas import Filters
from agent_lightning.knowledge.tables import KnowledgeChunkRow, KnowledgeItemRow

STRONG = "kubernetes ingress " * 6 + "routes traffic to the cluster."
WEAK = "Notes on an ingress: it routes requests and keeps a log of them for later reading."


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await database.upgrade()
    yield database
    await database.close()


async def add(
    db: Database,
    *texts: str,
    tenant: str = "default",
    scope: str = "tenant",
    agent: str | None = None,
    category: str = "technical_documentation",
    created: datetime | None = None,
) -> dict[int, str]:
    """One item per text; its chunk key → item id."""
    keys = {}
    async with db.session() as session:
        for body in texts:
            item = KnowledgeItemRow(
                id=uuid.uuid4().hex,
                tenant_id=tenant,
                title=body[:40],
                category=category,
                source="test",
                scope=scope,
                agent_id=agent,
                meta={},
                origin="api",
                content_hash=uuid.uuid4().hex,
                usage_count=0,
                relevance=1.0,
                embedding_model="m",
                created_at=created or datetime.now(UTC),
            )
            session.add(item)
            await session.flush()
            chunk = KnowledgeChunkRow(
                tenant_id=tenant,
                item_id=item.id,
                ordinal=0,
                heading="",
                text=body,
                embedding=b"\0" * 16,
                embedding_model="m",
            )
            session.add(chunk)
            await session.flush()
            keys[chunk.seq] = item.id
    return keys


async def search(db: Database, query: str, k: int = 5, tenant: str = "default", **filters) -> list[int]:
    async with db.session() as session:
        return [key for key, _ in await fulltext.search(session, query, Filters(**filters), tenant, k)]


async def analyse(db: Database) -> None:
    """Refresh PostgreSQL's column statistics (what the search reads its frequencies from)."""
    if not db.is_sqlite:
        async with db.session() as session:
            await session.execute(text("ANALYZE knowledge_chunks"))
        fulltext._column_stats.clear()


@pytest.mark.parametrize("rounds", [fulltext.OVERFETCH_ROUNDS, 0])
async def test_filters_hold_when_the_best_matches_are_invisible(db, monkeypatch, rounds):
    # 0 rounds: the first fetch is too short and the filters go into the query at once.
    monkeypatch.setattr(fulltext, "OVERFETCH_ROUNDS", rounds)
    strong_other_tenant = await add(db, *[STRONG] * 70, tenant="acme")
    strong_other_agent = await add(db, *[STRONG] * 70, agent="builder")
    strong_tutorials = await add(db, *[STRONG] * 70, category="tutorials")
    mine = await add(db, WEAK, agent="reviewer")
    tenant_wide = await add(db, WEAK + " Tenant-wide.")
    shared = await add(db, WEAK + " Shared.", tenant="acme", scope="shared")
    old = await add(db, WEAK + " Old.", created=datetime.now(UTC) - timedelta(days=400))
    await analyse(db)

    found = await search(
        db, "kubernetes ingress", k=5, agent_id="reviewer", category=["technical_documentation"]
    )
    assert set(found) == {*mine, *tenant_wide, *shared, *old}
    found = await search(
        db,
        "kubernetes ingress",
        k=5,
        agent_id="reviewer",
        category=["technical_documentation"],
        created_after=datetime.now(UTC) - timedelta(days=30),
    )
    assert set(found) == {*mine, *tenant_wide, *shared}

    # Without an agent the tenant sees its own agents' items, never another tenant's unshared ones.
    found = await search(db, "kubernetes ingress", k=200)
    assert not set(found) & set(strong_other_tenant)
    assert set(strong_other_agent) | set(strong_tutorials) <= set(found)
    assert set(found[:140]) == set(strong_other_agent) | set(strong_tutorials)  # the strong matches first
    as_acme = await search(
        db, "kubernetes ingress", k=200, tenant="acme", category=["technical_documentation"]
    )
    assert set(as_acme) == set(strong_other_tenant) | set(shared)


async def test_a_query_of_common_words_still_finds_chunks(db, monkeypatch):
    await add(db, *[f"Open the file, read the list, return the value number {n}." for n in range(30)])
    await analyse(db)
    assert len(await search(db, "file list value", k=5)) == 5
    assert len(await search(db, "the value of the list in a file?", k=50)) == 30
    monkeypatch.setitem(fulltext.CANDIDATES, db.engine.dialect.name, 10)  # every word is held by too many
    assert len(await search(db, "file list value", k=5)) == 5


async def test_too_common_rarest_word_needs_the_two_rarest_then_the_rarest(db, monkeypatch):
    both = await add(db, *["alpha beta gamma"] * 3)
    alpha = await add(db, *["alpha delta"] * 20)
    beta = await add(db, *["beta epsilon"] * 20)
    await add(db, *[f"filler text {n}" for n in range(100)])
    await analyse(db)
    monkeypatch.setitem(fulltext.CANDIDATES, db.engine.dialect.name, 10)
    async with db.session() as session:
        plan = await fulltext.plan(session, "alpha beta")
    assert plan.every and {t.word for t in plan.essential} == {"alpha", "beta"}
    assert set(await search(db, "alpha beta", k=3)) == set(both)  # enough chunks hold both
    found = await search(db, "alpha beta", k=8)  # not enough: chunks with the rarest word too
    assert set(found[:3]) == set(both) and len(found) == 8
    assert set(found[3:]) <= set(alpha) | set(beta)


async def test_rare_words_select_the_chunks_and_every_word_counts(db, monkeypatch):
    rare = list(await add(db, "zeppelin hangar alpha", "zeppelin storage beta", "zeppelin gamma delta"))
    storage = await add(db, *[f"storage shelf {n}" for n in range(5)])
    await add(db, *[f"shelf number {n}" for n in range(35)])
    await analyse(db)
    monkeypatch.setitem(fulltext.CANDIDATES, db.engine.dialect.name, 4)
    async with db.session() as session:
        plan = await fulltext.plan(session, "zeppelin storage")
    assert [t.word for t in plan.essential] == ["zeppelin"] and [t.word for t in plan.scored] == [
        "zeppelin",
        "storage",
    ]
    found = await search(db, "zeppelin storage", k=3)
    assert set(found) == set(rare)  # only chunks holding the rare word are ranked …
    assert found[0] == rare[1]  # … and the common word still counts in their order
    found = await search(db, "zeppelin storage", k=5)  # too few: chunks holding any word fill the list
    assert found[:3] == (await search(db, "zeppelin storage", k=3)) and set(found[3:]) <= set(storage)
    if db.is_sqlite:  # bm25() of the rewritten expression is twice the BM25 of the plain OR query
        async with db.session() as session:
            scores = dict(await fulltext.search(session, "zeppelin storage", Filters(), "default", 3))
            plain = dict(
                (
                    await session.execute(
                        text(
                            "SELECT rowid, -bm25(knowledge_chunks_fts) FROM knowledge_chunks_fts "
                            'WHERE knowledge_chunks_fts MATCH \'"zeppelin" OR "storage"\''
                        )
                    )
                ).all()
            )
        assert all(abs(scores[key] - plain[key]) < 1e-9 for key in scores)


async def test_new_documents_are_found_at_once(db):
    await add(db, "an unrelated note about gardening")
    assert await search(db, "xylophone tuning") == []
    added = await add(db, "tuning a xylophone takes patience")
    assert await search(db, "xylophone tuning") == list(added)


async def test_query_syntax_is_not_interpreted(db):
    keys = await add(db, "the NEAR operator and column filters such as title: matter in FTS5 queries")
    for query in [
        'NEAR(operator filters) "unbalanced',
        "title: operator*",
        "operator & !filters | (",
        "o'operator \\",
    ]:
        assert await search(db, query) == list(keys), query


def test_choose_picks_the_rarest_words_within_the_budget():
    found = [Term("file", 900), Term("zeppelin", 3), Term("storage", 40), Term("hangar", 70), Term("gone", 0)]
    plan = choose(found, 1000, "postgresql", cap=100)
    assert [t.word for t in plan.essential] == ["zeppelin", "storage"]
    assert [t.word for t in plan.scored] == ["zeppelin", "storage", "hangar", "file"]
    plan = choose(found, 1000, "sqlite", cap=100)  # FTS5: words in a fifth of the chunks or more do not count
    assert [t.word for t in plan.scored] == ["zeppelin", "storage", "hangar"]
    for dialect in (
        "sqlite",
        "postgresql",
    ):  # every word too common: all count, chunks must hold the two rarest
        plan = choose([Term("file", 900), Term("list", 800)], 1000, dialect, cap=100)
        assert plan.every and [t.word for t in plan.essential] == ["list", "file"] == [
            t.word for t in plan.scored
        ]
    plan = choose([Term("file", None), Term("list", None)], 0, "postgresql", cap=100)  # never analysed
    assert [t.word for t in plan.essential] == ["file", "list"] and plan.candidates is None


async def test_postgres_frequencies_come_from_column_statistics_and_the_gin_index_serves(db):
    if db.is_sqlite:
        pytest.skip("PostgreSQL only")
    await add(db, *[f"shared words everywhere, item {n}" for n in range(200)], "one rare zeppelin")
    async with db.session() as session:
        before = await fulltext.plan(session, "zeppelin everywhere")
    assert {t.df for t in before.scored} == {None}  # not analysed yet: every word counts as rare
    await analyse(db)
    async with db.session() as session:
        plan = await fulltext.plan(session, "zeppelin everywhere")
        assert plan.scored[-1].word == "everywhere" and plan.scored[-1].df > 150
        assert plan.scored[0].word == "zeppelin" and plan.scored[0].df < 50
        await session.execute(text("SET LOCAL enable_seqscan = off"))
        explained = "\n".join(
            row[0]
            for row in await session.execute(
                text(
                    "EXPLAIN SELECT c.seq, c.tsv FROM knowledge_chunks c "
                    "WHERE c.tsv @@ to_tsquery('english', :match) LIMIT 1500"
                ),
                {"match": "'zeppelin'"},
            )
        )
    assert "ix_knowledge_chunks_tsv" in explained


async def test_hybrid_search_keeps_the_filters_over_http(kclient):
    async def item(content: str, **fields) -> str:
        response = await kclient.post(
            "/knowledge/items", json={"title": content[:30], "content": content, **fields}
        )
        assert response.status_code == 201, response.text
        return response.json()["item"]["id"]

    for n in range(30):
        await item(f"{STRONG} Cluster {n}.", agent_id="builder", category="tutorials")
    mine = await item(WEAK, agent_id="reviewer", category="best_practices")
    everyone = await item(WEAK + " For every agent.", category="best_practices")
    for mode in ("fulltext", "hybrid"):
        response = await kclient.post(
            "/knowledge/search",
            json={
                "query": "kubernetes ingress routes",
                "mode": mode,
                "k": 5,
                "filters": {"agent_id": "reviewer"},
            },
        )
        assert {hit["item_id"] for hit in response.json()["hits"]} == {mine, everyone}, mode
        response = await kclient.post(
            "/knowledge/search",
            json={
                "query": "kubernetes ingress routes",
                "mode": mode,
                "k": 5,
                "filters": {"category": ["best_practices"]},
            },
        )
        assert {hit["item_id"] for hit in response.json()["hits"]} == {mine, everyone}, mode
