"""The tenant of the current request or task, and the only way to query a table that has `tenant_id`.

Every row of a tenant table belongs to one tenant, so isolation is a filter: `tenant_select`, `tenant_update`,
`tenant_delete` and `tenant_get` add `tenant_id == <the current tenant>` (or the tenant passed) to every
statement they build, and refuse to build one without a tenant. The few reads that must see every tenant
(start-up recovery, a worker taking a queued task, erasure and sweeps across tenants, platform
administration) say so with `all_tenants(statement, why)`: the reason is on the statement, and grep finds
them.

`unscoped_tables` tells which tenant tables a statement reads or changes without a tenant constraint;
`guard_sessions` makes every ORM session raise `TenantUnscoped` on such a statement (the test suite runs with
it on: tests/core/test_tenant_scoping.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

from sqlalchemy import Delete, Select, Update, delete, event, inspect, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, QueryableAttribute, Session
from sqlalchemy.sql import operators, visitors
from sqlalchemy.sql.elements import (
    BinaryExpression,
    BindParameter,
    BooleanClauseList,
    ColumnClause,
    ColumnElement,
    Grouping,
)
from sqlalchemy.sql.selectable import Alias, FromClause, Join, TableClause

DEFAULT_TENANT = "default"
PLATFORM = "_platform"
"""The owner of platform-wide rows (model aliases, secrets, shared knowledge) that only a platform admin may
change. No tenant can be called this: tenant ids start with a letter or digit (`TENANT_PATTERN`)."""
TENANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"
TENANT_COLUMN = "tenant_id"
ALL_TENANTS = "all_tenants"
"""The execution option that marks a statement as reading or changing rows of every tenant (its value:
why)."""

_tenant: ContextVar[str] = ContextVar("tenant_id", default=DEFAULT_TENANT)

Model = TypeVar("Model")


class TenantUnbound(RuntimeError):
    """A tenant-scoped statement was asked for without a tenant."""


class TenantUnscoped(RuntimeError):
    """A statement reads or changes a tenant table without constraining `tenant_id` (and is not marked
    `all_tenants`)."""


def current_tenant() -> str:
    """The tenant every query of this request or task is filtered by."""
    return _tenant.get()


def set_tenant(tenant_id: str) -> None:
    """Bind the tenant for the rest of this context (a request, a queued task)."""
    _tenant.set(tenant_id)


# -- building statements ----------------------------------------------------------------------------


def _resolve(tenant: str | None) -> str:
    resolved = current_tenant() if tenant is None else tenant
    if not resolved:
        raise TenantUnbound("A tenant-scoped statement needs a tenant; none is bound.")
    return resolved


def _tenant_column(entity: Any) -> Any:
    """The `tenant_id` column of a mapped class (or alias), a table, or of the table of a column."""
    if isinstance(entity, QueryableAttribute):  # Model.column: the tenant of its (aliased) class
        return getattr(entity.parent.entity, TENANT_COLUMN)
    if isinstance(entity, ColumnElement):
        return entity.table.c[TENANT_COLUMN]
    if isinstance(entity, FromClause):
        return entity.c[TENANT_COLUMN]
    return getattr(entity, TENANT_COLUMN)


def tenant_is(entity: Any, tenant: str | None = None) -> ColumnElement[bool]:
    """`entity.tenant_id == tenant` (the current tenant unless given), for a WHERE or a join's ON."""
    return _tenant_column(entity) == _resolve(tenant)


def tenant_select(*entities: Any, tenant: str | None = None) -> Select:
    """`select(*entities)` restricted to one tenant (the current one unless given): every tenant table among
    the entities (a mapped class, a table, or one of their columns) is filtered by it."""
    tenant = _resolve(tenant)
    criteria, seen = [], set()
    for entity in entities:
        try:
            column = _tenant_column(entity)
        except (AttributeError, KeyError):
            continue  # an expression (count(), a literal) or a table without tenants
        if column.table.name not in seen:
            seen.add(column.table.name)
            criteria.append(column == tenant)
    if not criteria:
        raise TypeError("tenant_select needs at least one entity of a table with tenant_id")
    return select(*entities).where(*criteria)


def tenant_update(model: Any, tenant: str | None = None) -> Update:
    """`update(model)` of one tenant's rows (the current tenant unless given)."""
    return update(model).where(tenant_is(model, tenant))


def tenant_delete(model: Any, tenant: str | None = None) -> Delete:
    """`delete(model)` of one tenant's rows (the current tenant unless given)."""
    return delete(model).where(tenant_is(model, tenant))


async def tenant_get(
    session: AsyncSession, model: type[Model], ident: Any, *, tenant: str | None = None
) -> Model | None:
    """The row of `model` with primary key `ident` if it belongs to the tenant (the current one unless
    given), else None: another tenant's row is as absent as a missing one."""
    keys = inspect(model).primary_key
    values = ident if isinstance(ident, tuple) else (ident,)
    statement = select(model).where(
        tenant_is(model, tenant), *(k == v for k, v in zip(keys, values, strict=True))
    )
    return await session.scalar(statement)


def all_tenants(statement: Any, why: str) -> Any:
    """Mark `statement` as one that reads or changes rows of every tenant: an escape hatch with its reason."""
    if not why:
        raise ValueError("all_tenants needs a reason")
    return statement.execution_options(**{ALL_TENANTS: why})


# -- checking statements ----------------------------------------------------------------------------


def _unwrap(clause: Any) -> Any:
    while isinstance(clause, Grouping):
        clause = clause.element
    return clause


def _tenant_of(clause: Any) -> str | None:
    """The table (by name) whose tenant_id `clause` is, or None."""
    clause = _unwrap(clause.__clause_element__() if hasattr(clause, "__clause_element__") else clause)
    if isinstance(clause, ColumnClause) and clause.name == TENANT_COLUMN and clause.table is not None:
        return clause.table.name
    return None


def _constraints(clause: Any) -> tuple[set[str], set[tuple[str, str]]]:
    """The tables whose tenant `clause` pins to a value when true, and the pairs of tables it makes share
    one (`a.tenant_id = b.tenant_id`)."""
    clause = _unwrap(clause)
    if isinstance(clause, BooleanClauseList):
        parts = [_constraints(c) for c in clause.clauses]
        if not parts:
            return set(), set()
        if clause.operator is operators.and_:
            return set().union(*(p[0] for p in parts)), set().union(*(p[1] for p in parts))
        if clause.operator is operators.or_:
            return set.intersection(*(p[0] for p in parts)), set()
        return set(), set()
    if isinstance(clause, BinaryExpression) and clause.operator in (operators.eq, operators.in_op):
        left, right = _tenant_of(clause.left), _tenant_of(clause.right)
        if left and right:
            return set(), {(left, right)} if clause.operator is operators.eq else set()
        for table, other in ((left, clause.right), (right, clause.left)):
            if table and isinstance(_unwrap(other), BindParameter):
                return {table}, set()
    return set(), set()


def _is_table(element: Any) -> bool:
    """A table or an alias of one (a subquery is checked as a statement of its own)."""
    return isinstance(element, TableClause) or (
        isinstance(element, Alias) and isinstance(element.element, TableClause)
    )


def _tables(froms: Any, ons: list[Any]) -> Iterator[FromClause]:
    for element in froms:
        if isinstance(element, Join):
            ons.append(element.onclause)
            yield from _tables((element.left, element.right), ons)
        else:
            yield element


def _unscoped(statement: Any) -> set[str]:
    ons: list[Any] = []
    if isinstance(statement, Select):
        froms = list(_tables(statement.get_final_froms(), ons))
    elif isinstance(statement, (Update, Delete)):
        froms = list(_tables([statement.table], ons))
    else:
        return set()
    tenant_tables = {f.name for f in froms if _is_table(f) and TENANT_COLUMN in f.c}
    if not tenant_tables:
        return set()
    pinned: set[str] = set()
    pairs: set[tuple[str, str]] = set()
    for clause in [statement.whereclause, *ons]:
        if clause is not None:
            found, shared = _constraints(clause)
            pinned |= found
            pairs |= shared
    while True:  # a table that shares its tenant with a pinned one is pinned too
        more = {b for a, b in pairs if a in pinned} | {a for a, b in pairs if b in pinned}
        if more <= pinned:
            break
        pinned |= more
    return tenant_tables - pinned


def unscoped_tables(statement: Any) -> list[str]:
    """The tenant tables `statement` (or a subquery of it) reads, changes or deletes from without constraining
    their tenant_id to a value; empty for statements marked `all_tenants`, inserts and raw SQL text."""
    if statement.get_execution_options().get(ALL_TENANTS):
        return []
    statements = [statement] + [
        element
        for element in visitors.iterate(statement)
        if element is not statement and isinstance(element, (Select, Update, Delete))
    ]
    outer = statement if isinstance(statement, (Select, Update, Delete)) else None
    pinned_outside = set()
    if outer is not None:
        where = [outer.whereclause] if outer.whereclause is not None else []
        pinned_outside = set().union(set(), *(_constraints(c)[0] for c in where))
    missing: set[str] = set()
    for index, element in enumerate(statements):
        if element.get_execution_options().get(ALL_TENANTS):
            continue  # a subquery marked as reading every tenant
        found = _unscoped(element)
        missing |= found if index == 0 else found - pinned_outside  # a correlated table is pinned outside
    return sorted(missing)


def _always() -> bool:
    return True


_applies: Callable[[], bool] = _always


def _check(state: ORMExecuteState) -> None:
    if state.is_column_load or state.is_relationship_load or state.is_insert:
        return  # an object loaded through a scoped read, or a new row that carries its tenant
    if state.execution_options.get(ALL_TENANTS):
        return
    missing = unscoped_tables(state.statement)
    if missing and _applies():
        raise TenantUnscoped(
            f"A statement on {', '.join(missing)} does not constrain tenant_id: build it with "
            f"tenant_select/tenant_update/tenant_delete/tenant_get (core/tenancy.py), or mark it with "
            f"all_tenants(statement, why) if it must see every tenant. Statement: {state.statement}"
        )


def guard_sessions(on: bool = True, *, applies: Callable[[], bool] | None = None) -> bool:
    """Make every ORM session raise `TenantUnscoped` for a statement that reads or changes a tenant table
    without its tenant (on for the test suite; `on=False` removes the check), when `applies()` says so (the
    suite's guard asks whether the platform's code, not the test's, made the statement). Returns whether it
    was on."""
    global _applies
    if applies is not None:
        _applies = applies
    was = event.contains(Session, "do_orm_execute", _check)
    if on and not was:
        event.listen(Session, "do_orm_execute", _check)
    elif not on and was:
        event.remove(Session, "do_orm_execute", _check)
    return was
