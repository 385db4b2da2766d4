"""knowledge items: the fingerprint of the document as sent, so a client can skip what is stored already

Revision ID: 0012_knowledge_source_hash
Revises: 0011_knowledge_sharing
Create Date: 2026-12-04 02:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_knowledge_source_hash"
down_revision = "0011_knowledge_sharing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("knowledge_items", sa.Column("source_hash", sa.String(length=64), nullable=True))
    op.create_index("ix_knowledge_items_tenant_source_hash", "knowledge_items", ["tenant_id", "source_hash"])


def downgrade() -> None:
    op.drop_index("ix_knowledge_items_tenant_source_hash", table_name="knowledge_items")
    op.drop_column("knowledge_items", "source_hash")
