"""Users, passwords, access tokens and API keys; resolves a credential to a `Principal`."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from agent_lightning.auth.schemas import ApiKey, ApiKeyCreated, TokenResponse, User
from agent_lightning.auth.tables import ApiKeyRow, UserRow
from agent_lightning.core.auth import API_KEY_PREFIX, ROLES, Principal, Role, sign, verify
from agent_lightning.core.config import Settings
from agent_lightning.core.db import Database, utcnow
from agent_lightning.core.errors import Conflict, Forbidden, Invalid, NotFound, Unauthenticated
from agent_lightning.core.events import Event, EventBus
from agent_lightning.core.logging import get_logger
from agent_lightning.core.tenancy import current_tenant

log = get_logger(__name__)

MIN_SECRET_CHARS = 32
_hasher = PasswordHasher()


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _user(row: UserRow) -> User:
    return User(id=row.id, tenant_id=row.tenant_id, username=row.username, role=row.role,
                disabled=row.disabled, created_at=row.created_at)


def _key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(id=row.id, tenant_id=row.tenant_id, name=row.name, user_id=row.user_id, role=row.role,
                  prefix=row.prefix, created_at=row.created_at, revoked_at=row.revoked_at)


class AuthService:
    """Accounts in the database. `secret` signs tokens; without it only accounts can be managed (the CLI).
    With a bus, every login, lockout and change of an account or key is published as an `auth.*` event
    of the account's tenant (never with a password or key)."""

    def __init__(self, db: Database, settings: Settings, bus: EventBus | None = None) -> None:
        self.db = db
        self.settings = settings
        self.bus = bus
        self._secret = settings.auth_secret.get_secret_value() if settings.auth_secret else None
        self._dummy_hash: str | None = None

    @staticmethod
    def check_settings(settings: Settings) -> None:
        """Refuse to serve with auth on but no usable signing secret."""
        secret = settings.auth_secret.get_secret_value() if settings.auth_secret else ""
        if len(secret) < MIN_SECRET_CHARS:
            raise ValueError(
                f"ALP_AUTH_ENABLED=true needs ALP_AUTH_SECRET, a random secret of at least {MIN_SECRET_CHARS} "
                "characters that signs access tokens (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)."
            )

    async def _emit(self, type_: str, tenant_id: str, **data: object) -> None:
        if self.bus is not None:
            await self.bus.publish(Event(type=type_, source="auth", tenant_id=tenant_id, data=data))

    # -- users -------------------------------------------------------------------------------------------

    async def create_user(self, username: str, password: str, role: Role, tenant_id: str | None = None) -> User:
        if role not in ROLES:
            raise Invalid(f"Unknown role {role!r}; one of {', '.join(ROLES)}.")
        password_hash = await asyncio.to_thread(_hasher.hash, password)
        row = UserRow(tenant_id=tenant_id or current_tenant(), username=username, password_hash=password_hash,
                      role=role, disabled=False, failed_logins=0)
        try:
            async with self.db.session() as session:
                session.add(row)
        except IntegrityError as exc:
            raise Conflict(f"User {username!r} already exists in tenant {row.tenant_id!r}.") from exc
        log.info("user_created", user_id=row.id, tenant_id=row.tenant_id, role=role)
        await self._emit("auth.user_created", row.tenant_id, user_id=row.id, username=username, role=role)
        return _user(row)

    async def list_users(self) -> list[User]:
        async with self.db.session() as session:
            rows = (await session.execute(
                select(UserRow).where(UserRow.tenant_id == current_tenant()).order_by(UserRow.created_at)
            )).scalars()
            return [_user(row) for row in rows]

    async def update_user(self, user_id: str, *, role: Role | None = None, disabled: bool | None = None,
                          password: str | None = None) -> User:
        password_hash = await asyncio.to_thread(_hasher.hash, password) if password is not None else None
        async with self.db.session() as session:
            row = await session.get(UserRow, user_id)
            if row is None or row.tenant_id != current_tenant():
                raise NotFound(f"No user {user_id!r}.")
            if role is not None:
                row.role = role
            if disabled is not None:
                row.disabled = disabled
            if password_hash is not None:
                row.password_hash = password_hash
                row.failed_logins, row.locked_until = 0, None
            log.info("user_updated", user_id=row.id, tenant_id=row.tenant_id, role=row.role, disabled=row.disabled)
            user = _user(row)
        await self._emit("auth.user_updated", user.tenant_id, user_id=user.id, username=user.username, role=user.role,
                         disabled=user.disabled, password_changed=password is not None)
        return user

    async def change_password(self, principal: Principal, current: str, new: str) -> User:
        """A user's own password, after checking the current one (which counts towards the lockout)."""
        if principal.kind != "user":
            raise Forbidden("Only a user logged in with a password has one to change.", code="not_a_user")
        async with self.db.session() as session:
            row = await session.get(UserRow, principal.id)
        if row is None or not await asyncio.to_thread(self._verify, row.password_hash, current):
            if row is not None:
                await self._failed(row)
            raise Forbidden("The current password is wrong.", code="wrong_password")
        return await self.update_user(row.id, password=new)

    async def login(self, username: str, password: str, tenant_id: str | None = None) -> TokenResponse:
        """An access token for a right password; counts failures and locks the account after too many."""
        tenant = tenant_id or self.settings.tenant_id
        async with self.db.session() as session:
            row = (await session.execute(
                select(UserRow).where(UserRow.tenant_id == tenant, UserRow.username == username)
            )).scalar_one_or_none()
        if row is None:
            await asyncio.to_thread(self._verify, self._dummy(), password)  # same cost as a known user
            await self._emit("auth.login_failed", tenant, username=username, reason="unknown_user")
            raise Unauthenticated("Wrong username or password.")
        now = utcnow()
        if row.locked_until is not None and row.locked_until > now:
            retry = int((row.locked_until - now).total_seconds()) + 1
            await self._emit("auth.login_failed", tenant, username=username, user_id=row.id, reason="locked")
            raise Unauthenticated("Too many failed logins: the account is locked for now.",
                                  code="account_locked", details={"retry_after_s": retry})
        if row.disabled or not await asyncio.to_thread(self._verify, row.password_hash, password):
            await self._emit("auth.login_failed", tenant, username=username, user_id=row.id,
                             reason="disabled" if row.disabled else "wrong_password")
            await self._failed(row)
            raise Unauthenticated("Wrong username or password.")
        async with self.db.session() as session:
            await session.execute(
                update(UserRow).where(UserRow.id == row.id).values(failed_logins=0, locked_until=None)
            )
        await self._emit("auth.login_succeeded", tenant, username=username, user_id=row.id)
        return self.issue_token(row)

    async def _failed(self, row: UserRow) -> None:
        locked = False
        async with self.db.session() as session:
            await session.execute(
                update(UserRow).where(UserRow.id == row.id).values(failed_logins=UserRow.failed_logins + 1)
            )
            failures = (await session.execute(select(UserRow.failed_logins).where(UserRow.id == row.id))).scalar_one()
            if failures >= self.settings.auth_lockout_attempts:
                until = utcnow() + timedelta(seconds=self.settings.auth_lockout_s)
                await session.execute(
                    update(UserRow).where(UserRow.id == row.id).values(failed_logins=0, locked_until=until)
                )
                log.warning("account_locked", user_id=row.id, tenant_id=row.tenant_id, failures=failures)
                locked = True
        if locked:
            await self._emit("auth.account_locked", row.tenant_id, user_id=row.id, username=row.username,
                             locked_s=self.settings.auth_lockout_s)

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = _hasher.hash(secrets.token_urlsafe(16))
        return self._dummy_hash

    @staticmethod
    def _verify(password_hash: str, password: str) -> bool:
        try:
            return _hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    # -- tokens ------------------------------------------------------------------------------------------

    def issue_token(self, row: UserRow) -> TokenResponse:
        if not self._secret:
            raise ValueError("ALP_AUTH_SECRET is not set: tokens cannot be signed.")
        ttl = int(self.settings.auth_token_ttl_s)
        claims = {"sub": row.id, "kind": "user", "tid": row.tenant_id, "role": row.role, "name": row.username}
        token = sign(claims, self._secret, ttl)
        return TokenResponse(access_token=token, expires_in=ttl, role=row.role, tenant_id=row.tenant_id)

    async def authenticate(self, *, token: str | None, api_key: str | None) -> Principal:
        if api_key:
            return await self._from_key(api_key)
        if token and token.startswith(API_KEY_PREFIX):  # an API key as a Bearer token (OpenAI clients)
            return await self._from_key(token)
        if token:
            return await self._from_token(token)
        raise Unauthenticated("Send `Authorization: Bearer <token>` (from POST /auth/token) or `X-API-Key: <key>`.")

    async def _from_token(self, token: str) -> Principal:
        if not self._secret:
            raise Unauthenticated("The access token is invalid.")
        claims = verify(token, self._secret)
        if claims.get("kind") == "service":  # another of our processes, working for the tenant it names
            if claims.get("role") not in ROLES or not isinstance(claims.get("tid"), str):
                raise Unauthenticated("The access token is invalid.")
            return Principal(kind="service", id=claims["sub"], name=claims["sub"], tenant_id=claims["tid"],
                             role=claims["role"])
        async with self.db.session() as session:
            row = await session.get(UserRow, claims["sub"])
        if row is None or row.disabled:  # deleted or disabled since the token was issued
            raise Unauthenticated("The account of this token no longer exists or is disabled.")
        return Principal(kind="user", id=row.id, name=row.username, tenant_id=row.tenant_id, role=row.role)

    # -- API keys ----------------------------------------------------------------------------------------

    async def create_key(self, name: str, role: Role, owner: Principal) -> ApiKeyCreated:
        key = API_KEY_PREFIX + secrets.token_urlsafe(32)
        row = ApiKeyRow(tenant_id=owner.tenant_id, name=name, user_id=owner.id if owner.kind == "user" else None,
                        role=role, key_hash=hash_key(key), prefix=key[:12])
        async with self.db.session() as session:
            session.add(row)
        log.info("api_key_created", key_id=row.id, tenant_id=row.tenant_id, role=role)
        await self._emit("auth.api_key_created", row.tenant_id, key_id=row.id, name=name, role=role, by=owner.id)
        return ApiKeyCreated(**_key(row).model_dump(), key=key)

    async def list_keys(self) -> list[ApiKey]:
        async with self.db.session() as session:
            rows = (await session.execute(
                select(ApiKeyRow).where(ApiKeyRow.tenant_id == current_tenant()).order_by(ApiKeyRow.created_at)
            )).scalars()
            return [_key(row) for row in rows]

    async def revoke_key(self, key_id: str) -> ApiKey:
        async with self.db.session() as session:
            row = await session.get(ApiKeyRow, key_id)
            if row is None or row.tenant_id != current_tenant():
                raise NotFound(f"No API key {key_id!r}.")
            newly = row.revoked_at is None
            if newly:
                row.revoked_at = utcnow()
                log.info("api_key_revoked", key_id=row.id, tenant_id=row.tenant_id)
            key = _key(row)
        if newly:
            await self._emit("auth.api_key_revoked", key.tenant_id, key_id=key.id, name=key.name)
        return key

    async def _from_key(self, key: str) -> Principal:
        async with self.db.session() as session:
            row = (await session.execute(
                select(ApiKeyRow).where(ApiKeyRow.key_hash == hash_key(key))
            )).scalar_one_or_none()
        if row is None or row.revoked_at is not None:
            raise Unauthenticated("The API key is invalid or revoked.")
        return Principal(kind="api_key", id=row.id, name=row.name, tenant_id=row.tenant_id, role=row.role)
