"""The secrets store: values encrypted with the operator's key (core/crypto.py), per tenant or
platform-wide."""

from __future__ import annotations

from agent_lightning.core.crypto import SecretCipher
from agent_lightning.core.db import Database, utcnow
from agent_lightning.core.errors import NotFound
from agent_lightning.core.logging import get_logger
from agent_lightning.core.tenancy import PLATFORM, tenant_select
from agent_lightning.secrets.schemas import SecretInfo
from agent_lightning.secrets.tables import SecretRow

log = get_logger(__name__)


def _info(row: SecretRow) -> SecretInfo:
    return SecretInfo(
        name=row.name,
        scope="platform" if row.tenant_id == PLATFORM else "tenant",
        updated_by=row.updated_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class SecretStore:
    """Implements `SecretResolver`; the API adds put, list and delete (names only, never values)."""

    def __init__(self, db: Database, cipher: SecretCipher) -> None:
        self.db = db
        self.cipher = cipher

    async def put(self, name: str, value: str, *, tenant_id: str, by: str) -> SecretInfo:
        """Store or replace a secret."""
        ciphertext = self.cipher.encrypt(value)
        async with self.db.session() as session:
            row = await session.get(SecretRow, (tenant_id, name))
            if row is None:
                row = SecretRow(tenant_id=tenant_id, name=name, ciphertext=ciphertext, updated_by=by)
                session.add(row)
            else:
                row.ciphertext, row.updated_by, row.updated_at = ciphertext, by, utcnow()
            await session.flush()
            info = _info(row)
        log.info("secret_stored", tenant_id=tenant_id, name=name, by=by)
        return info

    async def list(self, *, tenant_id: str) -> list[SecretInfo]:
        """The names of one scope's secrets."""
        async with self.db.session() as session:
            rows = (
                await session.execute(tenant_select(SecretRow, tenant=tenant_id).order_by(SecretRow.name))
            ).scalars()
            return [_info(row) for row in rows]

    async def delete(self, name: str, *, tenant_id: str) -> SecretInfo:
        """Remove a secret; objects that name it stop working until it is stored again."""
        async with self.db.session() as session:
            row = await session.get(SecretRow, (tenant_id, name))
            if row is None:
                raise NotFound(f"No secret {name!r}.", code="secret_not_found")
            info = _info(row)
            await session.delete(row)
        log.info("secret_deleted", tenant_id=tenant_id, name=name)
        return info

    async def reveal(self, name: str, *, tenant_id: str) -> str:
        """The value of a secret, for use inside the platform (never for an API answer)."""
        async with self.db.session() as session:
            row = await session.get(SecretRow, (tenant_id, name))
        if row is None:
            raise NotFound(f"No secret {name!r}.", code="secret_not_found", details={"name": name})
        return self.cipher.decrypt(row.ciphertext)
