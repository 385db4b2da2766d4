"""Requests and answers of /auth."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agent_lightning.core.auth import Role

USERNAME = r"^[A-Za-z0-9_.@-]+$"


class LoginRequest(BaseModel):
    """The OAuth2 password form's fields (or the same as JSON). `tenant` defaults to ALP_TENANT_ID."""

    model_config = ConfigDict(extra="ignore")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    tenant: str | None = Field(default=None, min_length=1, max_length=64)


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the token expires.")
    role: Role
    tenant_id: str


class UserCreate(BaseModel):
    username: str = Field(min_length=1, max_length=64, pattern=USERNAME)
    password: str = Field(min_length=8, max_length=1024)
    role: Role = "viewer"


class UserUpdate(BaseModel):
    """Fields to change; a disabled account cannot log in and its tokens stop working at once."""

    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    disabled: bool | None = None
    password: str | None = Field(default=None, min_length=8, max_length=1024)


class PasswordChange(BaseModel):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=8, max_length=1024)


class User(BaseModel):
    id: str
    tenant_id: str
    username: str
    role: Role
    disabled: bool
    created_at: datetime


class UserList(BaseModel):
    items: list[User]


class ApiKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=120, description="What the key is for, e.g. `ci` or `prometheus`.")
    role: Role = "viewer"


class ApiKey(BaseModel):
    id: str
    tenant_id: str
    name: str
    user_id: str | None = Field(description="The admin who created it.")
    role: Role
    prefix: str = Field(description="The key's first characters, to recognise it.")
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKey):
    key: str = Field(description="The key itself: shown once, never stored.")


class ApiKeyList(BaseModel):
    items: list[ApiKey]
