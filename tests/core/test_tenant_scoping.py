"""Tenancy by construction (issue 16): every statement on a table with tenant_id constrains the tenant, or is
marked `all_tenants(statement, why)`. The checker and the session guard are tested here on statements written
with and without the tenant; the guard itself is on for the whole suite (tests/conftest.py), so every test
that reaches the database proves its queries are scoped."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import aliased
from tenant_guard import made_by_the_platform

from agent_lightning.agents.tables import AgentRow, AgentVersionRow
from agent_lightning.core.db import Database
from agent_lightning.core.tenancy import (
    TenantUnbound,
    TenantUnscoped,
    all_tenants,
    guard_sessions,
    set_tenant,
    tenant_delete,
    tenant_get,
    tenant_is,
    tenant_select,
    tenant_update,
    unscoped_tables,
)

WITHOUT_TENANT = [
    select(AgentRow),
    select(AgentRow.id).where(AgentRow.name == "x"),
    select(func.count()).select_from(AgentRow),
    select(AgentRow).where((AgentRow.tenant_id == "a") | (AgentRow.name == "b")),  # an OR lets any tenant in
    select(AgentRow).where(AgentRow.tenant_id == AgentRow.parent_id),  # a column, not a value
    select(AgentRow)
    .join(AgentVersionRow, AgentVersionRow.agent_id == AgentRow.id)
    .where(AgentRow.tenant_id == "a"),
    select(AgentRow).where(AgentRow.tenant_id == "a", AgentRow.id.in_(select(AgentVersionRow.agent_id))),
    select(func.count()).select_from(select(AgentRow).subquery()),
    update(AgentRow).values(name="x"),
    delete(AgentRow).where(AgentRow.id == "x"),
]
WITH_TENANT = [
    select(AgentRow).where(AgentRow.tenant_id == "a"),
    select(AgentRow).where(AgentRow.tenant_id.in_(["a", "b"])),
    select(AgentRow).where((AgentRow.tenant_id == "a") | (AgentRow.tenant_id == "_platform")),
    select(func.count()).where(AgentRow.tenant_id == "a"),
    select(AgentRow)
    .join(
        AgentVersionRow,
        (AgentVersionRow.agent_id == AgentRow.id) & (AgentVersionRow.tenant_id == AgentRow.tenant_id),
    )
    .where(AgentRow.tenant_id == "a"),
    tenant_select(AgentRow, AgentVersionRow).join(AgentVersionRow, AgentVersionRow.agent_id == AgentRow.id),
    tenant_select(aliased(AgentRow).id),
    tenant_select(AgentRow).where(AgentRow.id.in_(tenant_select(AgentVersionRow.agent_id))),
    select(func.count()).select_from(tenant_select(AgentRow).subquery()),
    tenant_update(AgentRow).values(name="x"),
    tenant_delete(AgentRow).where(AgentRow.id == "x"),
    all_tenants(select(AgentRow.id, AgentRow.tenant_id), "start-up recovery reads every tenant"),
]


@pytest.mark.parametrize("statement", WITHOUT_TENANT, ids=str)
def test_a_statement_without_the_tenant_is_caught(statement) -> None:
    assert unscoped_tables(statement), str(statement)


@pytest.mark.parametrize("statement", WITH_TENANT, ids=str)
def test_a_statement_with_the_tenant_passes(statement) -> None:
    assert unscoped_tables(statement) == [], str(statement)


def test_the_helpers_use_the_bound_tenant_and_refuse_none() -> None:
    set_tenant("acme")
    try:
        compiled = tenant_select(AgentRow.id).compile()
        assert "agents.tenant_id = " in str(compiled) and "acme" in compiled.params.values()
        assert tenant_select(AgentRow, tenant="other").compile().params == {"tenant_id_1": "other"}
    finally:
        set_tenant("default")
    with pytest.raises(TenantUnbound):
        tenant_is(AgentRow, tenant="")
    with pytest.raises(TypeError):
        tenant_select(func.count())  # no tenant table: say which table is meant
    with pytest.raises(ValueError):
        all_tenants(select(AgentRow), "")  # an escape hatch says why


async def test_the_guard_refuses_a_query_without_the_tenant_and_hides_other_tenants_rows(
    database_url,
) -> None:
    db = Database(database_url)
    await db.upgrade()
    guard_sessions(applies=lambda: True)  # this test's own statements are checked too
    try:
        async with db.session() as session:
            for tenant in ("a", "b"):
                session.add(AgentRow(id=f"agent-{tenant}", tenant_id=tenant, name="n", role="r"))
        async with db.session() as session:
            with pytest.raises(TenantUnscoped, match="agents"):
                await session.scalars(select(AgentRow))  # as a hand-written query without the tenant would
            with pytest.raises(TenantUnscoped):
                await session.get(AgentRow, "agent-a")  # by primary key alone: any tenant's row
            with pytest.raises(TenantUnscoped):
                await session.execute(update(AgentRow).values(name="m"))
        set_tenant("a")
        async with db.session() as session:
            assert [row.id for row in await session.scalars(tenant_select(AgentRow))] == ["agent-a"]
            assert await tenant_get(session, AgentRow, "agent-b") is None
            row = await tenant_get(session, AgentRow, "agent-a")
            row.name = "changed"  # the unit of work's own UPDATE is of a row read through the tenant
            recovery = all_tenants(select(AgentRow.id).order_by(AgentRow.id), "test: every tenant")
            assert list(await session.scalars(recovery)) == ["agent-a", "agent-b"]
    finally:
        set_tenant("default")
        guard_sessions(applies=made_by_the_platform)
        await db.close()


async def test_the_suite_guard_fails_a_platform_query_without_the_tenant(client, monkeypatch) -> None:
    """The platform's code written without the tenant fails any test that reaches it (here: the agent
    registry's roster read, as it would be with its filter forgotten)."""
    import agent_lightning.agents.service as agents

    monkeypatch.setattr(agents, "tenant_select", lambda *entities, tenant=None: select(*entities))
    client.app.state.platform.agent_service._changed()
    with pytest.raises(TenantUnscoped, match="agents"):
        await client.get("/api/v2/agents")
