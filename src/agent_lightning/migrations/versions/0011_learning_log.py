"""learned routing state as a log of lessons (rewards with a place) folded into per-part snapshots

Revision ID: 0011_learning_log
Revises: 0003_router
Create Date: 2026-12-03 10:00:00

The whole-state JSON rows of `policy_state` become the snapshots of their logs: each is kept as the
global part of its policy (tagged as the old JSON encoding, which the policies still read) at the place
of its version, and the log's head starts there.
"""

import json

import sqlalchemy as sa
from alembic import op

import agent_lightning.core.db

revision = "0011_learning_log"
down_revision = "0003_router"
branch_labels = None
depends_on = None

UTC = agent_lightning.core.db.UTCDateTime(timezone=True)
LEGACY_JSON = b"J"  # orchestrator/learning.py: a whole state in the old JSON encoding


def upgrade() -> None:
    with op.batch_alter_table("rewards", schema=None) as batch_op:
        batch_op.add_column(sa.Column("policy", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("seq", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("cost", sa.Float(), nullable=False, server_default="0"))
        batch_op.create_unique_constraint("uq_rewards_tenant_policy_seq", ["tenant_id", "policy", "seq"])
    heads = op.create_table(
        "policy_heads",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("policy", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "policy", name=op.f("pk_policy_heads")),
    )
    parts = op.create_table(
        "policy_parts",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("policy", sa.String(length=64), nullable=False),
        sa.Column("part", sa.String(length=200), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "policy", "part", name=op.f("pk_policy_parts")),
    )
    old = sa.table(
        "policy_state",
        sa.column("tenant_id"),
        sa.column("name"),
        sa.column("version"),
        sa.column("state", sa.JSON()),
        sa.column("updated_at", UTC),
    )
    rows = (
        op.get_bind()
        .execute(sa.select(old.c.tenant_id, old.c.name, old.c.version, old.c.state, old.c.updated_at))
        .all()
    )
    if rows:
        op.bulk_insert(heads, [{"tenant_id": t, "policy": n, "seq": v} for t, n, v, _, _ in rows])
        op.bulk_insert(
            parts,
            [
                {
                    "tenant_id": t,
                    "policy": n,
                    "part": "",
                    "seq": v,
                    "updated_at": at,
                    "data": LEGACY_JSON + json.dumps(s).encode(),
                }
                for t, n, v, s, at in rows
            ],
        )
    with op.batch_alter_table("policy_state", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_policy_state_tenant_id"))
    op.drop_table("policy_state")


def downgrade() -> None:
    op.create_table(
        "policy_state",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_state")),
        sa.UniqueConstraint("tenant_id", "name", name="uq_policy_state_tenant_name"),
    )
    with op.batch_alter_table("policy_state", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_policy_state_tenant_id"), ["tenant_id"], unique=False)
    op.drop_table("policy_parts")
    op.drop_table("policy_heads")
    with op.batch_alter_table("rewards", schema=None) as batch_op:
        batch_op.drop_constraint("uq_rewards_tenant_policy_seq", type_="unique")
        batch_op.drop_column("cost")
        batch_op.drop_column("seq")
        batch_op.drop_column("policy")
