"""Two tenants on one running platform with authentication on: accounts and credentials for the
cross-tenant regression tests (issue 13)."""

from __future__ import annotations

import httpx
from test_auth import PASSWORD, add_user


async def bearer_in(
    client: httpx.AsyncClient, username: str, tenant: str, password: str = PASSWORD
) -> dict[str, str]:
    """The Authorization header of a user of `tenant`, logged in over HTTP."""
    response = await client.post(
        "/auth/token", data={"username": username, "password": password, "tenant": tenant}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def account(client: httpx.AsyncClient, username: str, role: str, tenant: str) -> dict[str, str]:
    """A new account of `tenant`, and its Authorization header."""
    await add_user(client, username, role, tenant=tenant)
    return await bearer_in(client, username, tenant)
