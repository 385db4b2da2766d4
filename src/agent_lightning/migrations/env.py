"""Alembic environment: runs on a connection handed over by `Database.upgrade`, or on ALP_DATABASE_URL."""

from __future__ import annotations

import asyncio

from alembic import context

from agent_lightning.agents import tables as _agents  # noqa: F401  (registers tables)
from agent_lightning.auth import tables as _auth  # noqa: F401
from agent_lightning.core.config import get_settings
from agent_lightning.core.db import Base
from agent_lightning.execution import tables as _execution  # noqa: F401
from agent_lightning.knowledge import tables as _knowledge  # noqa: F401
from agent_lightning.memory import tables as _memory  # noqa: F401
from agent_lightning.models import tables as _models  # noqa: F401
from agent_lightning.orchestrator import tables as _orchestrator  # noqa: F401
from agent_lightning.validation import tables as _validation  # noqa: F401
from agent_lightning.workflows import tables as _workflows  # noqa: F401

target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from agent_lightning.core.db import Database

    async def _main() -> None:
        db = Database(get_settings().resolved_database_url())
        async with db.engine.begin() as conn:
            await conn.run_sync(_run)
        await db.close()

    asyncio.run(_main())


run_migrations_online()
