"""private key of profiles that authenticate with private_key_jwt

Revision ID: 0004
Revises: 0003

RFC 7523 client authentication signs each token request with the client's private key.
The key is a secret like the client secret: it gets its own column of ciphertext, which
`keys rotate` re-encrypts with every other ``*_enc`` column.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("private_key_enc", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.drop_column("private_key_enc")
