"""HTTP routes of authentication: log in, who am I, and (admins) users and API keys."""

from __future__ import annotations

from json import JSONDecodeError

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from agent_lightning.auth.schemas import (
    ApiKey,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    LoggedOut,
    LoginRequest,
    OidcStart,
    PasswordChange,
    RefreshRequest,
    TokenResponse,
    TotpCode,
    TotpDisable,
    TotpSetup,
    User,
    UserCreate,
    UserList,
    UserUpdate,
)
from agent_lightning.auth.service import AuthService
from agent_lightning.core.auth import AUTH_RESPONSES, Principal, authenticate, require
from agent_lightning.core.errors import AppError, Unauthenticated
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


OIDC_COOKIE = "alp_oidc"


def _client(request: Request) -> str:
    """The caller's address: failed logins lock (account, address) pairs."""
    return request.client.host if request.client else "unknown"


def router(auth: AuthService) -> APIRouter:
    api = APIRouter(prefix="/auth", tags=["auth"], responses={**ERROR_RESPONSES, **AUTH_RESPONSES})
    admin = require("admin")

    @api.post(
        "/token",
        response_model=TokenResponse,
        openapi_extra=_LOGIN_BODY,
        summary="Log in with username and password (and `otp`); get access and refresh tokens",
    )
    async def token(request: Request) -> TokenResponse:
        login = await _login_request(request)
        return await auth.login(
            login.username, login.password, login.tenant, client=_client(request), otp=login.otp
        )

    @api.post(
        "/refresh",
        response_model=TokenResponse,
        summary="New access and refresh tokens for a refresh token (which is used up)",
    )
    async def refresh(body: RefreshRequest) -> TokenResponse:
        return await auth.refresh(body.refresh_token)

    @api.post("/logout", response_model=LoggedOut, summary="End a login: its refresh tokens stop working")
    async def logout(body: RefreshRequest) -> LoggedOut:
        await auth.logout(body.refresh_token)
        return LoggedOut()

    @api.get(
        "/me", response_model=Principal, summary="Who the credential belongs to: user or key, tenant, role"
    )
    async def me(principal: Principal = Depends(authenticate)) -> Principal:
        return principal

    @api.post(
        "/password",
        response_model=User,
        summary="Change your own password (the current one is checked); every session ends",
    )
    async def change_password(
        body: PasswordChange, request: Request, principal: Principal = Depends(authenticate)
    ) -> User:
        return await auth.change_password(
            principal, body.current_password, body.new_password, client=_client(request)
        )

    @api.post("/totp/setup", response_model=TotpSetup, summary="Start a second factor: a secret for your app")
    async def totp_setup(principal: Principal = Depends(authenticate)) -> TotpSetup:
        return await auth.totp_setup(principal)

    @api.post(
        "/totp/enable", response_model=User, summary="Confirm the second factor with a code from the app"
    )
    async def totp_enable(body: TotpCode, principal: Principal = Depends(authenticate)) -> User:
        return await auth.totp_enable(principal, body.code)

    @api.post("/totp/disable", response_model=User, summary="Turn your second factor off (password and code)")
    async def totp_disable(
        body: TotpDisable, request: Request, principal: Principal = Depends(authenticate)
    ) -> User:
        return await auth.totp_disable(principal, body.password, body.code, client=_client(request))

    @api.get(
        "/oidc/login",
        response_model=OidcStart,
        summary="Start a login at the identity provider: open authorization_url in the browser",
    )
    async def oidc_login(response: Response) -> OidcStart:
        started = await auth.oidc_start()
        response.set_cookie(
            OIDC_COOKIE,
            started.flow,
            max_age=600,
            httponly=True,
            samesite="lax",
            path="/auth/oidc",
            secure=(auth.settings.oidc_redirect_uri or "").startswith("https:"),
        )
        return OidcStart(authorization_url=started.url)

    @api.get(
        "/oidc/callback",
        response_model=TokenResponse,
        summary="Where the identity provider sends the browser back; answers access and refresh tokens",
    )
    async def oidc_callback(
        request: Request,
        response: Response,
        code: str | None = Query(None, max_length=2000),
        state: str = Query("", max_length=500),
        error: str | None = Query(None, max_length=200),
    ) -> TokenResponse:
        if error or not code:
            raise Unauthenticated(
                f"The identity provider did not log you in ({error or 'no code'}).", code="oidc_denied"
            )
        tokens = await auth.oidc_finish(code=code, state=state, flow=request.cookies.get(OIDC_COOKIE))
        response.delete_cookie(OIDC_COOKIE, path="/auth/oidc")
        return tokens

    @api.post(
        "/users",
        response_model=User,
        status_code=201,
        summary="Create a user in your tenant (admin; never above your own role)",
    )
    async def create_user(body: UserCreate, principal: Principal = Depends(admin)) -> User:
        return await auth.create_user(body.username, body.password, body.role, by=principal)

    @api.get(
        "/users",
        response_model=UserList,
        dependencies=[Depends(admin)],
        summary="Your tenant's users (admin)",
    )
    async def list_users() -> UserList:
        return UserList(items=await auth.list_users())

    @api.patch(
        "/users/{user_id}",
        response_model=User,
        summary="Change a user's role, password, disabled flag or second factor (admin)",
    )
    async def update_user(user_id: str, body: UserUpdate, principal: Principal = Depends(admin)) -> User:
        return await auth.update_user(user_id, by=principal, **body.model_dump(exclude_unset=True))

    @api.get(
        "/api-keys",
        response_model=ApiKeyList,
        dependencies=[Depends(admin)],
        summary="Your tenant's API keys (admin)",
    )
    async def list_keys() -> ApiKeyList:
        return ApiKeyList(items=await auth.list_keys())

    @api.post(
        "/api-keys",
        response_model=ApiKeyCreated,
        status_code=201,
        summary="Create an API key (admin; never above your role); the key is returned once",
    )
    async def create_key(body: ApiKeyCreate, principal: Principal = Depends(admin)) -> ApiKeyCreated:
        return await auth.create_key(body.name, body.role, principal)

    @api.delete(
        "/api-keys/{key_id}",
        response_model=ApiKey,
        dependencies=[Depends(admin)],
        summary="Revoke an API key (admin)",
    )
    async def revoke_key(key_id: str) -> ApiKey:
        return await auth.revoke_key(key_id)

    return api
