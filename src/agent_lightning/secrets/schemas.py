"""Wire contract of the secrets store and the interface other services use to read a secret.

A secret is written once through the API and never read back through it: answers carry names and dates
only. Other services read values in-process through `SecretResolver`, always naming the scope of the object
that references the secret: a tenant's object uses that tenant's secrets, a platform-wide object the
platform's (`core.tenancy.PLATFORM`). A tenant's object never reads a platform secret, so no tenant can send
the operator's credential to an endpoint of its choosing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol

from pydantic import BaseModel, Field, SecretStr

SECRET_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,119}$"  # noqa: S105 (a pattern of names)
Scope = Literal["tenant", "platform"]


class SecretPut(BaseModel):
    value: SecretStr = Field(min_length=1, max_length=16384, description="Stored encrypted; never returned.")
    scope: Scope = Field(
        default="tenant", description="platform: usable by platform-wide objects (platform admin)."
    )


class SecretInfo(BaseModel):
    name: str
    scope: Scope
    updated_by: str = Field(description="Who stored the current value.")
    created_at: datetime
    updated_at: datetime


class SecretList(BaseModel):
    items: list[SecretInfo]


class SecretResolver(Protocol):
    """How a service reads a secret that an object of `tenant_id` references by name."""

    async def reveal(self, name: str, *, tenant_id: str) -> str:
        """The value of secret `name` of `tenant_id` (or `PLATFORM`); raises `NotFound`
        (`secret_not_found`)."""
        ...
