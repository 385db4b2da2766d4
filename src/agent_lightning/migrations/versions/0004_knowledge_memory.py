"""knowledge items and chunks (FTS5 / tsvector, pgvector when available), memory sessions, messages and
memories; what each attempt and execution used

Revision ID: 0004_knowledge_memory
Revises: 0001
Create Date: 2026-11-25 10:00:00
"""

import sqlalchemy as sa
from alembic import op

import agent_lightning.core.db

revision = "0004_knowledge_memory"
down_revision = "0001"
branch_labels = ("knowledge",)
depends_on = None

UTC = agent_lightning.core.db.UTCDateTime(timezone=True)
DIMENSIONS = 384  # all-MiniLM-L6-v2; other models are searched exactly in the app

SQLITE_FTS = [
    "CREATE VIRTUAL TABLE knowledge_chunks_fts USING fts5(text, heading, content='knowledge_chunks', "
    "content_rowid='seq', tokenize='porter unicode61')",
    "CREATE TRIGGER knowledge_chunks_ai AFTER INSERT ON knowledge_chunks BEGIN "
    "INSERT INTO knowledge_chunks_fts(rowid, text, heading) VALUES (new.seq, new.text, new.heading); END",
    "CREATE TRIGGER knowledge_chunks_ad AFTER DELETE ON knowledge_chunks BEGIN "
    "INSERT INTO knowledge_chunks_fts(knowledge_chunks_fts, rowid, text, heading) "
    "VALUES ('delete', old.seq, old.text, old.heading); END",
    "CREATE TRIGGER knowledge_chunks_au AFTER UPDATE OF text, heading ON knowledge_chunks BEGIN "
    "INSERT INTO knowledge_chunks_fts(knowledge_chunks_fts, rowid, text, heading) "
    "VALUES ('delete', old.seq, old.text, old.heading); "
    "INSERT INTO knowledge_chunks_fts(rowid, text, heading) VALUES (new.seq, new.text, new.heading); END",
]
POSTGRES_FTS = [
    "ALTER TABLE knowledge_chunks ADD COLUMN tsv tsvector GENERATED ALWAYS AS "
    "(to_tsvector('english', coalesce(heading, '') || ' ' || text)) STORED",
    "CREATE INDEX ix_knowledge_chunks_tsv ON knowledge_chunks USING gin (tsv)",
]
PGVECTOR = [
    f"ALTER TABLE knowledge_chunks ADD COLUMN vec vector({DIMENSIONS})",
    "CREATE INDEX ix_knowledge_chunks_vec ON knowledge_chunks USING hnsw (vec vector_cosine_ops)",
]


def _tenant() -> sa.Column:
    return sa.Column("tenant_id", sa.String(length=64), nullable=False)


def _knowledge_tables() -> None:
    op.create_table(
        "knowledge_items",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("scope", sa.String(length=10), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("origin", sa.String(length=20), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("usage_count", sa.Integer(), nullable=False),
        sa.Column("relevance", sa.Float(), nullable=False),
        sa.Column("embedding_model", sa.String(length=120), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.Column("last_used_at", UTC, nullable=True),
        _tenant(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_items")),
    )
    for column in ("category", "scope", "agent_id", "task_id", "content_hash", "tenant_id"):
        op.create_index(op.f(f"ix_knowledge_items_{column}"), "knowledge_items", [column])
    op.create_index("ix_knowledge_items_tenant_created", "knowledge_items", ["tenant_id", "created_at"])
    op.create_table(
        "knowledge_chunks",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("heading", sa.String(length=500), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.Column("embedding_model", sa.String(length=120), nullable=False),
        _tenant(),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["knowledge_items.id"],
            name=op.f("fk_knowledge_chunks_item_id_knowledge_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_knowledge_chunks")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_knowledge_chunks_item_id"), "knowledge_chunks", ["item_id"])
    op.create_index(op.f("ix_knowledge_chunks_tenant_id"), "knowledge_chunks", ["tenant_id"])
    op.create_table(
        "knowledge_uses",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("reward", sa.Float(), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        _tenant(),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["knowledge_items.id"],
            name=op.f("fk_knowledge_uses_item_id_knowledge_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_uses")),
    )
    for column in ("task_id", "item_id", "tenant_id"):
        op.create_index(op.f(f"ix_knowledge_uses_{column}"), "knowledge_uses", [column])


def _memory_tables() -> None:
    op.create_table(
        "memory_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("summarized_upto", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        _tenant(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_memory_sessions")),
    )
    op.create_index(op.f("ix_memory_sessions_tenant_id"), "memory_sessions", ["tenant_id"])
    op.create_index("ix_memory_sessions_user_agent", "memory_sessions", ["tenant_id", "user_id", "agent_id"])
    op.create_table(
        "memory_messages",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        _tenant(),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["memory_sessions.id"],
            name=op.f("fk_memory_messages_session_id_memory_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_memory_messages")),
    )
    for column in ("session_id", "user_id", "tenant_id"):
        op.create_index(op.f(f"ix_memory_messages_{column}"), "memory_messages", [column])
    op.create_table(
        "memories",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=True),
        sa.Column("session_id", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.Column("embedding_model", sa.String(length=120), nullable=False),
        sa.Column("relevance", sa.Float(), nullable=False),
        sa.Column("access_count", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.Column("last_accessed_at", UTC, nullable=True),
        sa.Column("expires_at", UTC, nullable=True),
        _tenant(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_memories")),
    )
    op.create_index(op.f("ix_memories_tenant_id"), "memories", ["tenant_id"])
    op.create_index(op.f("ix_memories_expires_at"), "memories", ["expires_at"])
    op.create_index("ix_memories_user_kind", "memories", ["tenant_id", "user_id", "kind"])


def _usage_columns() -> None:
    for table in ("attempts", "executions"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(sa.Column("knowledge_used", sa.JSON(), nullable=True))
            batch_op.add_column(sa.Column("memory_used", sa.JSON(), nullable=True))


def _pgvector() -> None:
    """The vector column and HNSW index, when the server has pgvector (a savepoint keeps a refusal
    harmless)."""
    bind = op.get_bind()
    if not bind.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")).first():
        return
    savepoint = bind.begin_nested()
    try:
        bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS vector"))
        for statement in PGVECTOR:
            bind.execute(sa.text(statement))
        savepoint.commit()
    except sa.exc.DBAPIError:
        savepoint.rollback()


def upgrade() -> None:
    _knowledge_tables()
    _memory_tables()
    _usage_columns()
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_FTS:
            op.execute(statement)
    else:
        for statement in POSTGRES_FTS:
            op.execute(statement)
        _pgvector()


def downgrade() -> None:
    for table in ("attempts", "executions"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("memory_used")
            batch_op.drop_column("knowledge_used")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS knowledge_chunks_fts")
    for table in (
        "memories",
        "memory_messages",
        "memory_sessions",
        "knowledge_uses",
        "knowledge_chunks",
        "knowledge_items",
    ):
        op.drop_table(table)
