"""HTTP routes of the secrets store: write-only values, listed by name (admins; platform scope: platform
admins)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query

from agent_lightning.core.auth import Principal, has_role, require
from agent_lightning.core.errors import Forbidden
from agent_lightning.core.http import ERROR_RESPONSES
from agent_lightning.core.tenancy import PLATFORM
from agent_lightning.secrets.schemas import SECRET_NAME, Scope, SecretInfo, SecretList, SecretPut
from agent_lightning.secrets.service import SecretStore


def scope_owner(principal: Principal, scope: Scope) -> str:
    """The tenant whose secrets `scope` means for this caller; platform scope needs the platform role."""
    if scope == "platform":
        if not has_role(principal, "platform_admin"):
            raise Forbidden(
                "Platform-wide secrets need the platform_admin role.",
                details={"required": "platform_admin", "role": principal.role},
            )
        return PLATFORM
    return principal.tenant_id


def router(store: SecretStore) -> APIRouter:
    api = APIRouter(prefix="/secrets", tags=["secrets"], responses=ERROR_RESPONSES)
    name_path = Path(pattern=SECRET_NAME, description="Letters, digits, `_`, `.`, `-`.")

    @api.get(
        "", response_model=SecretList, summary="Names of your tenant's secrets, or the platform's (no values)"
    )
    async def list_secrets(
        scope: Scope = Query("tenant"), principal: Principal = Depends(require("admin"))
    ) -> SecretList:
        return SecretList(items=await store.list(tenant_id=scope_owner(principal, scope)))

    @api.put("/{name}", response_model=SecretInfo, summary="Store or replace a secret (write-only; admin)")
    async def put_secret(
        body: SecretPut, name: str = name_path, principal: Principal = Depends(require("admin"))
    ) -> SecretInfo:
        owner = scope_owner(principal, body.scope)
        return await store.put(name, body.value.get_secret_value(), tenant_id=owner, by=principal.name)

    @api.delete(
        "/{name}", response_model=SecretInfo, summary="Delete a secret (admin); returns what was deleted"
    )
    async def delete_secret(
        name: str = name_path,
        scope: Scope = Query("tenant"),
        principal: Principal = Depends(require("admin")),
    ) -> SecretInfo:
        return await store.delete(name, tenant_id=scope_owner(principal, scope))

    return api
