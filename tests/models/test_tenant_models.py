"""Issue 13, cross-tenant breaks 1 and 2, reproduced over HTTP with auth on and two tenants:

1. A tenant admin registered an alias with `api_key_env: ALP_AUTH_SECRET` and their own base URL and received
   the server's signing secret. Keys now come only from secrets the operator allowed: a secrets store
   (write-only, encrypted at rest, per tenant and platform-wide), env variables only for platform aliases and
   only from ALP_SECRET_ENV_ALLOW (never ALP_*), the operator's provider keys only towards the operator's
   URLs.
2. The registry was global: tenant B repointed an alias and received tenant A's prompts. Aliases are per
  tenant;
   platform-wide ones only a platform admin changes.
"""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from sqlalchemy import text
from support import served
from tenants import account
from test_auth import SECRET, with_auth
from upstream import FakeUpstream

from agent_lightning.core.config import Settings
from agent_lightning.core.db import Database
from agent_lightning.core.tenancy import PLATFORM

OPERATOR_KEY = "sk-operator-key-0123456789"
PROVIDER_KEY = "sk-platform-env-key-987654321"
CHAT = {"messages": [{"role": "user", "content": "confidential plan of A"}]}


@pytest.fixture
def upstreams():
    made = {name: FakeUpstream(name).start() for name in ("platform", "attacker", "b-own")}
    yield made
    for upstream in made.values():
        upstream.stop()


@pytest.fixture
def secured(settings: Settings, monkeypatch) -> Settings:
    monkeypatch.setenv("PROVIDER_KEY", PROVIDER_KEY)
    return with_auth(settings, openai_api_key=SecretStr(OPERATOR_KEY), secret_env_allow=["PROVIDER_KEY"])


def leaked(upstream: FakeUpstream, *values: str) -> list[str]:
    """Every secret value that reached `upstream` in a header or body."""
    seen = " ".join(str(h) for h in upstream.headers) + " ".join(str(r) for r in upstream.requests)
    return [value for value in values if value in seen]


def deployment(upstream: FakeUpstream, **extra) -> dict:
    return {"provider": "openai-compatible", "model": "m", "base_url": f"{upstream.url}/v1", **extra}


async def test_a_tenant_admin_cannot_read_server_secrets_through_a_model_alias(secured, upstreams) -> None:
    attacker = upstreams["attacker"]
    async with served(secured, services=["models", "auth"]) as client:
        mallory = await account(client, "mallory", "admin", "b")
        for source in (
            {"api_key_env": "ALP_AUTH_SECRET"},
            {"api_key_env": "ALP_DATABASE_URL"},
            {"api_key_env": "PROVIDER_KEY"},
            {"api_key_env": "HOME"},
        ):
            refused = await client.post(
                "/models",
                headers=mallory,
                json={"id": "exfil", "deployments": [deployment(attacker, **source)]},
            )
            assert refused.status_code == 422, (source, refused.text)
            assert refused.json()["error"]["code"] == "api_key_env_not_allowed"

        # The operator's provider key goes only to the operator's base URL, never to one a tenant chose.
        made = await client.post(
            "/models",
            headers=mallory,
            json={
                "id": "exfil",
                "deployments": [{"provider": "openai", "model": "m", "base_url": f"{attacker.url}/v1"}],
            },
        )
        assert made.status_code == 201, made.text
        await client.post("/v1/chat/completions", headers=mallory, json={"model": "exfil", **CHAT})

        # A platform secret cannot be named by a tenant's alias (it would travel to the tenant's URL).
        root = await account(client, "root", "platform_admin", "ops")
        stored = await client.put(
            "/secrets/openai-prod", headers=root, json={"value": PROVIDER_KEY, "scope": "platform"}
        )
        assert stored.status_code == 200, stored.text
        refused = await client.post(
            "/models",
            headers=mallory,
            json={"id": "exfil2", "deployments": [deployment(attacker, api_key_secret="openai-prod")]},
        )
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "secret_not_found"
    assert leaked(attacker, SECRET, OPERATOR_KEY, PROVIDER_KEY) == []


async def test_an_alias_stored_with_a_server_variable_before_the_fix_sends_no_secret(
    secured, upstreams
) -> None:
    """The attack as an older version stored it: the alias row is there, the call must not carry the
    secret."""
    attacker = upstreams["attacker"]
    async with served(secured, services=["models", "auth"]) as client:
        mallory = await account(client, "mallory", "admin", "b")
        db = Database(secured.resolved_database_url())
        async with db.session() as session:
            await session.execute(
                text(
                    "INSERT INTO model_aliases (tenant_id, id, kind, status, version, description, "
                    "deployments, fallbacks, params, is_default, created_at, updated_at) VALUES (:t, "
                    "'legacy', 'chat', 'active', 1, '', :d, '[]', '{}', false, CURRENT_TIMESTAMP, "
                    "CURRENT_TIMESTAMP)"
                ),
                {
                    "t": PLATFORM,
                    "d": f'[{{"provider": "openai-compatible", "model": "m", "base_url": "{attacker.url}/v1",'
                    f' "api_key_env": "ALP_AUTH_SECRET"}}]',
                },
            )
        await db.close()
        answer = await client.post("/v1/chat/completions", headers=mallory, json={"model": "legacy", **CHAT})
        assert answer.status_code == 503, answer.text
    assert leaked(attacker, SECRET) == [] and attacker.requests == []


async def test_secrets_are_write_only_encrypted_and_used_by_their_tenants_aliases(secured, upstreams) -> None:
    b_own = upstreams["b-own"]
    tenant_key = "sk-tenant-b-key-5555555555"
    async with served(secured, services=["models", "auth"]) as client:
        b_admin = await account(client, "bea", "admin", "b")
        b_viewer = await account(client, "bo", "operator", "b")
        a_admin = await account(client, "ann", "admin", "a")
        assert (
            await client.put("/secrets/llm-key", headers=b_viewer, json={"value": tenant_key})
        ).status_code == 403
        platform_try = await client.put(
            "/secrets/x", headers=b_admin, json={"value": "v", "scope": "platform"}
        )
        assert platform_try.status_code == 403
        stored = await client.put("/secrets/llm-key", headers=b_admin, json={"value": tenant_key})
        assert stored.status_code == 200 and tenant_key not in stored.text
        listed = await client.get("/secrets", headers=b_admin)
        assert [s["name"] for s in listed.json()["items"]] == ["llm-key"] and tenant_key not in listed.text
        assert (await client.get("/secrets", headers=a_admin)).json()["items"] == []  # A sees none of B's

        made = await client.post(
            "/models",
            headers=b_admin,
            json={"id": "mine", "deployments": [deployment(b_own, api_key_secret="llm-key")]},
        )
        assert made.status_code == 201, made.text
        answer = await client.post("/v1/chat/completions", headers=b_admin, json={"model": "mine", **CHAT})
        assert answer.status_code == 200, answer.text
        assert b_own.headers[-1]["authorization"] == f"Bearer {tenant_key}"
        # Tenant A can neither name B's secret nor B's alias.
        assert (
            await client.post(
                "/models",
                headers=a_admin,
                json={"id": "mine", "deployments": [deployment(b_own, api_key_secret="llm-key")]},
            )
        ).status_code == 422
        assert (
            await client.post("/v1/chat/completions", headers=a_admin, json={"model": "mine", **CHAT})
        ).status_code == 404

        # Inline keys are stored encrypted too: no secret value is readable in the database.
        await client.post(
            "/models",
            headers=b_admin,
            json={"id": "inline", "deployments": [deployment(b_own, api_key="sk-inline-777777777777")]},
        )
    db = Database(secured.resolved_database_url())
    async with db.session() as session:
        secrets = " ".join(
            r[0] for r in (await session.execute(text("SELECT ciphertext FROM secrets"))).all()
        )
        aliases = " ".join(
            str(r[0]) for r in (await session.execute(text("SELECT deployments FROM model_aliases"))).all()
        )
    await db.close()
    assert tenant_key not in secrets and "sk-inline-777777777777" not in aliases and "api_key_enc" in aliases


async def test_a_platform_alias_reads_an_allowed_variable_and_the_platform_secrets(
    secured, upstreams
) -> None:
    platform = upstreams["platform"]
    async with served(secured, services=["models", "auth"]) as client:
        root = await account(client, "root", "platform_admin", "ops")
        made = await client.post(
            "/models",
            headers=root,
            json={
                "id": "shared",
                "scope": "platform",
                "deployments": [deployment(platform, api_key_env="PROVIDER_KEY")],
            },
        )
        assert made.status_code == 201, made.text
        assert (
            await client.post(
                "/models",
                headers=root,
                json={
                    "id": "bad",
                    "scope": "platform",
                    "deployments": [deployment(platform, api_key_env="ALP_AUTH_SECRET")],
                },
            )
        ).status_code == 422
        answer = await client.post("/v1/chat/completions", headers=root, json={"model": "shared", **CHAT})
        assert answer.status_code == 200 and platform.headers[-1]["authorization"] == f"Bearer {PROVIDER_KEY}"


def test_settings_refuse_to_allow_the_platforms_own_variables() -> None:
    with pytest.raises(ValueError, match="ALP_AUTH_SECRET"):
        Settings(_env_file=None, secret_env_allow="OPENAI_API_KEY,ALP_AUTH_SECRET")


async def test_tenant_b_cannot_repoint_an_alias_that_tenant_a_uses(secured, upstreams) -> None:
    platform, b_own = upstreams["platform"], upstreams["b-own"]
    async with served(secured, services=["models", "auth"]) as client:
        root = await account(client, "root", "platform_admin", "ops")
        ann = await account(client, "ann", "operator", "a")
        mallory = await account(client, "mallory", "admin", "b")
        assert (
            await client.post(
                "/models",
                headers=root,
                json={"id": "shared", "scope": "platform", "deployments": [deployment(platform)]},
            )
        ).status_code == 201

        # The attack: repoint the alias every tenant uses, or the built-in `local`, or make the default.
        for alias in ("shared", "local"):
            repoint = await client.patch(
                f"/models/{alias}", headers=mallory, json={"deployments": [deployment(b_own)]}
            )
            assert repoint.status_code == 403 and repoint.json()["error"]["code"] == "platform_alias", (
                repoint.text
            )
            forced = await client.patch(
                f"/models/{alias}",
                headers=mallory,
                params={"scope": "platform"},
                json={"deployments": [deployment(b_own)]},
            )
            assert forced.status_code == 403
        assert (
            await client.post(
                "/models",
                headers=mallory,
                json={"id": "x", "scope": "platform", "deployments": [deployment(b_own)]},
            )
        ).status_code == 403
        assert (await client.post("/models/shared/default", headers=mallory)).status_code == 403

        # B may have its own alias of that name: it serves B only.
        own = await client.post(
            "/models", headers=mallory, json={"id": "shared", "deployments": [deployment(b_own)]}
        )
        assert own.status_code == 201 and own.json()["scope"] == "tenant"
        a_answer = await client.post("/v1/chat/completions", headers=ann, json={"model": "shared", **CHAT})
        assert a_answer.json()["choices"][0]["message"]["content"] == "platform says: confidential plan of A"
        assert b_own.requests == []  # A's prompt never reached B's endpoint
        b_answer = await client.post(
            "/v1/chat/completions",
            headers=mallory,
            json={"model": "shared", "messages": [{"role": "user", "content": "B asks"}]},
        )
        assert b_answer.json()["choices"][0]["message"]["content"] == "b-own says: B asks"
        a_view = {m["id"]: m for m in (await client.get("/models", headers=ann)).json()["items"]}
        assert a_view["shared"]["scope"] == "platform" and a_view["shared"]["deployments"][0][
            "base_url"
        ].startswith(platform.url)
        assert a_view["local"]["scope"] == "platform"

        # The platform admin changes the platform alias; B's own alias is untouched.
        moved = await client.patch(
            "/models/shared",
            headers=root,
            params={"scope": "platform"},
            json={"description": "every tenant's"},
        )
        assert moved.status_code == 200 and moved.json()["scope"] == "platform"


async def test_existing_aliases_migrate_to_platform_wide_with_their_keys_encrypted(
    settings: Settings, upstreams, fresh_database_url: str
) -> None:
    """A database from before per-tenant aliases: its global aliases stay usable by every tenant, as platform
    aliases, and a key stored in clear is encrypted the first time the model service loads it."""
    from alembic import command

    from agent_lightning.core.db import alembic_config

    platform = upstreams["platform"]
    settings = settings.model_copy(update={"database_url": fresh_database_url})  # migrated below, up to 0002
    db = Database(settings.resolved_database_url())

    def to_0002(connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "0002")

    async with db.engine.begin() as conn:
        await conn.run_sync(to_0002)
    async with db.session() as session:
        await session.execute(
            text(
                "INSERT INTO model_aliases (id, kind, status, version, description, deployments, fallbacks, "
                "params, is_default, created_at, updated_at) VALUES ('old', 'chat', 'active', 1, '', :d, "
                "'[]', '{}', false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {
                "d": f'[{{"provider": "openai-compatible", "model": "m", "base_url": "{platform.url}/v1",'
                f' "api_key": "sk-clear-key-4444444444"}}]'
            },
        )
    await db.upgrade()
    async with served(settings, services=["models"]) as client:
        listed = {m["id"]: m for m in (await client.get("/models")).json()["items"]}
        assert listed["old"]["scope"] == "platform"
        answer = await client.post("/v1/chat/completions", json={"model": "old", **CHAT})
        assert (
            answer.status_code == 200
            and platform.headers[-1]["authorization"] == "Bearer sk-clear-key-4444444444"
        )
    async with db.session() as session:
        stored = str((await session.execute(text("SELECT tenant_id, deployments FROM model_aliases"))).all())
    await db.close()
    assert PLATFORM in stored and "sk-clear-key-4444444444" not in stored and "api_key_enc" in stored
