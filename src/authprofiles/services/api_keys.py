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
from datetime import datetime

from authprofiles.core.errors import FieldError, NotFound, Unauthenticated, ValidationFailed
from authprofiles.core.validation import hidden_character
from authprofiles.services.access import Principal, Role, require_role
from authprofiles.store.api_keys import ApiKeyStore
from authprofiles.store.db import Database
from authprofiles.store.models import DEFAULT_WORKSPACE_ID, ApiKeyRow

KEY_PREFIX = "ap"
#: A revoked key stops working within this many seconds in every worker (at once in the
#: worker that revoked it).
CACHE_SECONDS = 5.0
#: The name column's width.
MAX_KEY_NAME_LENGTH = 200


@dataclass(frozen=True)
class CreatedApiKey:
    id: str
    name: str
    role: Role
    workspace_id: str
    key: str  # the only time the plain key exists outside the caller's hands
    created_at: datetime


@dataclass(frozen=True)
class ApiKeyInfo:
    """An API key as anyone may see it: never the key, nor its hash."""

    id: str
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: ApiKeyRow) -> ApiKeyInfo:
        return cls(
            id=row.id,
            name=row.name,
            role=Role(row.role),
            created_at=row.created_at,
            revoked_at=row.revoked_at,
        )


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _name_problem(name: str) -> str | None:
    if not name.strip():
        return "a name is required, e.g. 'billing-agent'"
    if len(name.strip()) > MAX_KEY_NAME_LENGTH:
        return f"must be at most {MAX_KEY_NAME_LENGTH} characters (got {len(name.strip())})"
    if hidden_character(name, multiline=False):
        return "may not hold control or invisible formatting characters"
    return None


class ApiKeys:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.store = ApiKeyStore()
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def create(
        self, *, name: str, role: str, workspace_id: str = DEFAULT_WORKSPACE_ID
    ) -> CreatedApiKey:
        errors = []
        if problem := _name_problem(name):
            errors.append(FieldError("name", problem))
        try:
            parsed_role = Role(role)
        except ValueError:
            errors.append(FieldError("role", f"{role!r} is not one of: admin, developer, viewer"))
        if errors:
            raise ValidationFailed(errors)
        prefix = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        with self.db.session() as session:
            row = self.store.add(
                session,
                key_id=str(uuid.uuid4()),
                workspace_id=workspace_id,
                name=name.strip(),
                role=parsed_role.value,
                prefix=prefix,
                secret_hash=_hash(secret),
            )
        return CreatedApiKey(
            id=row.id,
            name=row.name,
            role=parsed_role,
            workspace_id=workspace_id,
            key=f"{KEY_PREFIX}_{prefix}_{secret}",
            created_at=row.created_at,
        )

    def issue(self, principal: Principal, *, name: str, role: str) -> CreatedApiKey:
        """A key made by a caller of the API, in its workspace: admins only (the highest
        role, so no key made this way can do more than its maker)."""
        require_role(principal, Role.ADMIN)
        return self.create(name=name, role=role, workspace_id=principal.workspace_id)

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
            row = self.store.by_prefix(session, prefix)
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

    def list(
        self,
        workspace_id: str = DEFAULT_WORKSPACE_ID,
        *,
        after: tuple[datetime, str] | None = None,
        limit: int | None = None,
    ) -> builtins.list[ApiKeyInfo]:
        """Oldest first (then by id), revoked ones too; at most ``limit`` after the
        ``(created_at, id)`` key ``after``: a keyset page."""
        with self.db.read() as session:
            rows = self.store.page(session, workspace_id, after=after, limit=limit)
            return [ApiKeyInfo.of(row) for row in rows]

    def revoke(self, key_id: str, workspace_id: str = DEFAULT_WORKSPACE_ID) -> ApiKeyInfo:
        """Revoke an active key of the workspace; :class:`NotFound` when there is none
        (unknown, another workspace's, or revoked already)."""
        with self.db.session() as session:
            row = self.store.revoke(session, key_id, workspace_id)
            if row is None:
                raise NotFound(f"no active API key with id {key_id!r}")
            revoked = ApiKeyInfo.of(row)
        with self._lock:
            for presented, (_, principal) in builtins.list(self._cache.items()):
                if principal.key_id == key_id:
                    del self._cache[presented]
        return revoked
