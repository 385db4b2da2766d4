"""validation reports

Revision ID: 0006_validation
Revises: 0001
Create Date: 2026-12-02 01:20:00
"""

import sqlalchemy as sa
from alembic import op

import agent_lightning.core.db

revision = "0006_validation"
down_revision = "0001"
branch_labels = ("validation",)
depends_on = None

UTC = agent_lightning.core.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "validation_reports",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("blocked", sa.Boolean(), nullable=False),
        sa.Column("checks", sa.JSON(), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("recommendation", sa.Text(), nullable=False),
        sa.Column("sanitized_task", sa.Text(), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_validation_reports")),
    )
    op.create_index(op.f("ix_validation_reports_tenant_id"), "validation_reports", ["tenant_id"])
    op.create_index(
        "ix_validation_reports_tenant_task", "validation_reports", ["tenant_id", "task_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_validation_reports_tenant_task", table_name="validation_reports")
    op.drop_index(op.f("ix_validation_reports_tenant_id"), table_name="validation_reports")
    op.drop_table("validation_reports")
