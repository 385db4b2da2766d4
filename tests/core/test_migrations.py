"""Migrations under concurrent starts: servers started together on a fresh database all come up (the migration
takes a lock: a PostgreSQL advisory lock, a lock file beside SQLite), and a server that does not migrate
itself (ALP_MIGRATE_ON_START=false) refuses an out-of-date schema until `alp db upgrade` ran. The migrated
schema is what the models declare (no drift), and every head of the revision tree is on a branch labelled with
its service."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from support import free_port, running_app, start_alp, wait_healthy

from agent_lightning.agents.fleet import DEFAULT_FLEET
from agent_lightning.core.db import Database, SchemaOutdated, alembic_config
from agent_lightning.migrations.metadata import include_object, target_metadata

SERVICE_BRANCHES = {
    "agents",
    "auth",
    "knowledge",
    "models",
    "orchestrator",
    "routing",
    "validation",
    "workflows",
}


@pytest.mark.slow
def test_three_servers_started_together_on_a_fresh_database_all_come_up(
    fresh_database_url: str, tmp_path: Path
):
    ports = {"execution-1": free_port(), "execution-2": free_port(), "orchestrator": free_port()}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    env = {
        "ALP_DATABASE_URL": fresh_database_url,
        "ALP_DATA_DIR": str(tmp_path / "data"),
        "ALP_EXECUTION_URLS": f"{urls['execution-1']},{urls['execution-2']}",
        "ALP_AGENTS_URL": urls["execution-1"],
        "ALP_POLICY_EMBEDDINGS": "false",
    }
    processes = {}
    try:
        for name, port in ports.items():  # all at once: each migrates and seeds at start
            processes[name] = start_alp(
                "serve", name.split("-")[0], "--port", str(port), env=env, log=tmp_path / f"{name}.log"
            )
        for name, process in processes.items():
            wait_healthy(urls[name], process, tmp_path / f"{name}.log")
        agents = httpx.get(urls["execution-2"] + "/api/v2/agents").json()["items"]
        assert len(agents) == len(DEFAULT_FLEET), "the fleet is seeded once"
        for name, process in processes.items():
            assert process.poll() is None, f"{name} stopped"
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            process.wait(30)


async def test_a_server_that_does_not_migrate_refuses_an_old_schema_until_the_upgrade(
    settings, provider, fresh_database_url
):
    settings = settings.model_copy(update={"database_url": fresh_database_url})
    with pytest.raises(SchemaOutdated, match="run `alp db upgrade` first"):
        async with running_app(settings, provider, migrate=False):
            pass
    db = Database.configured(settings)
    await db.upgrade()  # what `alp db upgrade` runs (tests/cli/test_cli.py runs the command)
    await db.close()
    async with running_app(settings, provider, migrate=False) as client:
        assert (await client.get("/health/ready")).status_code == 200


async def test_the_migrated_schema_is_what_the_models_declare(fresh_database_url: str):
    # `alembic check` on this backend: a model changed without its migration (or the reverse) is a difference.
    db = Database(fresh_database_url)
    await db.upgrade()
    async with db.engine.connect() as conn:
        differences = await conn.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(
                    sync, opts={"compare_type": True, "include_object": include_object}
                ),
                target_metadata,
            )
        )
    await db.close()
    assert differences == []


def test_every_head_is_on_a_branch_labelled_with_its_service():
    # A service's migrations form its own branch off 0001 (`alp db upgrade` applies every head); the branch's
    # first revision carries the service's name (`branch_labels`), so `alembic upgrade knowledge@head` works
    # and a new head outside a labelled branch shows up here.
    script = ScriptDirectory.from_config(alembic_config())
    labels_of_heads = {}
    for head in script.get_heads():
        labels = set()
        for revision in script.iterate_revisions(head, "base"):
            labels |= set(revision.branch_labels)
        labels_of_heads[head] = labels
    assert all(len(labels) == 1 for labels in labels_of_heads.values()), labels_of_heads
    assert set().union(*labels_of_heads.values()) <= SERVICE_BRANCHES
