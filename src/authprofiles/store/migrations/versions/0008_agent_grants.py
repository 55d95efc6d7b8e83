"""agent grants, the access tokens issued for them, and approvals of held calls

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_grants",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("agent", sa.String(length=200), nullable=False),
        sa.Column("created_by", sa.String(length=36), nullable=True),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("secret_hash", sa.String(length=128), nullable=False),
        sa.Column("connection_ids", sa.Text(), nullable=False),
        sa.Column("rules", sa.Text(), nullable=False),
        sa.Column("rate_per_minute", sa.Integer(), nullable=True),
        sa.Column("max_calls", sa.Integer(), nullable=True),
        sa.Column("calls_made", sa.Integer(), nullable=False),
        sa.Column("window", sa.Integer(), nullable=False),
        sa.Column("window_calls", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_agent_grants_created_by_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_agent_grants_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_grants")),
        sa.UniqueConstraint("prefix", name=op.f("uq_agent_grants_prefix")),
    )
    op.create_index(op.f("ix_agent_grants_agent"), "agent_grants", ["agent"])
    op.create_index(op.f("ix_agent_grants_created_by"), "agent_grants", ["created_by"])
    op.create_index(op.f("ix_agent_grants_workspace_id"), "agent_grants", ["workspace_id"])
    op.create_table(
        "agent_access_tokens",
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("grant_id", sa.String(length=36), nullable=False),
        sa.Column("secret_hash", sa.String(length=128), nullable=False),
        sa.Column("audience", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["grant_id"],
            ["agent_grants.id"],
            name=op.f("fk_agent_access_tokens_grant_id_agent_grants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("prefix", name=op.f("pk_agent_access_tokens")),
    )
    op.create_index(op.f("ix_agent_access_tokens_grant_id"), "agent_access_tokens", ["grant_id"])
    op.create_index(
        op.f("ix_agent_access_tokens_expires_at"), "agent_access_tokens", ["expires_at"]
    )
    op.create_table(
        "approvals",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("grant_id", sa.String(length=36), nullable=False),
        sa.Column("agent", sa.String(length=200), nullable=False),
        sa.Column("connection_id", sa.String(length=36), nullable=False),
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("body_sha256", sa.String(length=64), nullable=False),
        sa.Column("body_preview", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=36), nullable=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["grant_id"],
            ["agent_grants.id"],
            name=op.f("fk_approvals_grant_id_agent_grants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_approvals_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approvals")),
    )
    op.create_index(op.f("ix_approvals_grant_id"), "approvals", ["grant_id"])
    op.create_index(op.f("ix_approvals_status"), "approvals", ["status"])
    op.create_index(op.f("ix_approvals_workspace_id"), "approvals", ["workspace_id"])


def downgrade() -> None:
    op.drop_table("approvals")
    op.drop_table("agent_access_tokens")
    op.drop_table("agent_grants")
