"""model registry and usage

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 06:35:15.638485
"""

import sqlalchemy as sa
from alembic import op

import agent_lightning.core.db

revision = "0002"
down_revision = "0001"
branch_labels = ("models",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_aliases",
        sa.Column("id", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("deployments", sa.JSON(), nullable=False),
        sa.Column("fallbacks", sa.JSON(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("created_at", agent_lightning.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", agent_lightning.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_aliases")),
    )
    op.create_table(
        "model_usage",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=True),
        sa.Column("provider_model", sa.String(length=200), nullable=True),
        sa.Column("deployment", sa.String(length=300), nullable=True),
        sa.Column("task_id", sa.String(length=64), nullable=True),
        sa.Column("agent_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("stream", sa.Boolean(), nullable=False),
        sa.Column("cached", sa.Boolean(), nullable=False),
        sa.Column("created_at", agent_lightning.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_usage")),
    )
    with op.batch_alter_table("model_usage", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_model_usage_agent_id"), ["agent_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_model_usage_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_model_usage_model"), ["model"], unique=False)
        batch_op.create_index(batch_op.f("ix_model_usage_task_id"), ["task_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_model_usage_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("model_usage", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_usage_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_model_usage_task_id"))
        batch_op.drop_index(batch_op.f("ix_model_usage_model"))
        batch_op.drop_index(batch_op.f("ix_model_usage_created_at"))
        batch_op.drop_index(batch_op.f("ix_model_usage_agent_id"))

    op.drop_table("model_usage")
    op.drop_table("model_aliases")
