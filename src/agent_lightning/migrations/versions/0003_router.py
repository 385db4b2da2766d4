"""routing policy per tenant; decisions by time

Revision ID: 0003_router
Revises: 0001
Create Date: 2026-11-25 08:15:00
"""

import sqlalchemy as sa
from alembic import op

import agent_lightning.core.db

revision = "0003_router"
down_revision = "0001"
branch_labels = ("routing",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policy_config",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("updated_at", agent_lightning.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_config")),
        sa.UniqueConstraint("tenant_id", name="uq_policy_config_tenant"),
    )
    with op.batch_alter_table("policy_config", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_policy_config_tenant_id"), ["tenant_id"], unique=False)
    with op.batch_alter_table("routing_decisions", schema=None) as batch_op:
        batch_op.create_index("ix_routing_decisions_tenant_id_id", ["tenant_id", "id"], unique=False)
    with op.batch_alter_table("rewards", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rewards_decision_id"), ["decision_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("rewards", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rewards_decision_id"))
    with op.batch_alter_table("routing_decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_routing_decisions_tenant_id_id")
    with op.batch_alter_table("policy_config", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_policy_config_tenant_id"))
    op.drop_table("policy_config")
