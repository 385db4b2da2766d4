"""The model aliases of every tenant, and the platform-wide ones every tenant sees.

A tenant's request for an alias gets the tenant's own alias of that name, else the platform's; it never sees
another tenant's aliases, so no alias can carry one tenant's prompts to an endpoint another tenant chose.
Built-in aliases (`local`, the embedder) and those of `ALP_MODELS_FILE` are platform-wide and live in memory;
the others are stored, with inline keys encrypted (`api_key_enc`) by the operator's key (core/crypto.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from agent_lightning.core.crypto import SecretCipher
from agent_lightning.core.db import Database, utcnow
from agent_lightning.core.logging import get_logger
from agent_lightning.core.tenancy import PLATFORM, all_tenants, tenant_delete, tenant_update
from agent_lightning.models.schemas import Deployment, ModelInfo
from agent_lightning.models.tables import ModelRow

log = get_logger(__name__)

Key = tuple[str, str]
"""(owner, alias): the owner is a tenant id or `PLATFORM`."""


class Registry:
    """Aliases in memory, loaded once from the database, and written through to it."""

    def __init__(self, db: Database | None, cipher: SecretCipher, default_model: str) -> None:
        self.db = db
        self.cipher = cipher
        self.default_model = default_model
        self._aliases: dict[Key, ModelInfo] = {}
        self._loaded = db is None
        self._lock = asyncio.Lock()

    def put(self, owner: str, info: ModelInfo) -> None:
        """Hold an alias in memory only (built-in aliases, the models file)."""
        info.scope = "platform" if owner == PLATFORM else "tenant"
        info.is_default = owner == PLATFORM and info.id == self.default_model
        self._aliases[(owner, info.id)] = info

    async def ensure_loaded(self) -> None:
        if self._loaded:
            return
        async with self._lock:
            if self._loaded or self.db is None:
                return
            async with self.db.session() as session:
                rows = (
                    await session.scalars(
                        all_tenants(select(ModelRow), "the registry holds every tenant's aliases in memory")
                    )
                ).all()
            for row in rows:
                info = self._row_info(row)
                if row.tenant_id == PLATFORM and row.is_default:
                    self.default_model = row.id
                self._aliases[(row.tenant_id, row.id)] = info
                if any("api_key" in d for d in row.deployments):  # stored in clear by an older version
                    await self.save(row.tenant_id, info, new=False)
                    log.info("model_key_encrypted", alias=row.id, tenant_id=row.tenant_id)
            self._mark_default()
            self._loaded = True

    def _mark_default(self) -> None:
        for (owner, alias), info in self._aliases.items():
            info.is_default = owner == PLATFORM and alias == self.default_model

    def owned(self, owner: str, alias: str) -> ModelInfo | None:
        """The alias of exactly this owner."""
        return self._aliases.get((owner, alias))

    def find(self, alias: str, tenant: str) -> tuple[str, ModelInfo] | None:
        """What `alias` means for `tenant`: its own alias, else the platform's; with the owner."""
        for owner in (tenant, PLATFORM):
            info = self._aliases.get((owner, alias))
            if info is not None:
                return owner, info
        return None

    def visible(self, tenant: str) -> list[ModelInfo]:
        """Every alias `tenant` can name (its own hide the platform's of the same name)."""
        mine = {alias: info for (owner, alias), info in self._aliases.items() if owner == tenant}
        shared = [
            info for (owner, alias), info in self._aliases.items() if owner == PLATFORM and alias not in mine
        ]
        return [*shared, *mine.values()]

    async def save(self, owner: str, info: ModelInfo, *, new: bool) -> None:
        """Store an alias (insert or update) and hold it."""
        self.put(owner, info)
        self._mark_default()
        if self.db is None:
            return
        values = {
            "kind": info.kind,
            "status": info.status,
            "version": info.version,
            "description": info.description,
            "deployments": [self._stored(d) for d in info.deployments],
            "fallbacks": info.fallbacks,
            "params": info.params,
            "is_default": info.is_default,
            "updated_at": info.updated_at or utcnow(),
        }
        async with self.db.session() as session:
            if new:
                session.add(
                    ModelRow(tenant_id=owner, id=info.id, created_at=info.created_at or utcnow(), **values)
                )
            else:
                await session.execute(
                    tenant_update(ModelRow, owner).where(ModelRow.id == info.id).values(**values)
                )

    async def remove(self, owner: str, alias: str) -> None:
        self._aliases.pop((owner, alias), None)
        if self.db is not None:
            async with self.db.session() as session:
                await session.execute(tenant_delete(ModelRow, owner).where(ModelRow.id == alias))

    async def store_default(self, alias: str) -> None:
        """Make a platform alias the default of every tenant (kept across restarts)."""
        self.default_model = alias
        self._mark_default()
        if self.db is not None:
            async with self.db.session() as session:
                await session.execute(tenant_update(ModelRow, PLATFORM).values(is_default=False))
                await session.execute(
                    tenant_update(ModelRow, PLATFORM).where(ModelRow.id == alias).values(is_default=True)
                )

    def _stored(self, deployment: Deployment) -> dict[str, Any]:
        data = deployment.model_dump(mode="python", exclude_none=True, exclude={"api_key"})
        if deployment.api_key is not None:
            data["api_key_enc"] = self.cipher.encrypt(deployment.api_key.get_secret_value())
        return data

    def _row_info(self, row: ModelRow) -> ModelInfo:
        deployments = []
        for stored in row.deployments:
            data = dict(stored)
            if "api_key_enc" in data:
                data["api_key"] = self.cipher.decrypt(data.pop("api_key_enc"))
            deployments.append(Deployment.model_validate(data))
        info = model_info(
            row.id, row.kind, row.status, row.version, row.description, deployments, row.fallbacks, row.params
        )
        info.created_at, info.updated_at = row.created_at, row.updated_at
        info.scope = "platform" if row.tenant_id == PLATFORM else "tenant"
        return info


def model_info(alias, kind, status, version, description, deployments, fallbacks, params) -> ModelInfo:
    first = deployments[0]
    return ModelInfo(
        id=alias,
        provider=first.provider,
        provider_model=first.model,
        kind=kind,
        status=status,
        version=version,
        description=description,
        deployments=list(deployments),
        fallbacks=list(fallbacks),
        params=dict(params),
    )
