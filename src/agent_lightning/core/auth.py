"""Who is calling, and may they: the principal behind a request and role checks as FastAPI dependencies.

Authentication is opt-in (ALP_AUTH_ENABLED). When it is off, no authenticator is installed on the
application and every request runs as the anonymous platform admin of the default tenant (the one operator
of a local install; `alp up` refuses to listen beyond loopback that way without --insecure). When it is on,
`app.state.auth` resolves a Bearer JWT or an `X-API-Key` to a `Principal`, whose tenant becomes the
request's tenant.

Roles are ordered: platform_admin > admin > operator > viewer. The first three act within their tenant;
`platform_admin` also changes what every tenant shares (platform-wide model aliases and secrets, shared
knowledge) and is granted only by another platform admin or `alp users create --role platform_admin`.
Nobody grants a role above their own. Routers declare what they need with `by_method()` (reads need viewer,
writes need operator, or the role given) and single routes with `require(role)`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, Literal, Protocol

import jwt
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from pydantic import BaseModel
from starlette.datastructures import Headers
from starlette.types import Scope

from agent_lightning.core.errors import Forbidden, Unauthenticated
from agent_lightning.core.http import ErrorBody
from agent_lightning.core.tenancy import current_tenant, set_tenant

Role = Literal["viewer", "operator", "admin", "platform_admin"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "admin", "platform_admin")
RANK: dict[str, int] = {role: rank for rank, role in enumerate(ROLES)}
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
API_KEY_PREFIX = "alp_"
"""Every API key starts with this, so a key sent as a Bearer token (OpenAI clients do) is recognised."""
ALGORITHM = "HS256"
SERVICE_TOKEN_TTL_S = 120
SERVICE_ROLE: Role = "operator"
"""What a service calling another may do: run tasks and read, not manage accounts, agents or the policy.
A service token claiming more is refused."""


class Principal(BaseModel):
    """The caller: a user (password, then JWT), an API key, another of our services (a JWT it signed with the
    shared secret, carrying the tenant it works for), or anonymous when auth is off."""

    kind: Literal["user", "api_key", "service", "anonymous"]
    id: str
    name: str
    tenant_id: str
    role: Role


AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {401: {"model": ErrorBody}, 403: {"model": ErrorBody}}
"""The statuses every authenticated route may answer, for OpenAPI."""


class Authenticator(Protocol):
    async def authenticate(self, *, token: str | None, api_key: str | None) -> Principal:
        """The principal of a credential; raises `Unauthenticated`."""
        ...


def sign(claims: dict[str, Any], secret: str, ttl_s: float) -> str:
    """A JWT of `claims`, valid for `ttl_s` seconds."""
    now = datetime.now(UTC)
    return jwt.encode(
        {**claims, "iat": now, "exp": now + timedelta(seconds=ttl_s)}, secret, algorithm=ALGORITHM
    )


def verify(token: str, secret: str) -> dict[str, Any]:
    """The claims of a token we signed; raises `Unauthenticated` if it is expired, forged or malformed."""
    try:
        return jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]})
    except jwt.ExpiredSignatureError as exc:
        raise Unauthenticated("The access token has expired; log in again.", code="token_expired") from exc
    except jwt.InvalidTokenError as exc:
        raise Unauthenticated("The access token is invalid.") from exc


def service_credentials(secret: str, service: str) -> Callable[[], dict[str, str]]:
    """Headers for one call from this process to another of our services: a short-lived token of the
    tenant being worked for, signed with the shared secret (so no account is needed between services)."""

    def headers() -> dict[str, str]:
        claims = {
            "sub": f"service:{service}",
            "kind": "service",
            "tid": current_tenant(),
            "role": SERVICE_ROLE,
        }
        return {"Authorization": f"Bearer {sign(claims, secret, SERVICE_TOKEN_TTL_S)}"}

    return headers


# Security schemes: they read the credential and document it in OpenAPI (Swagger's "Authorize" button).
bearer_scheme = OAuth2PasswordBearer(
    tokenUrl="auth/token", auto_error=False, description="A JWT from POST /auth/token (or an API key)."
)
api_key_scheme = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="An API key from POST /auth/api-keys."
)


def has_role(principal: Principal, role: Role) -> bool:
    return RANK[principal.role] >= RANK[role]


def lower_role(a: Role, b: Role) -> Role:
    """The lesser of two roles."""
    return a if RANK[a] <= RANK[b] else b


def check_grant(principal: Principal, role: str) -> None:
    """Raise `Forbidden` unless `principal` may give `role` to an account or key (never above their own)."""
    if RANK.get(role, len(ROLES)) > RANK[principal.role]:
        raise Forbidden(
            f"You cannot grant the {role} role; you are {principal.role}.",
            code="role_above_yours",
            details={"role": role, "yours": principal.role},
        )


async def authenticate(
    request: Request,
    token: str | None = Depends(bearer_scheme),
    api_key: str | None = Depends(api_key_scheme),
) -> Principal:
    """The principal of this request, bound as its tenant. Anonymous platform admin when auth is off."""
    authenticator: Authenticator | None = getattr(request.app.state, "auth", None)
    if authenticator is None:
        return Principal(
            kind="anonymous",
            id="anonymous",
            name="anonymous",
            tenant_id=current_tenant(),
            role="platform_admin",
        )
    principal = getattr(request.state, "principal", None)  # resolved already by the rate limiter
    if principal is None:
        principal = await authenticator.authenticate(token=token, api_key=api_key)
    set_tenant(principal.tenant_id)
    request.state.principal = principal
    return principal


async def identify(scope: Scope) -> str | None:
    """The rate limiter's view of a request: the principal its credential authenticates (kept on the request
    for `authenticate`), or None without authentication or with a credential that does not authenticate."""
    authenticator: Authenticator | None = getattr(scope["app"].state, "auth", None)
    if authenticator is None:
        return None
    headers = Headers(scope=scope)
    scheme, _, token = headers.get("authorization", "").partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    api_key = headers.get("x-api-key", "")
    if not token and not api_key:
        return None
    try:
        principal = await authenticator.authenticate(token=token or None, api_key=api_key or None)
    except Exception:  # refused or not checkable now: the address counts, and the route answers the error
        return None
    scope.setdefault("state", {})["principal"] = principal
    return f"{principal.kind}:{principal.tenant_id}:{principal.id}"


def _check(principal: Principal, role: Role) -> None:
    if not has_role(principal, role):
        raise Forbidden(
            f"This needs the {role} role; you are {principal.role}.",
            details={"required": role, "role": principal.role},
        )


@cache
def require(role: Role):
    """A dependency: the caller must have at least `role`."""

    async def dependency(principal: Principal = Depends(authenticate)) -> Principal:
        _check(principal, role)
        return principal

    dependency.__name__ = f"require_{role}"
    return dependency


def read_only(endpoint):
    """Marks a POST route that only reads (a search, a preview): viewers may call it."""
    endpoint.read_only = True
    return endpoint


@cache
def by_method(write: Role = "operator"):
    """A router dependency: reads (GET, HEAD, routes marked `read_only`) need viewer, anything else
    `write`."""

    async def dependency(request: Request, principal: Principal = Depends(authenticate)) -> Principal:
        reads = request.method in READ_METHODS or getattr(request.scope.get("endpoint"), "read_only", False)
        _check(principal, "viewer" if reads else write)
        return principal

    dependency.__name__ = f"viewer_reads_{write}_writes"
    return dependency
