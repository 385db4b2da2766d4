"""What every route answers at the edge, whatever the service: a 405 names the allowed methods, NUL characters
are refused alike on SQLite and PostgreSQL, and no number a client sends is unbounded (each case was a 5xx
found by schemathesis)."""

from __future__ import annotations

from embedded import embedded_app
from support import running_app
from test_auth import add_user, bearer, login, with_auth


def allow(response) -> set[str]:
    return {method.strip() for method in response.headers["allow"].split(",")}


async def test_method_not_allowed_lists_every_method_of_the_path(client):
    response = await client.delete("/assign-task")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert allow(response) == {"POST"}
    # GET and POST /memory/sessions are two routes of one path: Allow names both.
    response = await client.put("/memory/sessions")
    assert response.status_code == 405
    assert {"GET", "POST"} <= allow(response)
    response = await client.post("/workflows/some-id")
    assert response.status_code == 405
    assert {"GET", "PUT", "DELETE"} <= allow(response)


async def count_tasks(client) -> int:
    response = await client.get("/tasks", params={"limit": 100})
    assert response.status_code == 200, response.text
    return len(response.json()["items"])


async def test_nul_characters_are_refused_with_422_on_every_backend(client):
    before = await count_tasks(client)

    def refused(response, where: str) -> None:
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "nul_character"
        assert error["details"] == {"location": where}

    refused(
        await client.post(
            "/assign-task", json={"description": "Fix the\u0000 login bug", "force_execute": True}
        ),
        "body",
    )
    refused(
        await client.post("/assign-task", json={"description": "Fix it", "metadata": {"k\u0000": "v"}}),
        "body",
    )
    refused(
        await client.post("/memory/sessions", json={"user_id": "ana\u0000", "agent_id": "general_assistant"}),
        "body",
    )
    refused(await client.get("/tasks", params={"text": "log\u0000in"}), "url")
    refused(await client.get("/tasks/abc%00def"), "url")
    refused(await client.get("/memory/users/ana%00/export"), "url")
    assert await count_tasks(client) == before  # nothing half-written

    # A backslash followed by the text "u0000" is no NUL: it is stored as sent.
    text = "What does the escape \\u0000 mean in JSON?"
    response = await client.post("/assign-task", json={"description": text, "force_execute": True})
    assert response.status_code == 200, response.text
    stored = await client.get(f"/tasks/{response.json()['task_id']}")
    assert stored.json()["description"] == text


async def test_nul_characters_on_the_openai_routes_get_openai_shaped_400(client):
    response = await client.post(
        "/v1/chat/completions", json={"model": "local", "messages": [{"role": "user", "content": "hi\u0000"}]}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "nul_character"
    assert response.json()["error"]["type"] == "invalid_request_error"


BEYOND_64_BITS = 2**70


async def test_numbers_beyond_their_range_are_refused_not_a_500(settings):
    async with embedded_app(settings) as client:  # real embeddings: memories are stored, as in `alp up`
        await _refuses_numbers_beyond_their_range(client)


async def _refuses_numbers_beyond_their_range(client) -> None:
    def refused(response) -> None:
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "validation_error"

    working = {"user_id": "ana", "kind": "working", "content": "draft id 42"}
    refused(await client.post("/memory/memories", json={**working, "ttl_s": BEYOND_64_BITS}))
    refused(await client.post("/memory/memories", json={**working, "ttl_s": 1.2e308}))
    refused(await client.post("/memory/prune", json={"max_age_days": BEYOND_64_BITS}))
    refused(await client.post("/memory/prune", json={"max_per_user": BEYOND_64_BITS}))
    refused(await client.get("/knowledge/items", params={"offset": BEYOND_64_BITS}))
    refused(await client.get("/api/v2/agents/general_assistant", params={"version": BEYOND_64_BITS}))
    refused(await client.put("/policy", json={"name": "thompson", "params": {"seed": BEYOND_64_BITS}}))
    refused(await client.post("/api/v2/agents/execute", json={"task": "Say hi", "timeout": 5e-324}))

    response = await client.post(
        "/v1/chat/completions",
        json={"model": "local", "messages": [{"role": "user", "content": "hi"}], "seed": BEYOND_64_BITS},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "seed"

    # In range, the same requests work.
    assert (
        await client.post("/memory/prune", json={"max_age_days": 365, "max_per_user": 1000})
    ).status_code == 200
    assert (await client.get("/knowledge/items", params={"offset": 10})).status_code == 200


def unbounded_numbers(openapi: dict) -> list[str]:
    """Every integer or number a client sends (parameters and request bodies) without both a lower and an
    upper bound, named by where it is."""
    components = openapi.get("components", {}).get("schemas", {})
    found: list[str] = []

    def walk(schema, where: str, seen: frozenset[str]) -> None:
        if not isinstance(schema, dict):
            return
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            if name not in seen:
                walk(components[name], f"{where} ({name})", seen | {name})
            return
        if schema.get("type") in ("integer", "number"):
            low = "minimum" in schema or "exclusiveMinimum" in schema
            high = "maximum" in schema or "exclusiveMaximum" in schema
            if not (low and high):
                found.append(where)
        for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
            for part in schema.get(key, []):
                walk(part, where, seen)
        for name, part in schema.get("properties", {}).items():
            walk(part, f"{where}.{name}", seen)
        for key in ("items", "additionalProperties"):
            walk(schema.get(key), f"{where}[]", seen)

    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            label = f"{method.upper()} {path}"
            for parameter in operation.get("parameters", []):
                walk(parameter.get("schema"), f"{label} {parameter['in']} {parameter['name']}", frozenset())
            for content in operation.get("requestBody", {}).get("content", {}).values():
                walk(content.get("schema"), f"{label} body", frozenset())
    return sorted(set(found))


async def test_every_number_a_client_sends_is_bounded(client):
    """A number without bounds reaches the database or a library as sent: integers beyond 64 bits were 500s.
    Give every integer and number of a new endpoint `ge`/`le` (or `gt`/`lt`) that make sense for it."""
    openapi = (await client.get("/openapi.json")).json()
    assert unbounded_numbers(openapi) == []


async def test_a_body_that_cannot_be_parsed_is_an_openai_shaped_400_on_v1(client):
    for path in ("/v1/chat/completions", "/v1/embeddings"):
        response = await client.post(path, content=b"\xff\xfe!", headers={"content-type": "application/json"})
        assert response.status_code == 400, response.text
        assert response.json()["error"] == {
            "message": "The request body is not valid JSON.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_json",
        }


async def test_a_long_new_password_is_scored_not_a_500(settings):
    """zxcvbn raises ValueError beyond 72 characters: an admin creating an account with a 100-character
    password got a 500 (found by the fuzz run with auth on)."""
    async with running_app(with_auth(settings)) as client:
        await add_user(client, "root", "admin")
        admin = await bearer(client, "root")
        long_password = "violet harbour compass " * 4 + "77"
        assert len(long_password) > 72
        created = await client.post(
            "/auth/users",
            headers=admin,
            json={"username": "lin", "password": long_password, "role": "viewer"},
        )
        assert created.status_code == 201, created.text
        assert (await login(client, "lin", long_password)).status_code == 200
        # Beyond the scored characters, a weak start still counts: "a" * 100 is no password.
        weak = await client.post(
            "/auth/users", headers=admin, json={"username": "max", "password": "a" * 100, "role": "viewer"}
        )
        assert weak.status_code == 422, weak.text
        assert weak.json()["error"]["code"] == "weak_password"


async def test_a_one_time_code_that_is_not_ascii_digits_is_wrong_not_a_500(settings):
    """hmac.compare_digest refuses non-ASCII text: `{"code": "١٢٣٤٥٦"}` was a 500 (found by the fuzz run)."""
    async with running_app(with_auth(settings)) as client:
        await add_user(client, "ada", "operator")
        ada = await bearer(client, "ada")
        assert (await client.post("/auth/totp/setup", headers=ada)).status_code == 200
        for code in ("١٢٣٤٥٦", "12345é", "\u001dk\u00cev12"):
            response = await client.post("/auth/totp/enable", headers=ada, json={"code": code})
            assert response.status_code == 403, response.text
            assert response.json()["error"]["code"] == "otp_invalid"


async def test_operations_that_relay_a_model_or_a_service_document_502(client):
    """An agent run that ends without an answer (its tool calls failed, or the model answered nothing) is a
    502 with the error body; the fuzz run flagged it as a status code the schema did not document."""
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path in (
        "/api/v2/agents/execute",
        "/agents/execute",
        "/inference/chat",
        "/tasks",
        "/knowledge/search",
    ):
        for method, operation in paths[path].items():
            error = operation["responses"]["502"]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/ErrorBody"}, (method, path)
    wire = paths["/v1/chat/completions"]["post"]["responses"]["502"]["content"]["application/json"]["schema"]
    assert wire == {"$ref": "#/components/schemas/WireError"}
