"""Failed logins counted per (account, client address): after `attempts` failures in a row that pair is
locked, first for `base_s`, then twice as long with each further failure, up to `max_s`. Another address is
not locked out, so nobody can lock a user out of their account by failing logins in their name."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from agent_lightning.auth.tables import LoginFailureRow
from agent_lightning.core.db import Database, utcnow
from agent_lightning.core.tenancy import tenant_is

CLIENT_CHARS = 64


class LoginThrottle:
    def __init__(self, db: Database, *, attempts: int, base_s: float, max_s: float) -> None:
        self.db = db
        self.attempts = attempts
        self.base_s = base_s
        self.max_s = max_s

    async def retry_after(self, tenant: str, username: str, client: str) -> float | None:
        """Seconds until this account may try again from this client, or None when it may now."""
        async with self.db.session() as session:
            row = await session.get(LoginFailureRow, (tenant, username, client[:CLIENT_CHARS]))
        if row is None or row.locked_until is None:
            return None
        left = (row.locked_until - utcnow()).total_seconds()
        return left if left > 0 else None

    async def failed(self, tenant: str, username: str, client: str) -> float | None:
        """Count a failure; how long the pair is now locked, if it is."""
        for _ in range(3):  # two first failures at once: one inserts, the other updates
            try:
                async with self.db.session() as session:
                    key = (tenant, username, client[:CLIENT_CHARS])
                    row = await session.get(LoginFailureRow, key, with_for_update=True)
                    if row is None:
                        row = LoginFailureRow(tenant_id=tenant, username=username, client=key[2], failures=0)
                        session.add(row)
                    row.failures += 1
                    row.last_failure_at = utcnow()
                    lock = self.lock_s(row.failures)
                    row.locked_until = utcnow() + timedelta(seconds=lock) if lock else None
                return lock
            except IntegrityError:
                continue
        return None

    def lock_s(self, failures: int) -> float | None:
        if failures < self.attempts:
            return None
        return min(self.max_s, self.base_s * 2 ** (failures - self.attempts))

    async def succeeded(self, tenant: str, username: str, client: str) -> None:
        async with self.db.session() as session:
            await session.execute(
                delete(LoginFailureRow).where(
                    tenant_is(LoginFailureRow, tenant),
                    LoginFailureRow.username == username,
                    LoginFailureRow.client == client[:CLIENT_CHARS],
                )
            )
