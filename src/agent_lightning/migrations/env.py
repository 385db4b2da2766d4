"""Alembic environment: runs on a connection handed over by `Database.upgrade`, or on ALP_DATABASE_URL."""

from __future__ import annotations

import asyncio

from alembic import context

from agent_lightning.core.config import get_settings
from agent_lightning.migrations.metadata import include_object, target_metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=include_object,
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
        db = Database.configured(get_settings())
        async with db.engine.begin() as conn:
            await conn.run_sync(_run)
        await db.close()

    asyncio.run(_main())


run_migrations_online()
