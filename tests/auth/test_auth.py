"""Authentication and roles over the running app (ALP_AUTH_ENABLED): logins and tokens, API keys, the role
each route needs, tenants taken from the credential, lockout, the WebSocket handshake, service-to-service
tokens in split mode, and the CLI that creates the first admin. With auth off nothing changes (the rest of
the suite runs that way)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import timedelta

import httpx
import jwt
import pytest
from pydantic import SecretStr
from support import free_port, running_app, served, wait_for_status
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from agent_lightning.auth.service import AuthService
from agent_lightning.core.auth import sign
from agent_lightning.core.config import Settings
from agent_lightning.core.db import utcnow
from agent_lightning.core.tenancy import set_tenant

SECRET = "test-secret-" + "x" * 40
PASSWORD = "correct horse battery"
NEW_PASSWORD = "violet harbour compass 77"


def with_auth(settings: Settings, **updates) -> Settings:
    return settings.model_copy(update={"auth_enabled": True, "auth_secret": SecretStr(SECRET), **updates})


async def add_user(client: httpx.AsyncClient, username: str, role: str, tenant: str = "default") -> None:
    """An account created directly through the service, as `alp users create` does."""
    set_tenant(tenant)
    try:
        await client.app.state.auth.create_user(username, PASSWORD, role)
    finally:
        set_tenant("default")


async def login(
    client: httpx.AsyncClient, username: str, password: str = PASSWORD, **extra
) -> httpx.Response:
    return await client.post("/auth/token", data={"username": username, "password": password, **extra})


async def bearer(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    response = await login(client, username)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_auth_on_without_a_strong_secret_refuses_to_start(settings: Settings) -> None:
    from agent_lightning.app import create_app

    for secret in (None, SecretStr("short")):
        with pytest.raises(ValueError, match="ALP_AUTH_SECRET"):
            create_app(settings.model_copy(update={"auth_enabled": True, "auth_secret": secret}))


async def test_without_a_credential_every_route_but_health_and_docs_is_401(settings: Settings) -> None:
    async with running_app(with_auth(settings)) as client:
        for path in ("/health", "/health/ready", "/openapi.json", "/docs"):
            assert (await client.get(path)).status_code == 200, path
        for method, path in [
            ("GET", "/tasks"),
            ("POST", "/assign-task"),
            ("GET", "/policy"),
            ("GET", "/metrics"),
            ("GET", "/api/v2/agents"),
            ("GET", "/v1/models"),
            ("GET", "/auth/me"),
            ("GET", "/knowledge/stats"),
            ("POST", "/memory/sessions"),
        ]:
            response = await client.request(method, path, json={})
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers.get("WWW-Authenticate") == "Bearer", (path, response.text)
            error = response.json()["error"]  # /v1 answers in OpenAI's shape, with the same code
            assert error["code"] == "unauthenticated"
            assert "Bearer" in error["message"]
            assert response.headers["X-Correlation-ID"]


async def test_login_token_and_me(settings: Settings) -> None:
    async with running_app(with_auth(settings)) as client:
        await add_user(client, "ada", "operator")
        response = await login(client, "ada")
        assert response.status_code == 200
        body = response.json()
        assert (
            body["token_type"] == "bearer" and body["role"] == "operator" and body["tenant_id"] == "default"
        )
        assert body["expires_in"] == 900
        claims = jwt.decode(body["access_token"], SECRET, algorithms=["HS256"])
        assert claims["exp"] - claims["iat"] == 900

        me = await client.get("/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
        assert me.status_code == 200
        assert me.json() == {
            "kind": "user",
            "id": claims["sub"],
            "name": "ada",
            "tenant_id": "default",
            "role": "operator",
        }

        as_json = await client.post("/auth/token", json={"username": "ada", "password": PASSWORD})
        assert as_json.status_code == 200

        for bad in (
            {"username": "ada", "password": "wrong password"},
            {"username": "nobody", "password": PASSWORD},
        ):
            response = await client.post("/auth/token", data=bad)
            assert response.status_code == 401
            assert response.json()["error"] == {
                "code": "unauthenticated",
                "message": "Wrong username or password.",
                "details": None,
            }
        missing = await client.post("/auth/token", data={"username": "ada"})
        assert missing.status_code == 422
        assert missing.json()["error"]["code"] == "validation_error"
        malformed = await client.post(
            "/auth/token", content=b"{", headers={"Content-Type": "application/json"}
        )
        assert malformed.status_code == 400


async def test_bad_expired_and_forged_tokens_are_401(settings: Settings) -> None:
    async with running_app(with_auth(settings)) as client:
        await add_user(client, "ada", "admin")
        user_id = (await login(client, "ada")).json()
        claims = jwt.decode(user_id["access_token"], SECRET, algorithms=["HS256"])
        expired = sign({"sub": claims["sub"], "kind": "user"}, SECRET, ttl_s=-10)
        forged = sign({"sub": claims["sub"], "kind": "user"}, "another-secret-" + "y" * 40, ttl_s=60)
        cases = {"not-a-jwt": "unauthenticated", expired: "token_expired", forged: "unauthenticated"}
        for token, code in cases.items():
            response = await client.get("/tasks", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401
            assert response.json()["error"]["code"] == code


async def test_roles_viewer_reads_operator_writes_admin_manages(settings: Settings) -> None:
    async with running_app(with_auth(settings)) as client:
        for name, role in (("vic", "viewer"), ("otto", "operator"), ("ada", "admin")):
            await add_user(client, name, role)
        viewer, operator, admin = [await bearer(client, n) for n in ("vic", "otto", "ada")]

        assert (await client.get("/tasks", headers=viewer)).status_code == 200
        assert (await client.get("/metrics", headers=viewer)).status_code == 200
        denied = await client.post("/assign-task", json={"description": "Write a haiku"}, headers=viewer)
        assert denied.status_code == 403
        assert denied.json()["error"] == {
            "code": "forbidden",
            "message": "This needs the operator role; you are viewer.",
            "details": {"required": "operator", "role": "viewer"},
        }

        submitted = await client.post(
            "/assign-task", json={"description": "Write a haiku about rain"}, headers=operator
        )
        assert submitted.status_code == 200, submitted.text
        task = await wait_for_status_as(client, submitted.json()["task_id"], operator)
        assert task["status"] == "succeeded"

        # Switching the policy and changing the fleet are the admins'.
        for headers, status in ((operator, 403), (admin, 200)):
            response = await client.put("/policy", json={"name": "thompson"}, headers=headers)
            assert response.status_code == status, response.text
        agent = {
            "id": "poet",
            "name": "Poet",
            "role": "writer",
            "description": "Writes poems",
            "capabilities": ["poetry"],
            "system_prompt": "You write poems.",
        }
        assert (await client.post("/api/v2/agents", json=agent, headers=operator)).status_code == 403
        created = await client.post("/api/v2/agents", json=agent, headers=admin)
        assert created.status_code == 201, created.text

        # Accounts are the admins' too.
        new_user = {"username": "newbie", "password": "grey otter lantern 42", "role": "viewer"}
        assert (await client.post("/auth/users", json=new_user, headers=operator)).status_code == 403
        assert (await client.post("/auth/users", json=new_user, headers=admin)).status_code == 201
        again = await client.post("/auth/users", json=new_user, headers=admin)
        assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
        for weak in (
            "short",
            "password1234",
            "qwertyuiop123",
            "xavierxavierxavier",
        ):  # the last: the user's name
            refused = await client.post(
                "/auth/users", json={**new_user, "username": "xavier", "password": weak}, headers=admin
            )
            assert refused.status_code == 422 and refused.json()["error"]["code"] == "weak_password", weak
        users = (await client.get("/auth/users", headers=admin)).json()["items"]
        assert {u["username"]: u["role"] for u in users} == {
            "vic": "viewer",
            "otto": "operator",
            "ada": "admin",
            "newbie": "viewer",
        }
        assert all("password" not in str(u) for u in users)


async def wait_for_status_as(client: httpx.AsyncClient, task_id: str, headers: dict[str, str]) -> dict:
    """`wait_for_status` with a credential on every poll."""
    authed = httpx.AsyncClient(transport=client._transport, base_url="http://alp", headers=headers)
    async with authed:
        return await wait_for_status(authed, task_id)


async def test_disabling_a_user_or_changing_the_role_takes_effect_on_existing_tokens(
    settings: Settings,
) -> None:
    async with running_app(with_auth(settings)) as client:
        await add_user(client, "ada", "admin")
        await add_user(client, "otto", "operator")
        admin, operator = await bearer(client, "ada"), await bearer(client, "otto")
        otto = next(
            u
            for u in (await client.get("/auth/users", headers=admin)).json()["items"]
            if u["username"] == "otto"
        )

        demoted = await client.patch(f"/auth/users/{otto['id']}", json={"role": "viewer"}, headers=admin)
        assert demoted.status_code == 200 and demoted.json()["role"] == "viewer"
        assert (
            await client.post("/assign-task", json={"description": "x y z"}, headers=operator)
        ).status_code == 403

        await client.patch(f"/auth/users/{otto['id']}", json={"disabled": True}, headers=admin)
        assert (await client.get("/tasks", headers=operator)).status_code == 401
        assert (await login(client, "otto")).status_code == 401

        unknown = await client.patch("/auth/users/nope", json={"disabled": True}, headers=admin)
        assert unknown.status_code == 404
        extra = await client.patch(f"/auth/users/{otto['id']}", json={"is_admin": True}, headers=admin)
        assert extra.status_code == 422


async def test_api_keys_are_shown_once_stored_hashed_and_revocable(settings: Settings) -> None:
    async with running_app(with_auth(settings)) as client:
        await add_user(client, "ada", "admin")
        admin = await bearer(client, "ada")
        created = await client.post(
            "/auth/api-keys", json={"name": "prometheus", "role": "viewer"}, headers=admin
        )
        assert created.status_code == 201
        key = created.json()
        assert (
            key["key"].startswith("alp_") and key["prefix"] == key["key"][:12] and key["revoked_at"] is None
        )

        listed = (await client.get("/auth/api-keys", headers=admin)).json()["items"]
        assert [k["id"] for k in listed] == [key["id"]]
        assert "key" not in listed[0]

        # Stored as a digest only: the key is nowhere in the database.
        from sqlalchemy import text

        async with client.app.state.platform.db.session() as session:
            stored = (await session.execute(text("SELECT key_hash, prefix FROM api_keys"))).one()
        assert key["key"] not in stored.key_hash and len(stored.key_hash) == 64

        for headers in ({"X-API-Key": key["key"]}, {"Authorization": f"Bearer {key['key']}"}):
            me = await client.get("/auth/me", headers=headers)
            assert me.json()["kind"] == "api_key" and me.json()["role"] == "viewer"
            assert (await client.get("/metrics", headers=headers)).status_code == 200
            assert (
                await client.post("/assign-task", json={"description": "a b c"}, headers=headers)
            ).status_code == 403

        revoked = await client.delete(f"/auth/api-keys/{key['id']}", headers=admin)
        assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
        after = await client.get("/tasks", headers={"X-API-Key": key["key"]})
        assert after.status_code == 401
        assert after.json()["error"]["message"] == "The API key is invalid or revoked."
        assert (await client.delete("/auth/api-keys/nope", headers=admin)).status_code == 404


async def test_tenant_comes_from_the_credential(settings: Settings) -> None:
    async with running_app(with_auth(settings)) as client:
        await add_user(client, "ada", "operator", tenant="default")
        await add_user(client, "bob", "admin", tenant="acme")
        ada = await bearer(client, "ada")
        wrong_tenant = await login(client, "bob")  # bob is not in the default tenant
        assert wrong_tenant.status_code == 401
        response = await login(client, "bob", tenant="acme")
        assert response.status_code == 200 and response.json()["tenant_id"] == "acme"
        bob = {"Authorization": f"Bearer {response.json()['access_token']}"}

        submitted = await client.post(
            "/assign-task", json={"description": "Write a haiku about snow"}, headers=ada
        )
        task_id = submitted.json()["task_id"]
        await wait_for_status_as(client, task_id, ada)
        assert [t["task_id"] for t in (await client.get("/tasks", headers=ada)).json()["items"]] == [task_id]
        assert (await client.get("/tasks", headers=bob)).json()["items"] == []
        assert (await client.get(f"/tasks/{task_id}", headers=bob)).status_code == 404
        # Agents are per tenant: acme has none until its admin registers them.
        assert (await client.get("/api/v2/agents", headers=bob)).json()["items"] == []
        # An admin sees and manages only their own tenant's accounts.
        assert [u["username"] for u in (await client.get("/auth/users", headers=bob)).json()["items"]] == [
            "bob"
        ]


async def test_lockout_after_repeated_failures(settings: Settings) -> None:
    """Failures lock the (account, client address) pair, with backoff; another address is not locked out."""
    async with running_app(
        with_auth(settings, auth_lockout_attempts=3, auth_lockout_base_s=30, auth_lockout_s=600)
    ) as client:
        await add_user(client, "ada", "admin")
        for _ in range(3):
            assert (await login(client, "ada", "wrong password")).status_code == 401
        locked = await login(client, "ada")  # even the right password
        assert locked.status_code == 401
        error = locked.json()["error"]
        assert error["code"] == "account_locked" and 1 <= error["details"]["retry_after_s"] <= 31

        # Ada herself, from another address, is not locked out by whoever failed from this one.
        transport = httpx.ASGITransport(app=client.app, client=("10.7.7.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://alp") as elsewhere:
            assert (await login(elsewhere, "ada")).status_code == 200

        # Once the lock has run out, one more failure locks twice as long; the right password resets the
        # count.
        from sqlalchemy import update

        from agent_lightning.auth.tables import LoginFailureRow

        async def expire() -> None:
            async with client.app.state.platform.db.session() as session:
                await session.execute(
                    update(LoginFailureRow).values(locked_until=utcnow() - timedelta(seconds=1))
                )

        await expire()
        assert (await login(client, "ada", "wrong password")).status_code == 401
        again = (await login(client, "ada")).json()["error"]
        assert again["code"] == "account_locked" and 31 < again["details"]["retry_after_s"] <= 61
        await expire()
        assert (await login(client, "ada")).status_code == 200
        assert (await login(client, "ada", "wrong password")).json()["error"]["code"] == "unauthenticated"


async def test_live_events_need_a_credential_and_see_only_their_tenant(settings: Settings) -> None:
    async with served(with_auth(settings)) as client:
        await add_user(client, "vic", "viewer")
        await add_user(client, "otto", "operator")
        await add_user(client, "bob", "viewer", tenant="acme")
        viewer, operator = await bearer(client, "vic"), await bearer(client, "otto")
        acme = (await login(client, "bob", tenant="acme")).json()["access_token"]

        for refused in (client.ws, f"{client.ws}?token=forged"):
            with pytest.raises(InvalidStatus) as handshake:
                async with connect(refused):
                    pass
            assert handshake.value.response.status_code == 403

        async with (
            connect(f"{client.ws}?types=task.*&token={acme}") as other_tenant,
            connect(f"{client.ws}?types=task.*", additional_headers=viewer) as ws,
        ):
            submitted = await client.post(
                "/assign-task", json={"description": "Summarise the news"}, headers=operator
            )
            event = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert event["type"] == "task.created" and event["data"]["task_id"] == submitted.json()["task_id"]
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(other_tenant.recv(), 0.5)


@pytest.mark.slow
def test_split_services_call_each_other_with_service_tokens(cluster, settings: Settings) -> None:
    """Auth, orchestrator and execution in three processes: the user logs in at auth, submits to the
    orchestrator, and the task crosses to execution with a token the orchestrator signs for the user's
    tenant; the same call without a credential is refused, and only auth serves logins."""
    auth_env = {"ALP_AUTH_ENABLED": "true", "ALP_AUTH_SECRET": SECRET}
    auth = cluster.start("auth", "auth", free_port(), **auth_env)
    execution = cluster.start("execution", "execution", free_port(), **auth_env)
    orchestrator = cluster.start(
        "orchestrator",
        "orchestrator",
        free_port(),
        ALP_EXECUTION_URLS=execution,
        ALP_AGENTS_URL=execution,
        **auth_env,
    )

    async def create_operator() -> None:
        from agent_lightning.core.db import Database

        db = Database(cluster.database_url)
        await AuthService(db, with_auth(settings)).create_user("otto", PASSWORD, "operator")
        await db.close()

    asyncio.run(create_operator())
    assert (
        httpx.post(f"{orchestrator}/auth/token", data={"username": "otto", "password": PASSWORD}).status_code
        == 404
    )
    token = httpx.post(f"{auth}/auth/token", data={"username": "otto", "password": PASSWORD}).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    task_id = httpx.post(
        f"{orchestrator}/assign-task", json={"description": "Deploy with docker"}, headers=headers
    ).json()["task_id"]
    deadline = time.monotonic() + 20
    while (task := httpx.get(f"{orchestrator}/tasks/{task_id}", headers=headers).json())["status"] not in (
        "succeeded",
        "failed",
    ) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert task["status"] == "succeeded", task
    assert httpx.post(f"{execution}/api/v2/agents/execute", json={"task": "x"}).status_code == 401
    assert httpx.get(f"{execution}/api/v2/agents").status_code == 401


def test_cli_creates_the_first_admin_who_can_log_in(settings: Settings, tmp_path) -> None:
    env = {
        **os.environ,
        "ALP_DATABASE_URL": settings.resolved_database_url(),
        "ALP_DATA_DIR": str(tmp_path),
        "ALP_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "agent_lightning.cli", "users", "create", "root", "--password-stdin"]
    done = subprocess.run(
        command, input=f"{PASSWORD}\n", env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "Created admin 'root' in tenant 'default'" in done.stdout
    again = subprocess.run(
        command, input=f"{PASSWORD}\n", env=env, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 1 and "already exists" in again.stderr
    bad_role = subprocess.run(
        [*command[:-2], "weak", "--role", "root", "--password-stdin"],
        input=f"{PASSWORD}\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad_role.returncode == 2 and "role" in bad_role.stderr
    weak = subprocess.run(
        [*command[:-2], "weak", "--password-stdin"],
        input="password123\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert weak.returncode == 1 and "weak_password" in weak.stderr

    async def log_in() -> int:
        async with running_app(with_auth(settings)) as client:
            return (await login(client, "root")).status_code

    assert asyncio.run(log_in()) == 200


async def test_users_change_their_own_password(settings: Settings) -> None:
    async with running_app(with_auth(settings)) as client:
        await add_user(client, "ada", "viewer")
        ada = await bearer(client, "ada")
        wrong = await client.post(
            "/auth/password", json={"current_password": "nope", "new_password": NEW_PASSWORD}, headers=ada
        )
        assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "wrong_password"
        short = await client.post(
            "/auth/password", json={"current_password": PASSWORD, "new_password": "short"}, headers=ada
        )
        assert short.status_code == 422 and short.json()["error"]["code"] == "weak_password"
        changed = await client.post(
            "/auth/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}, headers=ada
        )
        assert changed.status_code == 200 and changed.json()["username"] == "ada"
        assert (await login(client, "ada")).status_code == 401
        assert (await login(client, "ada", NEW_PASSWORD)).status_code == 200


async def test_logins_and_account_changes_are_events_and_metrics(settings: Settings) -> None:
    async with running_app(with_auth(settings, auth_lockout_attempts=2)) as client:
        bus = client.app.state.platform.bus
        await add_user(client, "ada", "admin")
        admin = await bearer(client, "ada")
        await login(client, "nobody")
        await client.post("/auth/api-keys", json={"name": "ci"}, headers=admin)
        await add_user(client, "otto", "operator")
        for _ in range(2):
            await login(client, "otto", "wrong password")

        events = [e for e in bus.recent(100) if e.type.startswith("auth.")]
        assert [e.type for e in events] == [
            "auth.user_created",
            "auth.login_succeeded",
            "auth.login_failed",
            "auth.api_key_created",
            "auth.user_created",
            "auth.login_failed",
            "auth.login_failed",
            "auth.account_locked",
        ]
        assert [e.data.get("reason") for e in events if e.type == "auth.login_failed"] == [
            "unknown_user",
            "wrong_password",
            "wrong_password",
        ]
        assert all(e.tenant_id == "default" and e.source == "auth" for e in events)
        assert PASSWORD not in str([e.data for e in events]) and "alp_" not in str([e.data for e in events])

        metrics = (await client.get("/metrics", headers=admin)).text
        assert 'alp_auth_logins_total{outcome="succeeded"} 1.0' in metrics
        assert 'alp_auth_logins_total{outcome="wrong_password"} 2.0' in metrics
        assert 'alp_auth_logins_total{outcome="unknown_user"} 1.0' in metrics


async def test_server_sent_events_need_a_credential_header_or_token(settings: Settings) -> None:
    async with served(with_auth(settings)) as client:
        await add_user(client, "vic", "viewer")
        viewer = await bearer(client, "vic")
        refused = await client.get("/events")
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthenticated"
        token = viewer["Authorization"].removeprefix("Bearer ")
        for kwargs in ({"headers": viewer}, {"params": {"token": token}}):
            async with client.stream("GET", "/events", **kwargs) as response:
                assert response.status_code == 200
