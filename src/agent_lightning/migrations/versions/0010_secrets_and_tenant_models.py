"""secrets store; model aliases per tenant (existing ones become platform-wide)

Revision ID: 0010_secrets_tenant_models
Revises: 0002
Create Date: 2026-12-04 00:30:00
"""

import sqlalchemy as sa
from alembic import op

import agent_lightning.core.db

revision = "0010_secrets_tenant_models"
down_revision = "0002"
branch_labels = None
depends_on = None

UTC = agent_lightning.core.db.UTCDateTime(timezone=True)
PLATFORM = "_platform"


def upgrade() -> None:
    op.create_table(
        "secrets",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.Column("updated_by", sa.String(length=120), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "name", name=op.f("pk_secrets")),
    )
    # Aliases were global, registered by any tenant's admin: they stay visible to every tenant as
    # platform-wide aliases (only a platform admin changes them now). Inline keys are encrypted when the model
    # service loads.
    with op.batch_alter_table("model_aliases", recreate="always") as batch:
        batch.add_column(
            sa.Column("tenant_id", sa.String(length=64), nullable=False, server_default=PLATFORM)
        )
        batch.drop_constraint("pk_model_aliases", type_="primary")
        batch.create_primary_key("pk_model_aliases", ["tenant_id", "id"])


def downgrade() -> None:
    with op.batch_alter_table("model_aliases", recreate="always") as batch:
        batch.drop_constraint("pk_model_aliases", type_="primary")
        batch.create_primary_key("pk_model_aliases", ["id"])
        batch.drop_column("tenant_id")
    op.drop_table("secrets")
