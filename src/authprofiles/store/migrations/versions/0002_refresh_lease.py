"""refresh lease on connections

Revision ID: 0002
Revises: 0001

A refresh is claimed by one conditional UPDATE that records who refreshes until when;
the identity provider is then called outside any transaction, and the result is written
back only while the lease is still the claimant's.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("refresh_lease_owner", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("refresh_lease_until", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.drop_column("refresh_lease_until")
        batch_op.drop_column("refresh_lease_owner")
