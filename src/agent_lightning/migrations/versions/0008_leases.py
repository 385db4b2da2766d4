"""leases: a fencing token on every leased row; executions get a lease too

Revision ID: 0008_leases
Revises: 0007_workflows
Create Date: 2026-12-03 10:00:00
"""

import sqlalchemy as sa
from alembic import op

import agent_lightning.core.db

revision = "0008_leases"
down_revision = "0007_workflows"
branch_labels = None
depends_on = None

UTC = agent_lightning.core.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    for table in ("tasks", "executions", "workflow_runs"):
        op.add_column(table, sa.Column("lease_token", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("executions", sa.Column("lease_until", UTC, nullable=True))
    op.add_column(
        "executions", sa.Column("run_async", sa.Boolean(), nullable=False, server_default=sa.false())
    )


def downgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("run_async")
        batch.drop_column("lease_until")
        batch.drop_column("lease_token")
    for table in ("tasks", "workflow_runs"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("lease_token")
