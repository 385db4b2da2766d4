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
    otp: str | None = Field(
        default=None, max_length=16, description="The authenticator app's code (second factor)."
    )


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (the OAuth2 token type)
    expires_in: int = Field(description="Seconds until the token expires.")
    refresh_token: str | None = Field(
        default=None, description="Single use: POST /auth/refresh for new tokens."
    )
    refresh_expires_in: int | None = None
    role: Role
    tenant_id: str


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=200)


class LoggedOut(BaseModel):
    logged_out: bool = True


class OidcStart(BaseModel):
    authorization_url: str = Field(
        description="Open it in the browser; the provider sends it back to the callback."
    )


class TotpSetup(BaseModel):
    secret: str = Field(description="Base32 seed for the authenticator app (shown once).")
    otpauth_uri: str = Field(description="The same as an otpauth:// URI (for a QR code).")


class TotpCode(BaseModel):
    code: str = Field(min_length=6, max_length=10)


class TotpDisable(BaseModel):
    password: str = Field(min_length=1, max_length=1024)
    code: str = Field(min_length=6, max_length=10)


class UserCreate(BaseModel):
    username: str = Field(min_length=1, max_length=64, pattern=USERNAME)
    password: str = Field(
        min_length=1, max_length=1024, description="ALP_AUTH_PASSWORD_MIN_LENGTH and zxcvbn strength."
    )
    role: Role = "viewer"


class UserUpdate(BaseModel):
    """Fields to change; a disabled account cannot log in, and a disable or a new password ends its
    sessions."""

    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    disabled: bool | None = None
    password: str | None = Field(default=None, min_length=1, max_length=1024)
    reset_totp: bool | None = Field(default=None, description="Turn the second factor off (a lost device).")


class PasswordChange(BaseModel):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


class User(BaseModel):
    id: str
    tenant_id: str
    username: str
    role: Role
    disabled: bool
    totp_enabled: bool = False
    oidc: bool = Field(default=False, description="Logs in through the identity provider.")
    created_at: datetime


class UserList(BaseModel):
    items: list[User]


class ApiKeyCreate(BaseModel):
    name: str = Field(
        min_length=1, max_length=120, description="What the key is for, e.g. `ci` or `prometheus`."
    )
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
