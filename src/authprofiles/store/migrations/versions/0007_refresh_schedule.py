"""when each connection's token is renewed, and refresh tokens possibly spent

Revision ID: 0007
Revises: 0006

The background refresher leases due connections in batches, in the order of
``next_refresh_at`` (indexed): the token's expiry less the lead and a random part of the
jitter, written with each token. Connections holding a token get it here as their expiry
less the default lead and skew (300 s + 60 s), unjittered: they are renewed at the times they
were before, and jittered from their next token on.

``refresh_token_possibly_spent`` is set when a refresh lease lapses with nothing written
back (its holder died, perhaps after the identity provider rotated the refresh token).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("next_refresh_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column(
                "refresh_token_possibly_spent",
                sa.Boolean(),
                server_default=sa.false(),
                nullable=False,
            )
        )
        batch_op.create_index(
            batch_op.f("ix_connections_next_refresh_at"), ["next_refresh_at"], unique=False
        )
    if op.get_bind().dialect.name == "sqlite":
        # Stored as text, 'YYYY-MM-DD HH:MM:SS.ffffff': whole seconds off, the fraction kept.
        op.execute(
            "UPDATE connections SET next_refresh_at = "
            "strftime('%Y-%m-%d %H:%M:%S', expires_at, '-360 seconds') || substr(expires_at, 20) "
            "WHERE status = 'active' AND expires_at IS NOT NULL"
        )
    else:
        op.execute(
            "UPDATE connections SET next_refresh_at = expires_at - interval '360 seconds' "
            "WHERE status = 'active' AND expires_at IS NOT NULL"
        )


def downgrade() -> None:
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_connections_next_refresh_at"))
        batch_op.drop_column("refresh_token_possibly_spent")
        batch_op.drop_column("next_refresh_at")
