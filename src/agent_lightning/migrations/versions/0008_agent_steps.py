"""agent runs: execution steps; agents' tool settings (approval, MCP servers, max steps, tool choice)

Revision ID: 0008_agent_steps
Revises: 0001
Create Date: 2026-12-04 09:00:00
"""

import sqlalchemy as sa
from alembic import op

import agent_lightning.core.db

revision = "0008_agent_steps"
down_revision = "0001"
branch_labels = ("agents",)
depends_on = None

UTC = agent_lightning.core.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "execution_steps",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("execution_id", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("call_id", sa.String(length=120), nullable=True),
        sa.Column("arguments", sa.JSON(), nullable=True),
        sa.Column("tool_calls", sa.JSON(), nullable=True),
        sa.Column("output", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_kind", sa.String(length=20), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.Column("started_at", UTC, nullable=False),
        sa.Column("finished_at", UTC, nullable=True),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_execution_steps")),
        sa.UniqueConstraint("execution_id", "number", name="uq_execution_steps_execution_number"),
    )
    op.create_index(op.f("ix_execution_steps_execution_id"), "execution_steps", ["execution_id"])
    op.create_index(op.f("ix_execution_steps_tenant_id"), "execution_steps", ["tenant_id"])
    op.create_index("ix_execution_steps_tenant_task", "execution_steps", ["tenant_id", "task_id", "number"])
    with op.batch_alter_table("agent_versions") as batch:
        batch.add_column(sa.Column("require_approval", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("mcp_servers", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("max_steps", sa.Integer(), nullable=False, server_default="6"))
        batch.add_column(
            sa.Column("tool_choice", sa.String(length=16), nullable=False, server_default="auto")
        )


def downgrade() -> None:
    with op.batch_alter_table("agent_versions") as batch:
        for column in ("tool_choice", "max_steps", "mcp_servers", "require_approval"):
            batch.drop_column(column)
    op.drop_index("ix_execution_steps_tenant_task", table_name="execution_steps")
    op.drop_index(op.f("ix_execution_steps_tenant_id"), table_name="execution_steps")
    op.drop_index(op.f("ix_execution_steps_execution_id"), table_name="execution_steps")
    op.drop_table("execution_steps")
