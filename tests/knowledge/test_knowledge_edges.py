"""The knowledge service's edges over HTTP, each once a 500 found by schemathesis: items stored at the same
time (the vector index loaded a row twice), an empty upload, and NUL characters in an imported line."""

from __future__ import annotations

import asyncio

TOPICS = [
    "postgres",
    "redis",
    "nginx",
    "kafka",
    "vault",
    "consul",
    "grafana",
    "loki",
    "minio",
    "etcd",
    "haproxy",
    "rabbitmq",
    "memcached",
    "traefik",
    "jenkins",
    "sentry",
]


async def test_items_stored_at_the_same_time_are_all_stored_and_found(kclient):
    async def store(topic: str):
        return await kclient.post(
            "/knowledge/items",
            json={
                "title": f"Restarting {topic}",
                "content": f"To restart {topic} safely, drain its traffic first, then restart the {topic} "
                f"unit and watch the {topic} health check until it is green.",
            },
        )

    for _ in range(3):  # rounds: each one races the index's sync against commits of the others
        responses = await asyncio.gather(*(store(topic) for topic in TOPICS))
        assert [r.status_code for r in responses] == [201] * len(TOPICS), [
            r.text for r in responses if r.status_code != 201
        ]
        TOPICS[:] = [f"{topic}2" for topic in TOPICS]
    items = (await kclient.get("/knowledge/items", params={"limit": 100})).json()
    assert items["total"] == 3 * len(TOPICS)
    for topic in ("postgres22", "kafka2", "sentry"):
        response = await kclient.post(
            "/knowledge/search", json={"query": f"restart {topic}", "mode": "vector", "k": 50}
        )
        assert response.status_code == 200, response.text
        titles = [hit["title"] for hit in response.json()["hits"]]
        assert titles.count(f"Restarting {topic}") == 1, titles  # found, and once: no key indexed twice


async def test_an_empty_upload_is_a_422(kclient):
    for body in (b"", b"   \n\t "):
        response = await kclient.post("/knowledge/upload", params={"filename": "notes.md"}, content=body)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "empty_document"
    assert (await kclient.get("/knowledge/items")).json()["total"] == 0


async def test_nul_characters_are_refused_in_uploads_and_imports(kclient):
    response = await kclient.post(
        "/knowledge/upload", params={"filename": "notes.txt"}, content=b"Rotate the keys\x00 monthly."
    )
    assert response.status_code == 415, response.text  # a file holding NUL is not text
    line = (
        '{"title": "Keys", "category": "best_practices", "chunks": [{"heading": "", "text": '
        '"Rotate\\u0000 them."}]}'
    )
    response = await kclient.post("/knowledge/import", content=line.encode())
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "nul_character"
    assert (await kclient.get("/knowledge/items")).json()["total"] == 0
