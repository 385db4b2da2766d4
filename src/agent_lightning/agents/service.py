"""The agent registry: one roster of agent definitions with versions and a lifecycle."""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import Awaitable, Callable

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
    ToolPolicy,
)
from agent_lightning.agents.tables import AgentRow, AgentVersionRow, ToolPolicyRow
from agent_lightning.core.db import Database, utcnow
from agent_lightning.core.errors import Conflict, Invalid, NotFound
from agent_lightning.core.tenancy import all_tenants, current_tenant, tenant_get, tenant_select
from agent_lightning.models.schemas import ModelGateway, ModelStatus

SPEC_FIELDS = tuple(AgentSpec.model_fields)
TRANSITIONS: dict[AgentStatus, set[AgentStatus]] = {
    AgentStatus.DRAFT: {AgentStatus.ACTIVE, AgentStatus.RETIRED},
    AgentStatus.ACTIVE: {AgentStatus.RETIRED},
    AgentStatus.RETIRED: set(),
}
ROSTER_TTL_S = 1.0
"""How long a process answers from its copy of a tenant's roster: its own changes show at once, another
process's within this (every task reads the roster twice: to route it and to run it)."""


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

    def __init__(
        self,
        db: Database,
        models: ModelGateway,
        *,
        check_tools: Callable[[AgentSpec, ToolPolicy], Awaitable[None]] | None = None,
        check_policy: Callable[[ToolPolicy], None] | None = None,
    ) -> None:
        self.db = db
        self.models = models
        self.check_tools = (
            check_tools  # raises Invalid for permissions no tool answers to or the policy denies
        )
        self.check_policy = check_policy  # raises Invalid for a policy that names no tool
        self._policies: dict[str, tuple[float, ToolPolicy]] = {}  # tenant -> (read at, its tool policy)
        self._rosters: dict[str, tuple[float, dict[str, Agent]]] = {}  # tenant -> (read at, agents by id)
        self._reading: dict[
            str, asyncio.Future
        ] = {}  # tenant -> the read in flight, which every caller awaits
        self._changes = 0  # a roster read while an agent changed is not kept

    async def get(self, agent_id: str, *, version: int | None = None) -> Agent:
        """One agent at its current version (or the version asked for)."""
        if version is None and (agent := (await self._roster()).get(agent_id)) is not None:
            return agent
        async with self.db.session() as session:
            row = await self._row(session, agent_id)
            wanted = version or row.version
            version_row = await session.scalar(
                tenant_select(AgentVersionRow).where(
                    AgentVersionRow.agent_id == agent_id, AgentVersionRow.version == wanted
                )
            )
            if version_row is None:
                raise NotFound(f"Agent '{agent_id}' has no version {wanted}.", code="agent_version_not_found")
            return _to_agent(row, version_row)

    async def list(self, *, status: AgentStatus | None = None) -> list[Agent]:
        """Every agent of the tenant at its current version, optionally of one status."""
        return [a for a in (await self._roster()).values() if status is None or a.status == status]

    async def _roster(self) -> dict[str, Agent]:
        """The tenant's agents at their current versions, by id (ordered), from this process's copy while it
        is fresh (`ROSTER_TTL_S`)."""
        tenant = current_tenant()
        kept = self._rosters.get(tenant)
        if kept is not None and time.monotonic() - kept[0] < ROSTER_TTL_S:
            return kept[1]
        reading = self._reading.get(tenant)
        if reading is None or reading.done():
            reading = self._reading[tenant] = asyncio.ensure_future(self._read_roster(tenant))
        return await asyncio.shield(reading)

    async def _read_roster(self, tenant: str) -> dict[str, Agent]:
        changes, read_at = self._changes, time.monotonic()
        query = (
            tenant_select(AgentRow, AgentVersionRow, tenant=tenant)
            .join(
                AgentVersionRow,
                (AgentVersionRow.agent_id == AgentRow.id) & (AgentVersionRow.version == AgentRow.version),
            )
            .order_by(AgentRow.id)
        )
        async with self.db.session() as session:
            roster = {
                row.id: _to_agent(row, version) for row, version in (await session.execute(query)).all()
            }
        if changes == self._changes:
            self._rosters[tenant] = (read_at, roster)
        return roster

    def _changed(self) -> None:
        """This process changed an agent: every copy of a roster is read again."""
        self._changes += 1
        self._rosters.clear()
        self._policies.clear()
        self._reading.clear()  # a read begun before the change may miss it: callers from now on read again

    async def versions(self, agent_id: str) -> builtins.list[Agent]:
        """Every version of one agent, oldest first."""
        async with self.db.session() as session:
            row = await self._row(session, agent_id)
            rows = await session.scalars(
                tenant_select(AgentVersionRow)
                .where(AgentVersionRow.agent_id == agent_id)
                .order_by(AgentVersionRow.version)
            )
            return [_to_agent(row, version) for version in rows]

    async def create(
        self, data: AgentCreate, *, parent_id: str | None = None, check_model: bool = True
    ) -> Agent:
        """A new agent at version 1. Unknown model → 422; taken id or name → 409."""
        if check_model:
            await self._check_model(data.model)
        spec = AgentSpec.model_validate(data.model_dump(include=set(SPEC_FIELDS)))
        await self._check_tools(spec)
        async with self.db.session() as session:
            taken = all_tenants(
                select(AgentRow.id).where(AgentRow.id == data.id), "agent ids are unique across tenants"
            )
            if await session.scalar(taken) is not None:
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
                raise Conflict(
                    f"Agent '{data.id}' conflicts with an existing agent.", code="agent_exists"
                ) from exc
        self._changed()
        return await self.get(data.id)

    async def update(self, agent_id: str, data: AgentUpdate) -> Agent:
        """Change an agent. Any change to its spec makes a new version; retired agents cannot change."""
        changes = data.model_dump(exclude_unset=True)
        async with self.db.session() as session:
            row = await self._row(session, agent_id)
            if row.status == AgentStatus.RETIRED:
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
                await self._check_tools(spec, self._spec_of(current))
                row.version += 1
                session.add(self._version_row(row, row.version, spec))
        self._changed()
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
                if status not in TRANSITIONS[AgentStatus(row.status)]:
                    raise Conflict(
                        f"Agent '{agent_id}' cannot go from {row.status} to {status}.",
                        code="invalid_transition",
                    )
                row.status = status
        self._changed()
        return await self.get(agent_id)

    async def seed(self, fleet: builtins.list[AgentCreate]) -> int:
        """Create the agents of `fleet` that do not exist yet; return how many were created.
        Safe when several processes seed the same database at once. The fleet's models are not looked up: it
        names the platform's default aliases, and a process seeding at start must not wait for the models
        service (in split mode it may start later)."""
        existing = {agent.id for agent in await self.list()}
        created = 0
        for agent in fleet:
            if agent.id not in existing:
                try:
                    await self.create(agent, check_model=False)
                    created += 1
                except Conflict:
                    pass  # another process created it first
        self._changed()  # the roster read above may predate agents another process seeded meanwhile
        return created

    # -- helpers -------------------------------------------------------------------------------------

    async def _row(self, session: AsyncSession, agent_id: str) -> AgentRow:
        row = await tenant_get(session, AgentRow, agent_id)
        if row is None:
            raise NotFound(f"Unknown agent '{agent_id}'.", code="agent_not_found")
        return row

    async def _version(self, session: AsyncSession, row: AgentRow) -> AgentVersionRow:
        return await session.scalar(
            tenant_select(AgentVersionRow).where(
                AgentVersionRow.agent_id == row.id, AgentVersionRow.version == row.version
            )
        )

    async def _check_name_free(self, session: AsyncSession, name: str) -> None:
        taken = await session.scalar(tenant_select(AgentRow.id).where(AgentRow.name == name))
        if taken:
            raise Conflict(f"The name '{name}' is taken by agent '{taken}'.", code="agent_name_taken")

    async def _check_model(self, model: str) -> None:
        known = {
            info.id
            for info in await self.models.list_models()
            if info.kind == "chat" and info.status == ModelStatus.ACTIVE
        }
        if model not in known:
            raise Invalid(
                f"Unknown or unusable chat model '{model}'.",
                code="unknown_model",
                details={"known_models": sorted(known)},
            )

    async def _check_tools(self, spec: AgentSpec, previous: AgentSpec | None = None) -> None:
        """Check the tool settings when they are new (an agent stored before tools existed keeps its
        labels)."""
        fields = ("tools", "require_approval", "mcp_servers")
        if previous is not None and all(getattr(spec, f) == getattr(previous, f) for f in fields):
            return
        if self.check_tools is not None:
            await self.check_tools(spec, await self.tool_policy())

    async def tool_policy(self) -> ToolPolicy:
        """The current tenant's tool policy (every tool the operator allows when it has none)."""
        tenant = current_tenant()
        kept = self._policies.get(tenant)
        if kept is not None and time.monotonic() - kept[0] < ROSTER_TTL_S:
            return kept[1]
        read_at = time.monotonic()
        async with self.db.session() as session:
            row = await tenant_get(session, ToolPolicyRow, tenant)
        policy = ToolPolicy() if row is None else ToolPolicy(allow=row.allow, deny=row.deny)
        self._policies[tenant] = (read_at, policy)
        return policy

    async def set_tool_policy(self, policy: ToolPolicy) -> ToolPolicy:
        """Replace the current tenant's tool policy (422 for a name no tool answers to). Agents that already
        hold a tool it now denies keep the grant on paper; every call of the tool is denied."""
        if self.check_policy is not None:
            self.check_policy(policy)
        values = {"allow": policy.allow, "deny": policy.deny, "updated_at": utcnow()}
        upsert = (
            self.db.insert(ToolPolicyRow)
            .values(tenant_id=current_tenant(), **values)
            .on_conflict_do_update(index_elements=["tenant_id"], set_=values)
        )  # one statement: two first PUTs at once both succeed, the later one's policy stays
        async with self.db.session() as session:
            await session.execute(upsert)
        self._changed()
        return policy

    @staticmethod
    def _spec_of(source: object) -> AgentSpec:
        return AgentSpec.model_validate({field: getattr(source, field) for field in SPEC_FIELDS})

    @classmethod
    def _merge(cls, base: object, overrides: SpecOverrides) -> AgentSpec:
        merged = cls._spec_of(base).model_dump()
        merged.update(
            {
                k: v
                for k, v in overrides.model_dump(exclude_unset=True).items()
                if k in SPEC_FIELDS and v is not None
            }
        )
        return AgentSpec.model_validate(merged)

    @staticmethod
    def _version_row(row: AgentRow, version: int, spec: AgentSpec) -> AgentVersionRow:
        return AgentVersionRow(agent_id=row.id, tenant_id=row.tenant_id, version=version, **spec.model_dump())
