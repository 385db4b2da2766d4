"""shared knowledge: a tenant opts in; items any operator published as shared go back to their tenant

Revision ID: 0011_knowledge_sharing
Revises: 0004_knowledge_memory
Create Date: 2026-12-04 01:00:00
"""

import sqlalchemy as sa
from alembic import op

import agent_lightning.core.db

revision = "0011_knowledge_sharing"
down_revision = "0004_knowledge_memory"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "knowledge_sharing",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("use_shared", sa.Boolean(), nullable=False),
        sa.Column("updated_at", agent_lightning.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_knowledge_sharing")),
    )
    # Any operator could publish before: nothing published so far is trusted. The items stay their tenant's;
    # a platform admin publishes again what every tenant should see.
    op.execute("UPDATE knowledge_items SET scope = 'tenant' WHERE scope = 'shared' AND agent_id IS NULL")
    op.execute("UPDATE knowledge_items SET scope = 'agent' WHERE scope = 'shared' AND agent_id IS NOT NULL")


def downgrade() -> None:
    op.drop_table("knowledge_sharing")
