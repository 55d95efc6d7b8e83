"""API key rows in and out of the database (the key itself is never stored: a hash)."""

from __future__ import annotations

import builtins
from datetime import datetime

from sqlalchemy import select

from authprofiles.store.db import UnitOfWork
from authprofiles.store.models import ApiKeyRow, MembershipRow, UserRow, utcnow
from authprofiles.store.paging import oldest_first
from authprofiles.store.people import with_member


class ApiKeyStore:
    def add(
        self,
        session: UnitOfWork,
        *,
        key_id: str,
        workspace_id: str,
        name: str,
        role: str,
        prefix: str,
        secret_hash: str,
        user_id: str | None = None,
    ) -> ApiKeyRow:
        row = ApiKeyRow(
            id=key_id,
            workspace_id=workspace_id,
            name=name,
            role=role,
            prefix=prefix,
            secret_hash=secret_hash,
            created_at=utcnow(),
            user_id=user_id,
        )
        session.add(row)
        return row

    def by_prefix_with_user(
        self, session: UnitOfWork, prefix: str
    ) -> tuple[ApiKeyRow, UserRow | None, MembershipRow | None] | None:
        """The key, its user and the user's membership of the key's workspace: one read."""
        found = session.execute(
            with_member(
                select(ApiKeyRow, UserRow, MembershipRow),
                ApiKeyRow.user_id,
                ApiKeyRow.workspace_id,
            ).where(ApiKeyRow.prefix == prefix)
        ).one_or_none()
        if found is None:
            return None
        key, user, membership = found
        return key, user, membership

    def page(
        self,
        session: UnitOfWork,
        workspace_id: str,
        *,
        after: tuple[datetime, str] | None,
        limit: int | None,
        user_id: str | None = None,
    ) -> builtins.list[ApiKeyRow]:
        """Oldest first (then by id): a keyset page after ``(created_at, id)``."""
        where = [ApiKeyRow.workspace_id == workspace_id]
        if user_id is not None:
            where.append(ApiKeyRow.user_id == user_id)
        return oldest_first(session, ApiKeyRow, *where, after=after, limit=limit)

    def revoke(
        self, session: UnitOfWork, key_id: str, workspace_id: str, *, user_id: str | None = None
    ) -> ApiKeyRow | None:
        """Revoke an active key of the workspace (of ``user_id`` when given); None when
        there is none."""
        row = session.get(ApiKeyRow, key_id)
        if row is None or row.workspace_id != workspace_id or row.revoked_at is not None:
            return None
        if user_id is not None and row.user_id != user_id:
            return None
        row.revoked_at = utcnow()
        return row


__all__ = ["ApiKeyStore"]
