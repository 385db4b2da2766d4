"""Issue 13 regressions outside the model service, reproduced over HTTP with auth on and two tenants:
service tokens capped at operator, roles never granted above the granter's, ..."""

from __future__ import annotations

from support import served
from tenants import account
from test_auth import SECRET, with_auth

from agent_lightning.core.auth import sign
from agent_lightning.core.config import Settings


async def test_a_service_token_never_acts_above_operator(settings: Settings) -> None:
    async with served(with_auth(settings)) as client:
        await account(client, "ann", "admin", "a")
        for role in ("admin", "platform_admin"):
            token = sign(
                {"sub": "service:orchestrator", "kind": "service", "tid": "a", "role": role}, SECRET, 60
            )
            headers = {"Authorization": f"Bearer {token}"}
            me = await client.get("/auth/me", headers=headers)
            assert me.status_code == 200 and me.json()["role"] == "operator", me.text
            for method, path, body in [
                ("POST", "/auth/users", {"username": "evil", "password": "x" * 20}),
                ("PUT", "/policy", {"name": "capability"}),
                ("POST", "/auth/api-keys", {"name": "k", "role": "admin"}),
                ("PUT", "/secrets/k", {"value": "v"}),
            ]:
                response = await client.request(method, path, json=body, headers=headers)
                assert response.status_code == 403, (role, path, response.text)
            tasks = await client.get("/tasks", headers=headers)  # what a service does still works
            assert tasks.status_code == 200
