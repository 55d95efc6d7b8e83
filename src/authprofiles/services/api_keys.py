"""API keys: shown once at creation, stored only as a hash.

Keys are 256-bit random, so a fast hash (SHA-256) is safe to store and cheap to check on
every request; argon2 is for the low-entropy passwords people choose.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import secrets
import threading
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import select

from authprofiles.core.errors import DomainError, FieldError, ValidationFailed
from authprofiles.services.access import Principal, Role
from authprofiles.store.db import Database
from authprofiles.store.models import DEFAULT_WORKSPACE_ID, ApiKeyRow, utcnow

KEY_PREFIX = "ap"
#: A revoked key stops working within this many seconds in every worker.
CACHE_SECONDS = 5.0


class Unauthenticated(DomainError):
    status_code = 401
    title = "Unauthorized"


@dataclass(frozen=True)
class CreatedApiKey:
    id: str
    name: str
    role: Role
    workspace_id: str
    key: str  # the only time the plain key exists outside the caller's hands


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKeys:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def create(
        self, *, name: str, role: str, workspace_id: str = DEFAULT_WORKSPACE_ID
    ) -> CreatedApiKey:
        errors = []
        if not name.strip():
            errors.append(FieldError("name", "a name is required"))
        try:
            parsed_role = Role(role)
        except ValueError:
            errors.append(FieldError("role", f"{role!r} is not one of: admin, developer, viewer"))
        if errors:
            raise ValidationFailed(errors)
        prefix = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        row = ApiKeyRow(
            id=str(uuid.uuid4()),
            workspace_id=workspace_id,
            name=name.strip(),
            role=parsed_role.value,
            prefix=prefix,
            secret_hash=_hash(secret),
            created_at=utcnow(),
        )
        with self.db.session() as session:
            session.add(row)
        return CreatedApiKey(
            id=row.id,
            name=row.name,
            role=parsed_role,
            workspace_id=workspace_id,
            key=f"{KEY_PREFIX}_{prefix}_{secret}",
        )

    def cached(self, presented: str) -> Principal | None:
        """A recently verified key's principal, without touching the database."""
        with self._lock:
            hit = self._cache.get(presented)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        return None

    def authenticate(self, presented: str | None) -> Principal:
        if not presented:
            raise Unauthenticated("send an API key as `Authorization: Bearer <key>`")
        now = time.monotonic()
        cached = self.cached(presented)
        if cached is not None:
            return cached
        parts = presented.split("_", 2)
        if len(parts) != 3 or parts[0] != KEY_PREFIX:
            raise Unauthenticated("that is not an authprofiles API key")
        _, prefix, secret = parts
        with self.db.read() as session:
            row = session.scalars(select(ApiKeyRow).where(ApiKeyRow.prefix == prefix)).one_or_none()
        if row is None or row.revoked_at is not None:
            raise Unauthenticated("unknown or revoked API key")
        if not hmac.compare_digest(row.secret_hash, _hash(secret)):
            raise Unauthenticated("unknown or revoked API key")
        principal = Principal(
            workspace_id=row.workspace_id, role=Role(row.role), key_id=row.id, name=row.name
        )
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[presented] = (now + CACHE_SECONDS, principal)
        return principal

    def list(self, workspace_id: str = DEFAULT_WORKSPACE_ID) -> builtins.list[ApiKeyRow]:
        with self.db.read() as session:
            return list(
                session.scalars(
                    select(ApiKeyRow)
                    .where(ApiKeyRow.workspace_id == workspace_id)
                    .order_by(ApiKeyRow.created_at)
                )
            )

    def revoke(self, key_id: str) -> bool:
        with self.db.session() as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = utcnow()
            return True
