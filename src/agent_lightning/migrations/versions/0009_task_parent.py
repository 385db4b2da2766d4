"""tasks: the parent a task was delegated by

Revision ID: 0009_task_parent
Revises: 0001
Create Date: 2026-12-04 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_task_parent"
down_revision = "0001"
branch_labels = ("orchestrator",)
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("parent_task_id", sa.String(length=64), nullable=True))
        batch.create_index(batch.f("ix_tasks_parent_task_id"), ["parent_task_id"])


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_index(batch.f("ix_tasks_parent_task_id"))
        batch.drop_column("parent_task_id")
