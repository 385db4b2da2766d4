"""A task's answer visibly uses retrieved knowledge and remembered context; the attempt records both; a
well-rated task becomes knowledge. Plus the pgvector path on a real PostgreSQL with pgvector."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from embedded import embedded_app
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from support import wait_for_status

POOL_DOC = (
    "# Connection pools\n\n## Sizing\nKeep the connection pool small: twice the number of CPU cores is "
    "a good start for PostgreSQL.\n"
)


async def run_task(client, description: str, **metadata) -> dict:
    response = await client.post(
        "/assign-task",
        json={"description": description, "metadata": metadata, "agent_id": "full_stack_developer"},
    )
    assert response.status_code in (200, 201, 202), response.text
    return await wait_for_status(client, response.json()["task_id"], timeout=60)


async def test_answer_uses_knowledge_and_memory_and_the_attempt_records_them(kclient, quoting):
    upload = await kclient.post(
        "/knowledge/upload", params={"filename": "pools.md"}, content=POOL_DOC.encode()
    )
    item_id = upload.json()["item"]["id"]

    first = await run_task(
        kclient,
        "My production database is PostgreSQL 16 on a 4-core machine.",
        user_id="ana",
        session_id="monday",
    )
    assert first["status"] == "succeeded"
    second = await run_task(
        kclient,
        "How large should the connection pool of my database server be?",
        user_id="ana",
        session_id="tuesday",
    )
    assert second["status"] == "succeeded"
    assert "twice the number of CPU cores" in second["result"]  # from the knowledge base
    assert "PostgreSQL 16 on a 4-core machine" in second["result"]  # remembered from Monday's session

    attempt = second["attempts"][-1]
    assert (
        attempt["knowledge_used"][0]["item_id"] == item_id and attempt["knowledge_used"][0]["marker"] == "K1"
    )
    assert attempt["memory_used"]["session_id"] == "tuesday" and attempt["memory_used"]["memories"]
    execution = (await kclient.get(f"/api/v1/tasks/{second['task_id']}")).json()
    assert execution["result"]["citations"] == ["K1"]
    assert execution["result"]["knowledge_used"][0]["item_id"] == item_id
    system_prompt = quoting.calls[-1].messages[0].content
    assert "Relevant knowledge" in system_prompt and "What you remember about this user" in system_prompt

    continued = await run_task(kclient, "And what about the timeout?", user_id="ana", session_id="tuesday")
    prompt = [m.content for m in quoting.calls[-1].messages]
    assert any(
        "How large should the connection pool" in m for m in prompt[1:-1]
    )  # the earlier turn, as a message
    assert continued["attempts"][-1]["memory_used"]["turns"] == 2

    feedback = await kclient.post(f"/tasks/{second['task_id']}/feedback", json={"score": 10})
    assert feedback.status_code == 200
    for _ in range(200):
        learned = (
            await kclient.get("/knowledge/items", params={"source": f"task:{second['task_id']}"})
        ).json()["items"]
        if learned:
            break
        await asyncio.sleep(0.05)
    assert (
        learned
        and learned[0]["origin"] == "learned"
        and learned[0]["metadata"]["provenance"] == [second["task_id"]]
    )
    relevance = (await kclient.get(f"/knowledge/items/{item_id}")).json()["relevance"]
    assert relevance > 1.0  # the cited item led to a good outcome


async def test_low_feedback_never_becomes_knowledge(kclient):
    task = await run_task(kclient, "Explain how to rotate TLS certificates without downtime.")
    await kclient.post(f"/tasks/{task['task_id']}/feedback", json={"score": 2})
    await asyncio.sleep(0.3)
    assert (await kclient.get("/knowledge/stats")).json()["learned"] == 0


@pytest.fixture(scope="session")
def pgvector_server(tmp_path_factory):
    """A private PostgreSQL 16 with pgvector (the PyPI pgserver package), on a Unix socket."""
    pgserver = pytest.importorskip("pgserver")
    server = pgserver.get_server(tmp_path_factory.mktemp("pgvector"), cleanup_mode="stop")
    yield server
    server.cleanup()


@pytest.fixture
async def pgvector_url(pgvector_server):
    socket_dir = pgvector_server.get_uri().split("host=")[1]
    admin_url = f"postgresql+asyncpg://postgres@/postgres?host={socket_dir}"
    name = f"alp_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield f"postgresql+asyncpg://postgres@/{name}?host={socket_dir}"
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


async def test_pgvector_serves_vector_search_when_installed(settings, pgvector_url, quoting):
    settings = settings.model_copy(update={"database_url": pgvector_url})
    async with embedded_app(settings, quoting) as client:
        detail = (await client.get("/health/ready")).json()["checks"]["knowledge"]["detail"]
        assert "pgvector" in detail
        pools = (
            await client.post("/knowledge/upload", params={"filename": "pools.md"}, content=POOL_DOC.encode())
        ).json()
        await client.post(
            "/knowledge/items", json={"title": "Bread", "content": "Sourdough needs a ripe starter."}
        )
        hits = (
            await client.post("/knowledge/search", json={"query": "database pool size", "mode": "vector"})
        ).json()
        assert hits["hits"][0]["item_id"] == pools["item"]["id"] and "pgvector" in hits["vector_backend"]
        hybrid = (await client.post("/knowledge/search", json={"query": "database pool size"})).json()["hits"]
        assert hybrid[0]["text_rank"] == 1
