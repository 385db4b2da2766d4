"""The agent registry: one roster of agent definitions with versions and a lifecycle."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from agent_lightning.agents.schemas import (
    Agent,
    AgentCreate,
    AgentSpec,
    AgentSpecialize,
    AgentStatus,
    AgentUpdate,
    SpecOverrides,
)
from agent_lightning.agents.tables import AgentRow, AgentVersionRow
from agent_lightning.core.db import Database
from agent_lightning.core.errors import Conflict, Invalid, NotFound
from agent_lightning.core.tenancy import current_tenant
from agent_lightning.models.schemas import ModelGateway

SPEC_FIELDS = tuple(AgentSpec.model_fields)
TRANSITIONS: dict[str, set[str]] = {"draft": {"active", "retired"}, "active": {"retired"}, "retired": set()}


def _to_agent(row: AgentRow, version: AgentVersionRow) -> Agent:
    spec = {field: getattr(version, field) for field in SPEC_FIELDS}
    return Agent(
        id=row.id,
        name=row.name,
        role=row.role,
        description=row.description,
        status=row.status,
        version=version.version,
        parent_id=row.parent_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        **spec,
    )


class AgentService:
    """Create, version, specialise, validate and retire agents."""

    def __init__(self, db: Database, models: ModelGateway) -> None:
        self.db = db
        self.models = models

    async def get(self, agent_id: str, *, version: int | None = None) -> Agent:
        """One agent at its current version (or the version asked for)."""
        async with self.db.session() as session:
            row = await self._row(session, agent_id)
            wanted = version or row.version
            version_row = await session.scalar(
                select(AgentVersionRow).where(
                    AgentVersionRow.agent_id == agent_id, AgentVersionRow.version == wanted
                )
            )
            if version_row is None:
                raise NotFound(f"Agent '{agent_id}' has no version {wanted}.", code="agent_version_not_found")
            return _to_agent(row, version_row)

    async def list(self, *, status: AgentStatus | None = None) -> list[Agent]:
        """Every agent of the tenant at its current version, optionally of one status."""
        query = (
            select(AgentRow, AgentVersionRow)
            .join(
                AgentVersionRow,
                (AgentVersionRow.agent_id == AgentRow.id) & (AgentVersionRow.version == AgentRow.version),
            )
            .where(AgentRow.tenant_id == current_tenant())
            .order_by(AgentRow.id)
        )
        if status:
            query = query.where(AgentRow.status == status)
        async with self.db.session() as session:
            return [_to_agent(row, version) for row, version in (await session.execute(query)).all()]

    async def versions(self, agent_id: str) -> list[Agent]:
        """Every version of one agent, oldest first."""
        async with self.db.session() as session:
            row = await self._row(session, agent_id)
            rows = await session.scalars(
                select(AgentVersionRow).where(AgentVersionRow.agent_id == agent_id).order_by(AgentVersionRow.version)
            )
            return [_to_agent(row, version) for version in rows]

    async def create(self, data: AgentCreate, *, parent_id: str | None = None) -> Agent:
        """A new agent at version 1. Unknown model → 422; taken id or name → 409."""
        await self._check_model(data.model)
        spec = AgentSpec.model_validate(data.model_dump(include=set(SPEC_FIELDS)))
        async with self.db.session() as session:
            if await session.get(AgentRow, data.id) is not None:
                raise Conflict(f"An agent with id '{data.id}' already exists.", code="agent_exists")
            await self._check_name_free(session, data.name)
            row = AgentRow(
                id=data.id,
                tenant_id=current_tenant(),
                name=data.name,
                role=data.role,
                description=data.description,
                status=data.status,
                version=1,
                parent_id=parent_id,
            )
            session.add(row)
            session.add(self._version_row(row, 1, spec))
            try:
                await session.flush()
            except IntegrityError as exc:  # a concurrent create won the race
                raise Conflict(f"Agent '{data.id}' conflicts with an existing agent.", code="agent_exists") from exc
        return await self.get(data.id)

    async def update(self, agent_id: str, data: AgentUpdate) -> Agent:
        """Change an agent. Any change to its spec makes a new version; retired agents cannot change."""
        changes = data.model_dump(exclude_unset=True)
        async with self.db.session() as session:
            row = await self._row(session, agent_id)
            if row.status == "retired":
                raise Conflict(f"Agent '{agent_id}' is retired and cannot change.", code="agent_retired")
            if "name" in changes and changes["name"] != row.name:
                await self._check_name_free(session, changes["name"])
            for field in ("name", "role", "description"):
                if changes.get(field) is not None:
                    setattr(row, field, changes[field])
            current = await self._version(session, row)
            spec = self._merge(current, data)
            if spec != self._spec_of(current):
                await self._check_model(spec.model)
                row.version += 1
                session.add(self._version_row(row, row.version, spec))
        return await self.get(agent_id)

    async def specialize(self, parent_id: str, data: AgentSpecialize) -> Agent:
        """Derive a new agent from a parent, inheriting everything but the overrides."""
        parent = await self.get(parent_id)
        spec = self._merge(parent, data)
        create = AgentCreate(
            id=data.id,
            name=data.name,
            role=parent.role,
            description=data.description if data.description is not None else parent.description,
            status=data.status,
            **spec.model_dump(),
        )
        return await self.create(create, parent_id=parent_id)

    async def set_status(self, agent_id: str, status: AgentStatus) -> Agent:
        """Move an agent along draft → active → retired; other moves are a 409."""
        async with self.db.session() as session:
            row = await self._row(session, agent_id)
            if status != row.status:
                if status not in TRANSITIONS[row.status]:
                    raise Conflict(
                        f"Agent '{agent_id}' cannot go from {row.status} to {status}.", code="invalid_transition"
                    )
                row.status = status
        return await self.get(agent_id)

    async def seed(self, fleet: list[AgentCreate]) -> int:
        """Create the agents of `fleet` that do not exist yet; return how many were created.
        Safe when several processes seed the same database at once."""
        existing = {agent.id for agent in await self.list()}
        created = 0
        for agent in fleet:
            if agent.id not in existing:
                try:
                    await self.create(agent)
                    created += 1
                except Conflict:
                    pass  # another process created it first
        return created

    # -- helpers -------------------------------------------------------------------------------------

    async def _row(self, session: AsyncSession, agent_id: str) -> AgentRow:
        row = await session.get(AgentRow, agent_id)
        if row is None or row.tenant_id != current_tenant():
            raise NotFound(f"Unknown agent '{agent_id}'.", code="agent_not_found")
        return row

    async def _version(self, session: AsyncSession, row: AgentRow) -> AgentVersionRow:
        return await session.scalar(
            select(AgentVersionRow).where(
                AgentVersionRow.agent_id == row.id, AgentVersionRow.version == row.version
            )
        )

    async def _check_name_free(self, session: AsyncSession, name: str) -> None:
        taken = await session.scalar(
            select(AgentRow.id).where(AgentRow.tenant_id == current_tenant(), AgentRow.name == name)
        )
        if taken:
            raise Conflict(f"The name '{name}' is taken by agent '{taken}'.", code="agent_name_taken")

    async def _check_model(self, model: str) -> None:
        known = {info.id for info in await self.models.list_models() if info.kind == "chat" and info.status == "active"}
        if model not in known:
            raise Invalid(
                f"Unknown or unusable chat model '{model}'.",
                code="unknown_model",
                details={"known_models": sorted(known)},
            )

    @staticmethod
    def _spec_of(source: object) -> AgentSpec:
        return AgentSpec.model_validate({field: getattr(source, field) for field in SPEC_FIELDS})

    @classmethod
    def _merge(cls, base: object, overrides: SpecOverrides) -> AgentSpec:
        merged = cls._spec_of(base).model_dump()
        merged.update({k: v for k, v in overrides.model_dump(exclude_unset=True).items() if k in SPEC_FIELDS and v is not None})
        return AgentSpec.model_validate(merged)

    @staticmethod
    def _version_row(row: AgentRow, version: int, spec: AgentSpec) -> AgentVersionRow:
        return AgentVersionRow(agent_id=row.id, tenant_id=row.tenant_id, version=version, **spec.model_dump())
