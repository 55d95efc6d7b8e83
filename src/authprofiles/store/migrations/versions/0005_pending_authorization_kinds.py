"""pending authorizations of every grant: kind, secrets, next poll

Revision ID: 0005
Revises: 0004

A pending authorization was an authorization-code redirect only. It now names the kind
(the auth type) that started it and keeps that grant's secrets (a PKCE verifier, a
device code) as one encrypted JSON object; a polled kind (the device code grant) says
when to ask the authorization server next.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("authorization_requests", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "kind",
                sa.String(length=40),
                nullable=False,
                server_default="oauth2_authorization_code",
            )
        )
        batch_op.add_column(sa.Column("secrets_enc", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("next_poll_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            "ix_authorization_requests_next_poll_at", ["next_poll_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("authorization_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_authorization_requests_next_poll_at")
        batch_op.drop_column("next_poll_at")
        batch_op.drop_column("secrets_enc")
        batch_op.drop_column("kind")
