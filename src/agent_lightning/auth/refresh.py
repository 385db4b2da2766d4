"""Refresh tokens: opaque, stored as SHA-256 digests, single use. A refresh uses the token up and issues the
next of its family; a used token presented again means a copy was stolen, and the whole family is revoked.
A token issued before the account's last password change or disable (its token version) is refused."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from agent_lightning.auth.tables import RefreshTokenRow, UserRow
from agent_lightning.core.db import Database, new_id, utcnow
from agent_lightning.core.errors import Unauthenticated
from agent_lightning.core.tenancy import all_tenants, tenant_get, tenant_update

PREFIX = "alpr_"


BY_TOKEN = "a refresh token names its account, of any tenant: found by the token's hash"  # noqa: S105 (a reason, not a password)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class RefreshTokens:
    def __init__(self, db: Database, ttl_s: float) -> None:
        self.db = db
        self.ttl_s = ttl_s

    async def issue(self, user: UserRow, family_id: str | None = None) -> str:
        token = PREFIX + secrets.token_urlsafe(32)
        async with self.db.session() as session:
            session.add(
                RefreshTokenRow(
                    tenant_id=user.tenant_id,
                    user_id=user.id,
                    family_id=family_id or new_id(),
                    token_hash=digest(token),
                    token_version=user.token_version,
                    expires_at=utcnow() + timedelta(seconds=self.ttl_s),
                )
            )
        return token

    async def use(self, token: str) -> tuple[UserRow, str]:
        """The account and family of a valid token, which is used up; raises `Unauthenticated`."""
        now = utcnow()
        async with self.db.session() as session:
            row = (
                await session.execute(
                    all_tenants(
                        RefreshTokenRow.__table__.select().where(RefreshTokenRow.token_hash == digest(token)),
                        BY_TOKEN,
                    )
                )
            ).first()
            if row is None or row.revoked_at is not None or row.expires_at <= now:
                raise Unauthenticated(
                    "The refresh token is invalid, expired or revoked; log in again.",
                    code="refresh_token_invalid",
                )
            taken = await session.execute(
                tenant_update(RefreshTokenRow, row.tenant_id)
                .where(RefreshTokenRow.id == row.id, RefreshTokenRow.used_at.is_(None))
                .values(used_at=now)
            )
            if taken.rowcount != 1:  # used before: a copy is in other hands
                await session.execute(
                    tenant_update(RefreshTokenRow, row.tenant_id)
                    .where(RefreshTokenRow.family_id == row.family_id, RefreshTokenRow.revoked_at.is_(None))
                    .values(revoked_at=now)
                )
                reused = True
            else:
                reused = False
            user = await tenant_get(session, UserRow, row.user_id, tenant=row.tenant_id)
        if reused:
            raise Unauthenticated(
                "This refresh token was used already: every token of its login is revoked.",
                code="refresh_token_reused",
            )
        if user is None or user.disabled or user.token_version != row.token_version:
            raise Unauthenticated(
                "The account of this refresh token is disabled or its password changed.",
                code="refresh_token_invalid",
            )
        return user, row.family_id

    async def revoke(self, token: str) -> None:
        """Revoke the family of a token (log out); an unknown token is ignored."""
        async with self.db.session() as session:
            row = (
                await session.execute(
                    all_tenants(
                        RefreshTokenRow.__table__.select().where(RefreshTokenRow.token_hash == digest(token)),
                        BY_TOKEN,
                    )
                )
            ).first()
            if row is not None:
                await session.execute(
                    tenant_update(RefreshTokenRow, row.tenant_id)
                    .where(RefreshTokenRow.family_id == row.family_id, RefreshTokenRow.revoked_at.is_(None))
                    .values(revoked_at=utcnow())
                )
