"""tenant tool policies: which tool permissions a tenant's agents may have

Revision ID: 0013_tool_policies
Revises: 0008_agent_steps
Create Date: 2026-12-04 06:00:00
"""

import sqlalchemy as sa
from alembic import op

import agent_lightning.core.db

revision = "0013_tool_policies"
down_revision = "0008_agent_steps"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tool_policies",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("allow", sa.JSON(), nullable=True),
        sa.Column("deny", sa.JSON(), nullable=False),
        sa.Column("updated_at", agent_lightning.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_tool_policies")),
    )


def downgrade() -> None:
    op.drop_table("tool_policies")
