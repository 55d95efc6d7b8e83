"""key ring version and worker heartbeats

Revision ID: 0003
Revises: 0002

Running workers follow a master key rotation by themselves: each reads the key ring's
version about once a second and reloads its keys when it changed, and records which keys
it reads and writes with; `keys rotate` waits on those records before it writes with a
new key and before it retires an old one.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    key_ring = op.create_table(
        "key_ring",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("key_ids", sa.Text(), nullable=False),
        sa.Column("retired_key_ids", sa.Text(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_ring")),
    )
    # The one row exists from the start, so a commit can always lock it (see store/keys).
    op.bulk_insert(
        key_ring,
        [
            {
                "id": 1,
                "version": 0,
                "key_ids": "",
                "retired_key_ids": "",
                "changed_at": datetime.now(UTC),
            }
        ],
    )
    op.create_table(
        "key_ring_workers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("keyring_version", sa.Integer(), nullable=False),
        sa.Column("key_ids", sa.Text(), nullable=False),
        sa.Column("writes_with_key_id", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_ring_workers")),
    )
    with op.batch_alter_table("key_ring_workers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_key_ring_workers_seen_at"), ["seen_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("key_ring_workers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_key_ring_workers_seen_at"))
    op.drop_table("key_ring_workers")
    op.drop_table("key_ring")
