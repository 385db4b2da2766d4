"""HTTP routes of authentication: log in, who am I, and (admins) users and API keys."""

from __future__ import annotations

from json import JSONDecodeError

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError
from fastapi.exceptions import RequestValidationError

from agent_lightning.auth.schemas import (
    ApiKey,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    LoginRequest,
    PasswordChange,
    TokenResponse,
    User,
    UserCreate,
    UserList,
    UserUpdate,
)
from agent_lightning.auth.service import AuthService
from agent_lightning.core.auth import AUTH_RESPONSES, Principal, authenticate, require
from agent_lightning.core.errors import AppError
from agent_lightning.core.http import ERROR_RESPONSES

_LOGIN_SCHEMA = LoginRequest.model_json_schema()
_LOGIN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {"schema": _LOGIN_SCHEMA},
            "application/json": {"schema": _LOGIN_SCHEMA},
        },
    }
}


async def _login_request(request: Request) -> LoginRequest:
    """The OAuth2 password form, or the same fields as JSON."""
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            data = await request.json()
        except (JSONDecodeError, UnicodeDecodeError) as exc:
            raise AppError("The request body is not valid JSON.", code="malformed_json") from exc
    else:
        data = dict(await request.form())
    if not isinstance(data, dict):
        raise AppError("Send an object with username and password.")
    try:
        return LoginRequest.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from exc


def router(auth: AuthService) -> APIRouter:
    api = APIRouter(prefix="/auth", tags=["auth"], responses={**ERROR_RESPONSES, **AUTH_RESPONSES})
    admin = [Depends(require("admin"))]

    @api.post("/token", response_model=TokenResponse, openapi_extra=_LOGIN_BODY,
              summary="Log in with username and password (OAuth2 password form or JSON); get an access token")
    async def token(request: Request) -> TokenResponse:
        login = await _login_request(request)
        return await auth.login(login.username, login.password, login.tenant)

    @api.get("/me", response_model=Principal, summary="Who the credential belongs to: user or key, tenant, role")
    async def me(principal: Principal = Depends(authenticate)) -> Principal:
        return principal

    @api.post("/password", response_model=User, summary="Change your own password (the current one is checked)")
    async def change_password(body: PasswordChange, principal: Principal = Depends(authenticate)) -> User:
        return await auth.change_password(principal, body.current_password, body.new_password)

    @api.post("/users", response_model=User, status_code=201, dependencies=admin,
              summary="Create a user in your tenant (admin)")
    async def create_user(body: UserCreate) -> User:
        return await auth.create_user(body.username, body.password, body.role)

    @api.get("/users", response_model=UserList, dependencies=admin, summary="Your tenant's users (admin)")
    async def list_users() -> UserList:
        return UserList(items=await auth.list_users())

    @api.patch("/users/{user_id}", response_model=User, dependencies=admin,
               summary="Change a user's role, password or disabled flag (admin)")
    async def update_user(user_id: str, body: UserUpdate) -> User:
        return await auth.update_user(user_id, **body.model_dump(exclude_unset=True))

    @api.get("/api-keys", response_model=ApiKeyList, dependencies=admin, summary="Your tenant's API keys (admin)")
    async def list_keys() -> ApiKeyList:
        return ApiKeyList(items=await auth.list_keys())

    @api.post("/api-keys", response_model=ApiKeyCreated, status_code=201,
              summary="Create an API key (admin); the key is returned once")
    async def create_key(body: ApiKeyCreate, principal: Principal = Depends(require("admin"))) -> ApiKeyCreated:
        return await auth.create_key(body.name, body.role, principal)

    @api.delete("/api-keys/{key_id}", response_model=ApiKey, dependencies=admin, summary="Revoke an API key (admin)")
    async def revoke_key(key_id: str) -> ApiKey:
        return await auth.revoke_key(key_id)

    return api
