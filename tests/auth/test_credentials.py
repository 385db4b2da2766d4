"""Issue 13, credentials lifecycle, over HTTP with auth on: API keys follow their creator (disabled: dead;
demoted: demoted), nobody grants above their own role, a password change or a disable ends every session,
failed logins lock (account, client) with backoff, refresh tokens rotate and a reused one revokes its login,
an optional TOTP second factor, and OIDC login against a small real provider (tests/oidc_provider.py)."""

from __future__ import annotations

import time

import httpx
import pyotp
import pytest
from joserfc.jwk import RSAKey
from oidc_provider import CLIENT_ID, CLIENT_SECRET, OIDCProvider
from support import running_app
from tenants import account, bearer_in
from test_auth import NEW_PASSWORD, PASSWORD, add_user, login, with_auth

from agent_lightning.core.config import Settings


async def user_id(client: httpx.AsyncClient, admin: dict, username: str) -> str:
    users = (await client.get("/auth/users", headers=admin)).json()["items"]
    return next(u["id"] for u in users if u["username"] == username)


async def test_api_keys_follow_their_creator(settings: Settings) -> None:
    async with running_app(with_auth(settings)) as client:
        root = await account(client, "root", "platform_admin", "default")
        ada = await account(client, "ada", "admin", "default")
        key = (await client.post("/auth/api-keys", headers=ada, json={"name": "ci", "role": "admin"})).json()[
            "key"
        ]
        by_key = {"X-API-Key": key}
        child = (
            await client.post("/auth/api-keys", headers=by_key, json={"name": "child", "role": "operator"})
        ).json()
        assert (await client.get("/auth/me", headers=by_key)).json()["role"] == "admin"

        # Demoted: the key acts as viewer, though it was made as admin.
        ada_id = await user_id(client, root, "ada")
        assert (
            await client.patch(f"/auth/users/{ada_id}", headers=root, json={"role": "viewer"})
        ).status_code == 200
        assert (await client.get("/auth/me", headers=by_key)).json()["role"] == "viewer"
        assert (await client.get("/auth/users", headers=by_key)).status_code == 403
        assert (await client.get("/auth/me", headers={"X-API-Key": child["key"]})).json()["role"] == "viewer"

        # Disabled: every key the user made (and the keys made with them) stops working.
        assert (
            await client.patch(f"/auth/users/{ada_id}", headers=root, json={"disabled": True})
        ).status_code == 200
        for credential in (key, child["key"]):
            refused = await client.get("/tasks", headers={"X-API-Key": credential})
            assert refused.status_code == 401 and refused.json()["error"]["code"] == "api_key_owner_disabled"


async def test_nobody_grants_a_role_above_their_own(settings: Settings) -> None:
    async with running_app(with_auth(settings)) as client:
        root = await account(client, "root", "platform_admin", "default")
        ada = await account(client, "ada", "admin", "default")
        strong = "grey otter lantern 42"
        for body in ({"username": "boss", "password": strong, "role": "platform_admin"},):
            refused = await client.post("/auth/users", headers=ada, json=body)
            assert refused.status_code == 403 and refused.json()["error"]["code"] == "role_above_yours"
        assert (
            await client.post("/auth/api-keys", headers=ada, json={"name": "k", "role": "platform_admin"})
        ).status_code == 403
        otto = (
            await client.post(
                "/auth/users", headers=ada, json={"username": "otto", "password": strong, "role": "operator"}
            )
        ).json()
        assert (
            await client.patch(f"/auth/users/{otto['id']}", headers=ada, json={"role": "platform_admin"})
        ).status_code == 403
        # A tenant admin cannot take over the platform admin of their tenant (password, disable, demote).
        root_id = await user_id(client, root, "root")
        for change in ({"password": strong}, {"disabled": True}, {"role": "viewer"}):
            assert (await client.patch(f"/auth/users/{root_id}", headers=ada, json=change)).status_code == 403
        assert (
            await client.post(
                "/auth/users",
                headers=root,
                json={"username": "ops2", "password": strong, "role": "platform_admin"},
            )
        ).status_code == 201


async def test_a_password_change_or_a_disable_ends_every_session(settings: Settings) -> None:
    async with running_app(with_auth(settings)) as client:
        root = await account(client, "root", "admin", "default")
        await add_user(client, "ada", "operator")
        first = (await login(client, "ada")).json()
        second = (await login(client, "ada")).json()
        old = {"Authorization": f"Bearer {first['access_token']}"}
        changed = await client.post(
            "/auth/password", headers=old, json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}
        )
        assert changed.status_code == 200
        for token in (first["access_token"], second["access_token"]):
            refused = await client.get("/tasks", headers={"Authorization": f"Bearer {token}"})
            assert refused.status_code == 401 and refused.json()["error"]["code"] == "token_revoked"
        refused = await client.post("/auth/refresh", json={"refresh_token": second["refresh_token"]})
        assert refused.status_code == 401

        fresh = (await login(client, "ada", NEW_PASSWORD)).json()
        ada_id = await user_id(client, root, "ada")
        await client.patch(f"/auth/users/{ada_id}", headers=root, json={"disabled": True})
        await client.patch(f"/auth/users/{ada_id}", headers=root, json={"disabled": False})  # back, but …
        assert (
            await client.get("/tasks", headers={"Authorization": f"Bearer {fresh['access_token']}"})
        ).status_code == 401  # … the sessions from before the disable stay ended
        assert (
            await client.post("/auth/refresh", json={"refresh_token": fresh["refresh_token"]})
        ).status_code == 401


async def test_failures_from_one_address_do_not_lock_the_owner_out(settings: Settings) -> None:
    """The old lock was global: anyone could lock any account by failing logins in its name."""
    async with running_app(with_auth(settings, auth_lockout_attempts=3)) as client:
        await add_user(client, "ada", "operator")
        attacker = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=client.app, client=("203.0.113.9", 5000)), base_url="http://alp"
        )
        async with attacker:
            for _ in range(10):
                await login(attacker, "ada", "guess " * 3)
            assert (await login(attacker, "ada")).json()["error"]["code"] == "account_locked"
        assert (await login(client, "ada")).status_code == 200


async def test_refresh_tokens_rotate_and_a_reused_one_revokes_the_login(settings: Settings) -> None:
    async with running_app(with_auth(settings)) as client:
        await add_user(client, "ada", "operator")
        first = (await login(client, "ada")).json()
        assert first["refresh_token"].startswith("alpr_") and first["refresh_expires_in"] > 0
        second = (await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})).json()
        assert second["refresh_token"] != first["refresh_token"]
        assert (
            await client.get("/tasks", headers={"Authorization": f"Bearer {second['access_token']}"})
        ).status_code == 200
        # The first token again: someone kept a copy. It is refused and the whole login with it.
        reused = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert reused.status_code == 401 and reused.json()["error"]["code"] == "refresh_token_reused"
        assert (
            await client.post("/auth/refresh", json={"refresh_token": second["refresh_token"]})
        ).status_code == 401

        other = (await login(client, "ada")).json()
        assert (
            await client.post("/auth/logout", json={"refresh_token": other["refresh_token"]})
        ).status_code == 200
        assert (
            await client.post("/auth/refresh", json={"refresh_token": other["refresh_token"]})
        ).status_code == 401
        assert (await client.post("/auth/refresh", json={"refresh_token": "alpr_forged"})).status_code == 401


async def test_totp_second_factor(settings: Settings) -> None:
    async with running_app(with_auth(settings)) as client:
        root = await account(client, "root", "admin", "default")
        await add_user(client, "ada", "operator")
        ada = await bearer_in(client, "ada", "default")
        setup = (await client.post("/auth/totp/setup", headers=ada)).json()
        assert setup["otpauth_uri"].startswith("otpauth://totp/")
        code = pyotp.TOTP(setup["secret"])
        assert (
            await client.post("/auth/totp/enable", headers=ada, json={"code": "000000"})
        ).status_code == 403
        # Confirmed with the previous step's code (within the allowed drift), so the current one is still
        # unused.
        enabled = await client.post(
            "/auth/totp/enable", headers=ada, json={"code": code.at(time.time() - 30)}
        )
        assert enabled.status_code == 200 and enabled.json()["totp_enabled"]

        needed = await login(client, "ada")
        assert needed.status_code == 401 and needed.json()["error"]["code"] == "otp_required"
        wrong = await login(client, "ada", otp="123456" if code.now() != "123456" else "654321")
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "otp_invalid"
        current = code.now()
        ok = await login(client, "ada", otp=current)
        assert ok.status_code == 200, ok.text
        replay = await login(client, "ada", otp=current)
        assert replay.status_code == 401 and replay.json()["error"]["code"] == "otp_invalid"

        # A lost device: an admin turns it off; the secret is stored encrypted meanwhile.
        ada_id = await user_id(client, root, "ada")
        assert (await client.patch(f"/auth/users/{ada_id}", headers=root, json={"reset_totp": True})).json()[
            "totp_enabled"
        ] is False
        assert (await login(client, "ada")).status_code == 200


@pytest.fixture
def provider():
    made = OIDCProvider("http://alp/auth/oidc/callback").start()
    yield made
    made.stop()


def with_oidc(settings: Settings, provider: OIDCProvider) -> Settings:
    from pydantic import SecretStr

    return with_auth(
        settings,
        oidc_issuer=provider.issuer,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=SecretStr(CLIENT_SECRET),
        oidc_redirect_uri=provider.redirect_uri,
        oidc_tenant="acme",
        oidc_role="operator",
    )


async def oidc_login(client: httpx.AsyncClient) -> httpx.Response:
    """The browser's part: start, follow the provider's redirect, come back with the code."""
    started = await client.get("/auth/oidc/login")
    assert started.status_code == 200, started.text
    async with httpx.AsyncClient() as browser:  # the provider, over real HTTP
        redirected = await browser.get(started.json()["authorization_url"])
    assert redirected.status_code == 302, redirected.text
    location = httpx.URL(redirected.headers["location"])
    return await client.get(location.path, params=dict(location.params))


async def test_oidc_login_with_a_real_provider(settings: Settings, provider: OIDCProvider) -> None:
    async with running_app(with_oidc(settings, provider)) as client:
        tokens = await oidc_login(client)
        assert tokens.status_code == 200, tokens.text
        me = (
            await client.get("/auth/me", headers={"Authorization": f"Bearer {tokens.json()['access_token']}"})
        ).json()
        assert me["name"] == "grace" and me["tenant_id"] == "acme" and me["role"] == "operator"
        assert provider.token_requests == 1 and provider.issued_claims["aud"] == CLIENT_ID
        again = await oidc_login(client)  # the same subject: the same account
        assert again.json()["tenant_id"] == "acme"
        users = [
            u
            for u in (
                await client.get("/auth/users", headers=await account(client, "boss", "admin", "acme"))
            ).json()["items"]
            if u["oidc"]
        ]
        assert [u["username"] for u in users] == ["grace"]
        assert (await login(client, "grace", "anything at all 123", tenant="acme")).status_code == 401


async def test_oidc_refuses_forged_and_mismatched_logins(settings: Settings, provider: OIDCProvider) -> None:
    async with running_app(with_oidc(settings, provider)) as client:
        for knob, value in (
            ("audience", "another-client"),
            ("nonce", "replayed-nonce"),
            ("signing_key", RSAKey.generate_key(2048, parameters={"kid": "main"})),
        ):
            setattr(provider, knob, value)
            refused = await oidc_login(client)
            assert (
                refused.status_code == 401 and refused.json()["error"]["code"] == "oidc_invalid_id_token"
            ), knob
            setattr(provider, knob, provider.key if knob == "signing_key" else None)

        # A callback this browser did not start (login CSRF), or with another state.
        started = await client.get("/auth/oidc/login")
        async with httpx.AsyncClient() as browser:
            location = httpx.URL((await browser.get(started.json()["authorization_url"])).headers["location"])
        params = dict(location.params)
        stranger = httpx.AsyncClient(transport=client._transport, base_url="http://alp")
        async with stranger:
            no_cookie = await stranger.get("/auth/oidc/callback", params=params)
        assert no_cookie.status_code == 401 and no_cookie.json()["error"]["code"] == "oidc_state_mismatch"
        tampered = await client.get("/auth/oidc/callback", params={**params, "state": "other"})
        assert tampered.status_code == 401 and tampered.json()["error"]["code"] == "oidc_state_mismatch"
        denied = await client.get(
            "/auth/oidc/callback", params={"error": "access_denied", "state": params["state"]}
        )
        assert denied.status_code == 401 and denied.json()["error"]["code"] == "oidc_denied"


async def test_oidc_is_off_unless_configured(settings: Settings) -> None:
    async with running_app(with_auth(settings)) as client:
        off = await client.get("/auth/oidc/login")
        assert off.status_code == 404 and off.json()["error"]["code"] == "oidc_not_configured"
