"""API key rows in and out of the database (the key itself is never stored: a hash)."""

from __future__ import annotations

import builtins
from datetime import datetime

from sqlalchemy import select, tuple_

from authprofiles.store.db import UnitOfWork
from authprofiles.store.models import ApiKeyRow, utcnow


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
    ) -> ApiKeyRow:
        row = ApiKeyRow(
            id=key_id,
            workspace_id=workspace_id,
            name=name,
            role=role,
            prefix=prefix,
            secret_hash=secret_hash,
            created_at=utcnow(),
        )
        session.add(row)
        return row

    def by_prefix(self, session: UnitOfWork, prefix: str) -> ApiKeyRow | None:
        return session.scalars(select(ApiKeyRow).where(ApiKeyRow.prefix == prefix)).one_or_none()

    def page(
        self,
        session: UnitOfWork,
        workspace_id: str,
        *,
        after: tuple[datetime, str] | None,
        limit: int | None,
    ) -> builtins.list[ApiKeyRow]:
        """Oldest first (then by id): a keyset page after ``(created_at, id)``."""
        statement = select(ApiKeyRow).where(ApiKeyRow.workspace_id == workspace_id)
        if after is not None:
            statement = statement.where(tuple_(ApiKeyRow.created_at, ApiKeyRow.id) > after)
        statement = statement.order_by(ApiKeyRow.created_at, ApiKeyRow.id)
        if limit is not None:
            statement = statement.limit(limit)
        return builtins.list(session.scalars(statement))

    def revoke(self, session: UnitOfWork, key_id: str, workspace_id: str) -> ApiKeyRow | None:
        """Revoke an active key of the workspace; None when there is none."""
        row = session.get(ApiKeyRow, key_id)
        if row is None or row.workspace_id != workspace_id or row.revoked_at is not None:
            return None
        row.revoked_at = utcnow()
        return row


__all__ = ["ApiKeyStore"]
