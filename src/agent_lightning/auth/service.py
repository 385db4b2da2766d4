"""Users, passwords, sessions (access and refresh tokens), second factor, OIDC login and API keys; resolves a
credential to a `Principal`.

Lifecycle rules: a password change or a disable raises the account's token version, which every access and
refresh token carries, so every session ends at once; an API key acts with the lesser of its own role and its
creator's current role, and stops working when its creator is disabled or deleted; nobody grants a role above
their own; failed logins lock one (account, client address) pair with backoff (auth/lockout.py)."""

from __future__ import annotations

import hashlib
import re
import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from agent_lightning.auth import passwords, totp
from agent_lightning.auth.lockout import LoginThrottle
from agent_lightning.auth.oidc import OIDCLogin, Started
from agent_lightning.auth.refresh import RefreshTokens
from agent_lightning.auth.schemas import ApiKey, ApiKeyCreated, TokenResponse, TotpSetup, User
from agent_lightning.auth.tables import ApiKeyRow, UserRow
from agent_lightning.core.auth import (
    API_KEY_PREFIX,
    RANK,
    ROLES,
    SERVICE_ROLE,
    Principal,
    Role,
    check_grant,
    lower_role,
    sign,
    verify,
)
from agent_lightning.core.config import Settings
from agent_lightning.core.crypto import SecretCipher, cipher_from_settings
from agent_lightning.core.db import Database, utcnow
from agent_lightning.core.errors import Conflict, Forbidden, Invalid, NotFound, Unauthenticated
from agent_lightning.core.events import Event, EventBus
from agent_lightning.core.logging import get_logger
from agent_lightning.core.tenancy import (
    TENANT_PATTERN,
    all_tenants,
    current_tenant,
    tenant_get,
    tenant_is,
    tenant_select,
)

log = get_logger(__name__)

MIN_SECRET_CHARS = 32
OIDC_USERNAME = re.compile(r"[^A-Za-z0-9_.@-]")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _user(row: UserRow) -> User:
    return User(
        id=row.id,
        tenant_id=row.tenant_id,
        username=row.username,
        role=row.role,
        disabled=row.disabled,
        totp_enabled=bool(row.totp_enabled),
        oidc=row.oidc_subject is not None,
        created_at=row.created_at,
    )


def _key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        user_id=row.user_id,
        role=row.role,
        prefix=row.prefix,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


class AuthService:
    """Accounts in the database. `secret` signs tokens; without it only accounts can be managed (the CLI).
    With a bus, every login, lockout and change of an account or key is published as an `auth.*` event
    of the account's tenant (never with a password or key)."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        bus: EventBus | None = None,
        cipher: SecretCipher | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.bus = bus
        self.cipher = cipher or cipher_from_settings(settings)
        self._secret = settings.auth_secret.get_secret_value() if settings.auth_secret else None
        self._dummy_hash: str | None = None
        self.throttle = LoginThrottle(
            db,
            attempts=settings.auth_lockout_attempts,
            base_s=settings.auth_lockout_base_s,
            max_s=settings.auth_lockout_s,
        )
        self.refresh_tokens = RefreshTokens(db, settings.auth_refresh_ttl_s)
        self.oidc = (
            OIDCLogin(settings, self._secret) if self._secret and OIDCLogin.configured(settings) else None
        )

    @staticmethod
    def check_settings(settings: Settings) -> None:
        """Refuse to serve with auth on but no usable signing secret, or a half-configured OIDC provider."""
        secret = settings.auth_secret.get_secret_value() if settings.auth_secret else ""
        if len(secret) < MIN_SECRET_CHARS:
            raise ValueError(
                "ALP_AUTH_ENABLED=true needs ALP_AUTH_SECRET, a random secret of at least "
                f"{MIN_SECRET_CHARS} characters that signs access tokens (e.g. `python -c 'import secrets; "
                "print(secrets.token_urlsafe(48))'`)."
            )
        if settings.oidc_issuer and not OIDCLogin.configured(settings):
            raise ValueError("ALP_OIDC_ISSUER needs ALP_OIDC_CLIENT_ID and ALP_OIDC_REDIRECT_URI as well.")

    async def _emit(self, type_: str, tenant_id: str, **data: object) -> None:
        if self.bus is not None:
            await self.bus.publish(Event(type=type_, source="auth", tenant_id=tenant_id, data=data))

    # -- users -------------------------------------------------------------------------------------------

    async def create_user(
        self,
        username: str,
        password: str,
        role: Role,
        tenant_id: str | None = None,
        *,
        by: Principal | None = None,
    ) -> User:
        """A new account; `by` (the admin creating it) cannot grant more than their own role."""
        tenant = tenant_id or current_tenant()
        if role not in ROLES:
            raise Invalid(f"Unknown role {role!r}; one of {', '.join(ROLES)}.")
        if not re.match(TENANT_PATTERN, tenant):
            raise Invalid(
                f"Invalid tenant {tenant!r}: letters, digits, `_.@-`, starting with a letter or digit.",
                code="invalid_tenant",
            )
        if by is not None:
            check_grant(by, role)
        await self._check_password(password, username, tenant)
        return await self._add_user(
            UserRow(
                tenant_id=tenant,
                username=username,
                role=role,
                disabled=False,
                failed_logins=0,
                password_hash=await passwords.hash_password(password),
            )
        )

    async def _add_user(self, row: UserRow) -> User:
        try:
            async with self.db.session() as session:
                session.add(row)
        except IntegrityError as exc:
            raise Conflict(f"User {row.username!r} already exists in tenant {row.tenant_id!r}.") from exc
        log.info("user_created", user_id=row.id, tenant_id=row.tenant_id, role=row.role)
        await self._emit(
            "auth.user_created", row.tenant_id, user_id=row.id, username=row.username, role=row.role
        )
        return _user(row)

    async def _check_password(self, password: str, username: str, tenant: str) -> None:
        s = self.settings
        await passwords.check_policy(
            password,
            min_length=s.auth_password_min_length,
            min_score=s.auth_password_min_score,
            user_inputs=[username, tenant],
        )

    async def list_users(self) -> list[User]:
        async with self.db.session() as session:
            rows = (
                await session.execute(select(UserRow).where(tenant_is(UserRow)).order_by(UserRow.created_at))
            ).scalars()
            return [_user(row) for row in rows]

    async def update_user(
        self,
        user_id: str,
        *,
        by: Principal | None = None,
        role: Role | None = None,
        disabled: bool | None = None,
        password: str | None = None,
        reset_totp: bool | None = None,
    ) -> User:
        """Change an account of the current tenant. A new password or a disable ends the account's
        sessions."""
        async with self.db.session() as session:
            row = await tenant_get(session, UserRow, user_id)
        if row is None:
            raise NotFound(f"No user {user_id!r}.")
        if by is not None:
            if RANK[row.role] > RANK[by.role]:
                raise Forbidden(f"This account is a {row.role}; you are {by.role}.", code="role_above_yours")
            if role is not None:
                check_grant(by, role)
        password_hash = None
        if password is not None:
            await self._check_password(password, row.username, row.tenant_id)
            password_hash = await passwords.hash_password(password)
        async with self.db.session() as session:
            row = await tenant_get(session, UserRow, user_id)
            if role is not None:
                row.role = role
            if disabled is not None:
                if disabled and not row.disabled:
                    row.token_version += 1
                row.disabled = disabled
            if password_hash is not None:
                row.password_hash = password_hash
                row.token_version += 1
            if reset_totp:
                row.totp_secret_enc, row.totp_enabled, row.totp_last_step = None, False, None
            log.info(
                "user_updated", user_id=row.id, tenant_id=row.tenant_id, role=row.role, disabled=row.disabled
            )
            user = _user(row)
        await self._emit(
            "auth.user_updated",
            user.tenant_id,
            user_id=user.id,
            username=user.username,
            role=user.role,
            disabled=user.disabled,
            password_changed=password is not None,
        )
        return user

    async def change_password(self, principal: Principal, current: str, new: str, *, client: str) -> User:
        """A user's own password, after checking the current one (a wrong one counts towards the lockout).
        Every session of the account ends, this one included: log in again."""
        row = await self._own_account(principal)
        if not await self._password_ok(row, current, client):
            raise Forbidden("The current password is wrong.", code="wrong_password")
        return await self.update_user(row.id, password=new)

    async def _own_account(self, principal: Principal) -> UserRow:
        if principal.kind != "user":
            raise Forbidden("Only a user logged in as themself can do this.", code="not_a_user")
        async with self.db.session() as session:
            row = await tenant_get(session, UserRow, principal.id, tenant=principal.tenant_id)
        if row is None:
            raise Unauthenticated("The account of this token no longer exists.")
        return row

    # -- logins ------------------------------------------------------------------------------------------

    async def login(
        self,
        username: str,
        password: str,
        tenant_id: str | None = None,
        *,
        client: str,
        otp: str | None = None,
    ) -> TokenResponse:
        """Access and refresh tokens for a right password (and code, with a second factor)."""
        tenant = tenant_id or self.settings.tenant_id
        retry = await self.throttle.retry_after(tenant, username, client)
        if retry is not None:
            await self._emit("auth.login_failed", tenant, username=username, reason="locked")
            raise Unauthenticated(
                "Too many failed logins from here: try again later.",
                code="account_locked",
                details={"retry_after_s": int(retry) + 1},
            )
        async with self.db.session() as session:
            row = (
                await session.execute(
                    select(UserRow).where(tenant_is(UserRow, tenant), UserRow.username == username)
                )
            ).scalar_one_or_none()
        if row is None:
            await passwords.verify(await self._dummy(), password)  # same cost as a known user
            await self._failed(tenant, username, client, reason="unknown_user")
            raise Unauthenticated("Wrong username or password.")
        if row.disabled or not await passwords.verify(row.password_hash, password):
            await self._failed(
                tenant,
                username,
                client,
                reason="disabled" if row.disabled else "wrong_password",
                user_id=row.id,
            )
            raise Unauthenticated("Wrong username or password.")
        if row.totp_enabled:
            if not otp:
                raise Unauthenticated(
                    "This account has a second factor: send the code from the authenticator app as `otp`.",
                    code="otp_required",
                )
            if not await self._use_otp(row, otp):
                await self._failed(tenant, username, client, reason="wrong_otp", user_id=row.id)
                raise Unauthenticated("The one-time code is wrong or was used already.", code="otp_invalid")
        await self.throttle.succeeded(tenant, username, client)
        await self._emit("auth.login_succeeded", tenant, username=username, user_id=row.id)
        return await self._session(row)

    async def _password_ok(self, row: UserRow, password: str, client: str) -> bool:
        retry = await self.throttle.retry_after(row.tenant_id, row.username, client)
        if retry is not None:
            raise Unauthenticated(
                "Too many failed attempts from here: try again later.",
                code="account_locked",
                details={"retry_after_s": int(retry) + 1},
            )
        if await passwords.verify(row.password_hash, password):
            return True
        await self._failed(row.tenant_id, row.username, client, reason="wrong_password", user_id=row.id)
        return False

    async def _failed(
        self, tenant: str, username: str, client: str, *, reason: str, user_id: str | None = None
    ) -> None:
        await self._emit("auth.login_failed", tenant, username=username, user_id=user_id, reason=reason)
        locked_s = await self.throttle.failed(tenant, username, client)
        if locked_s:
            log.warning(
                "account_locked", tenant_id=tenant, username=username, client=client, seconds=locked_s
            )
            await self._emit(
                "auth.account_locked", tenant, user_id=user_id, username=username, locked_s=locked_s
            )

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await passwords.hash_password(secrets.token_urlsafe(16))
        return self._dummy_hash

    # -- sessions: access and refresh tokens -------------------------------------------------------------

    def access_token(self, row: UserRow) -> str:
        if not self._secret:
            raise ValueError("ALP_AUTH_SECRET is not set: tokens cannot be signed.")
        claims = {
            "sub": row.id,
            "kind": "user",
            "tid": row.tenant_id,
            "role": row.role,
            "name": row.username,
            "ver": row.token_version,
        }
        return sign(claims, self._secret, self.settings.auth_token_ttl_s)

    async def _session(self, row: UserRow, family_id: str | None = None) -> TokenResponse:
        refresh = await self.refresh_tokens.issue(row, family_id)
        return TokenResponse(
            access_token=self.access_token(row),
            expires_in=int(self.settings.auth_token_ttl_s),
            refresh_token=refresh,
            refresh_expires_in=int(self.settings.auth_refresh_ttl_s),
            role=row.role,
            tenant_id=row.tenant_id,
        )

    async def refresh(self, refresh_token: str) -> TokenResponse:
        """New access and refresh tokens for a refresh token, which is used up."""
        row, family = await self.refresh_tokens.use(refresh_token)
        return await self._session(row, family)

    async def logout(self, refresh_token: str) -> None:
        """End a login: its refresh token and every one rotated from it stop working."""
        await self.refresh_tokens.revoke(refresh_token)

    # -- second factor (TOTP) ----------------------------------------------------------------------------

    async def totp_setup(self, principal: Principal) -> TotpSetup:
        """A new secret for the caller's authenticator app; it is required from the next login once
        confirmed."""
        row = await self._own_account(principal)
        if row.totp_enabled:
            raise Conflict("A second factor is on already; turn it off first.", code="totp_enabled")
        secret = totp.new_secret()
        async with self.db.session() as session:
            stored = await tenant_get(session, UserRow, row.id, tenant=row.tenant_id)
            stored.totp_secret_enc, stored.totp_last_step = self.cipher.encrypt(secret), None
        return TotpSetup(
            secret=secret, otpauth_uri=totp.provisioning_uri(secret, f"{row.username}@{row.tenant_id}")
        )

    async def totp_enable(self, principal: Principal, code: str) -> User:
        row = await self._own_account(principal)
        if row.totp_secret_enc is None:
            raise Conflict("Set up the second factor first (POST /auth/totp/setup).", code="totp_not_set_up")
        if not await self._use_otp(row, code):
            raise Forbidden("The one-time code is wrong.", code="otp_invalid")
        async with self.db.session() as session:
            stored = await tenant_get(session, UserRow, row.id, tenant=row.tenant_id)
            stored.totp_enabled = True
            user = _user(stored)
        await self._emit(
            "auth.user_updated", user.tenant_id, user_id=user.id, username=user.username, totp=True
        )
        return user

    async def totp_disable(self, principal: Principal, password: str, code: str, *, client: str) -> User:
        row = await self._own_account(principal)
        if not row.totp_enabled:
            raise Conflict("No second factor is on.", code="totp_not_enabled")
        if not await self._password_ok(row, password, client) or not await self._use_otp(row, code):
            raise Forbidden("The password or the one-time code is wrong.", code="wrong_password")
        return await self.update_user(row.id, reset_totp=True)

    async def _use_otp(self, row: UserRow, code: str) -> bool:
        """Whether `code` is the account's current code and not used before (then it is used up)."""
        secret = self.cipher.decrypt(row.totp_secret_enc) if row.totp_secret_enc else None
        step = totp.matching_step(secret, code, after=row.totp_last_step) if secret else None
        if step is None:
            return False
        async with self.db.session() as session:
            stored = await session.scalar(
                tenant_select(UserRow, tenant=row.tenant_id).where(UserRow.id == row.id).with_for_update()
            )
            if stored.totp_last_step is not None and stored.totp_last_step >= step:
                return False  # the same code, used at the same moment by someone else
            stored.totp_last_step = step
        return True

    # -- OpenID Connect ----------------------------------------------------------------------------------

    def _oidc(self) -> OIDCLogin:
        if self.oidc is None:
            raise NotFound("OIDC login is not configured (ALP_OIDC_ISSUER).", code="oidc_not_configured")
        return self.oidc

    async def oidc_start(self) -> Started:
        return await self._oidc().start()

    async def oidc_finish(self, *, code: str, state: str, flow: str | None) -> TokenResponse:
        """Log in the provider's user: their account (made at the first login, in ALP_OIDC_TENANT with
        ALP_OIDC_ROLE) gets a session. An account is matched by the provider's subject, never by username."""
        claims = await self._oidc().finish(code=code, state=state, flow=flow)
        subject = f"{claims['iss']}|{claims['sub']}"
        tenant = self.settings.oidc_tenant or self.settings.tenant_id
        async with self.db.session() as session:
            row = (
                await session.execute(
                    select(UserRow).where(tenant_is(UserRow, tenant), UserRow.oidc_subject == subject)
                )
            ).scalar_one_or_none()
        if row is None:
            name = str(claims.get(self.settings.oidc_username_claim) or claims.get("email") or claims["sub"])
            username = OIDC_USERNAME.sub("_", name)[:64]
            unusable = await passwords.hash_password(secrets.token_urlsafe(32))  # no password login
            await self._add_user(
                UserRow(
                    tenant_id=tenant,
                    username=username,
                    role=self.settings.oidc_role,
                    disabled=False,
                    failed_logins=0,
                    password_hash=unusable,
                    oidc_subject=subject,
                )
            )
            async with self.db.session() as session:
                row = (
                    await session.execute(
                        select(UserRow).where(tenant_is(UserRow, tenant), UserRow.oidc_subject == subject)
                    )
                ).scalar_one()
        if row.disabled:
            raise Unauthenticated("This account is disabled.", code="account_disabled")
        await self._emit("auth.login_succeeded", tenant, username=row.username, user_id=row.id, method="oidc")
        return await self._session(row)

    # -- credentials -------------------------------------------------------------------------------------

    async def authenticate(self, *, token: str | None, api_key: str | None) -> Principal:
        if api_key:
            return await self._from_key(api_key)
        if token and token.startswith(API_KEY_PREFIX):  # an API key as a Bearer token (OpenAI clients)
            return await self._from_key(token)
        if token:
            return await self._from_token(token)
        raise Unauthenticated(
            "Send `Authorization: Bearer <token>` (from POST /auth/token) or `X-API-Key: <key>`."
        )

    async def _from_token(self, token: str) -> Principal:
        if not self._secret:
            raise Unauthenticated("The access token is invalid.")
        claims = verify(token, self._secret)
        if claims.get("kind") == "service":  # another of our processes, working for the tenant it names
            if claims.get("role") not in ROLES or not isinstance(claims.get("tid"), str):
                raise Unauthenticated("The access token is invalid.")
            # A service runs tasks and reads; whatever a token claims, it never manages accounts, agents,
            # the policy or anything platform-wide.
            return Principal(
                kind="service",
                id=claims["sub"],
                name=claims["sub"],
                tenant_id=claims["tid"],
                role=lower_role(claims["role"], SERVICE_ROLE),
            )
        async with self.db.session() as session:
            row = await tenant_get(session, UserRow, claims["sub"], tenant=claims["tid"])
        if row is None or row.disabled:  # deleted or disabled since the token was issued
            raise Unauthenticated("The account of this token no longer exists or is disabled.")
        if claims.get("ver", 0) != row.token_version:
            raise Unauthenticated(
                "This token was issued before the account's password changed; log in again.",
                code="token_revoked",
            )
        return Principal(kind="user", id=row.id, name=row.username, tenant_id=row.tenant_id, role=row.role)

    # -- API keys ----------------------------------------------------------------------------------------

    async def create_key(self, name: str, role: Role, owner: Principal) -> ApiKeyCreated:
        """A key for `owner`'s tenant, answerable to the person behind `owner` (a key made with a key belongs
        to that key's creator). It never acts above its creator's role at the time of use."""
        check_grant(owner, role)
        user_id = owner.id if owner.kind == "user" else None
        if owner.kind == "api_key":
            async with self.db.session() as session:
                parent = await tenant_get(session, ApiKeyRow, owner.id, tenant=owner.tenant_id)
            user_id = parent.user_id if parent is not None else None
        key = API_KEY_PREFIX + secrets.token_urlsafe(32)
        row = ApiKeyRow(
            tenant_id=owner.tenant_id,
            name=name,
            user_id=user_id,
            role=role,
            key_hash=hash_key(key),
            prefix=key[:12],
        )
        async with self.db.session() as session:
            session.add(row)
        log.info("api_key_created", key_id=row.id, tenant_id=row.tenant_id, role=role)
        await self._emit(
            "auth.api_key_created", row.tenant_id, key_id=row.id, name=name, role=role, by=owner.id
        )
        return ApiKeyCreated(**_key(row).model_dump(), key=key)

    async def list_keys(self) -> list[ApiKey]:
        async with self.db.session() as session:
            rows = (
                await session.execute(
                    select(ApiKeyRow).where(tenant_is(ApiKeyRow)).order_by(ApiKeyRow.created_at)
                )
            ).scalars()
            return [_key(row) for row in rows]

    async def revoke_key(self, key_id: str) -> ApiKey:
        async with self.db.session() as session:
            row = await tenant_get(session, ApiKeyRow, key_id)
            if row is None:
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
            row = (
                await session.execute(
                    all_tenants(
                        select(ApiKeyRow).where(ApiKeyRow.key_hash == hash_key(key)),
                        "an API key names its tenant: found by the key's hash",
                    )
                )
            ).scalar_one_or_none()
            creator = (
                await tenant_get(session, UserRow, row.user_id, tenant=row.tenant_id)
                if row is not None and row.user_id
                else None
            )
        if row is None or row.revoked_at is not None:
            raise Unauthenticated("The API key is invalid or revoked.")
        role: Role = row.role
        if row.user_id is not None:
            if creator is None or creator.disabled:
                raise Unauthenticated(
                    "The API key's creator is disabled or deleted: the key no longer works.",
                    code="api_key_owner_disabled",
                )
            role = lower_role(row.role, creator.role)
        return Principal(kind="api_key", id=row.id, name=row.name, tenant_id=row.tenant_id, role=role)
