"""What the migrations must build: every service's tables (each `tables.py` registers its own on `Base`),
and which objects of the database are left out of the comparison.

env.py hands `target_metadata` and `include_object` to Alembic (autogenerate, `alembic check`), and
tests/core/test_migrations.py compares a freshly migrated database with them on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from agent_lightning.agents import tables as _agents  # noqa: F401  (registers its tables)
from agent_lightning.auth import tables as _auth  # noqa: F401
from agent_lightning.core.db import Base
from agent_lightning.execution import tables as _execution  # noqa: F401
from agent_lightning.knowledge import tables as _knowledge  # noqa: F401
from agent_lightning.memory import tables as _memory  # noqa: F401
from agent_lightning.models import tables as _models  # noqa: F401
from agent_lightning.orchestrator import tables as _orchestrator  # noqa: F401
from agent_lightning.secrets import tables as _secrets  # noqa: F401
from agent_lightning.validation import tables as _validation  # noqa: F401
from agent_lightning.workflows import tables as _workflows  # noqa: F401

target_metadata = Base.metadata

# The knowledge service's search structures, made by raw SQL per dialect in 0004_knowledge_memory (the models
# cannot declare them): SQLite's FTS5 table with its shadow tables; PostgreSQL's generated tsvector column,
# the pgvector column and their indexes.
_FULLTEXT_TABLE = "knowledge_chunks_fts"
_DIALECT_COLUMNS = {("knowledge_chunks", "tsv"), ("knowledge_chunks", "vec")}
_DIALECT_INDEXES = {"ix_knowledge_chunks_tsv", "ix_knowledge_chunks_vec"}


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Whether Alembic compares this object (False for the dialect-specific search structures above)."""
    if type_ == "table":
        return not (name or "").startswith(_FULLTEXT_TABLE)
    if type_ == "column":
        return (obj.table.name, name) not in _DIALECT_COLUMNS
    if type_ == "index":
        return name not in _DIALECT_INDEXES
    return True
