"""API keys: shown once at creation, stored only as a hash.

Keys are 256-bit random, so a fast hash (SHA-256) is safe to store and cheap to check on
every request; argon2 is for the low-entropy passwords people choose.

A key belongs to a user and acts with its own role or the user's role in the key's
workspace, whichever is lower; a disabled user's keys, or keys of someone who left the
workspace, stop working (at once in this worker, within :data:`CACHE_SECONDS` in the
others). A key made before its workspace had an admin has no user and acts by its role.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from authprofiles.core.audit import Action, AuditEntry, Target
from authprofiles.core.callers import has_role
from authprofiles.core.errors import (
    FieldError,
    Forbidden,
    NotFound,
    Unauthenticated,
    ValidationFailed,
)
from authprofiles.core.ports import AuditTrail, DiscardAudit
from authprofiles.core.validation import hidden_character
from authprofiles.services.access import Principal, Role, require_role
from authprofiles.store.api_keys import ApiKeyStore
from authprofiles.store.db import Database
from authprofiles.store.models import DEFAULT_WORKSPACE_ID, ApiKeyRow
from authprofiles.store.people import UserStore, acting_role

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
    user_id: str | None = None


@dataclass(frozen=True)
class ApiKeyInfo:
    """An API key as anyone may see it: never the key, nor its hash."""

    id: str
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None
    #: The key's public part (``ap_<prefix>_…``): what tells keys apart.
    prefix: str
    user_id: str | None = None

    @property
    def start(self) -> str:
        """How the key starts (``ap_<prefix>_``); the rest is never stored."""
        return f"{KEY_PREFIX}_{self.prefix}_"

    @classmethod
    def of(cls, row: ApiKeyRow) -> ApiKeyInfo:
        return cls(
            id=row.id,
            name=row.name,
            role=Role(row.role),
            created_at=row.created_at,
            revoked_at=row.revoked_at,
            prefix=row.prefix,
            user_id=row.user_id,
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
    def __init__(self, db: Database, audit: AuditTrail | None = None) -> None:
        self.db = db
        self.store = ApiKeyStore()
        self.people = UserStore()
        self.audit: AuditTrail = audit or DiscardAudit()
        #: (key as presented, the caller's address) -> (until when, its principal).
        self._cache: dict[tuple[str, str | None], tuple[float, Principal]] = {}
        self._lock = threading.Lock()
        #: Bumped by every revocation and change of a user: a verification that began
        #: before one is not remembered.
        self._generation = 0

    def create(
        self,
        *,
        name: str,
        role: str,
        workspace_id: str = DEFAULT_WORKSPACE_ID,
        user_id: str | None = None,
        maker: Principal | None = None,
    ) -> CreatedApiKey:
        """A key of ``user_id`` in ``workspace_id`` (None: the workspace's first admin,
        or no user before there is one), for a role no higher than the user's there."""
        errors = []
        if problem := _name_problem(name):
            errors.append(FieldError("name", problem))
        parsed_role: Role | None = None
        try:
            parsed_role = Role(role)
        except ValueError:
            errors.append(FieldError("role", f"{role!r} is not one of: admin, developer, viewer"))
        if errors or parsed_role is None:
            raise ValidationFailed(errors)
        prefix = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        with self.db.session() as session:
            if user_id is None:
                admins = self.people.admins(session, workspace_id)
                user_id = admins[0].id if admins else None
            if user_id is not None:
                membership = self.people.membership(session, workspace_id, user_id)
                if membership is None:
                    raise NotFound(f"no member with id {user_id} in that workspace")
                if not has_role(Principal(workspace_id, Role(membership.role)), parsed_role):
                    raise ValidationFailed(
                        [
                            FieldError(
                                "role",
                                f"no higher than the key's user's role ({membership.role})",
                            )
                        ]
                    )
            row = self.store.add(
                session,
                key_id=str(uuid.uuid4()),
                workspace_id=workspace_id,
                name=name.strip(),
                role=parsed_role.value,
                prefix=prefix,
                secret_hash=_hash(secret),
                user_id=user_id,
            )
            self.audit.record(
                AuditEntry.by_caller_or_system(
                    maker,
                    workspace_id,
                    Action.API_KEY_CREATED,
                    Target("api_key", row.id, row.name),
                    detail={"role": parsed_role.value},
                ),
                session,
            )
        return CreatedApiKey(
            id=row.id,
            name=row.name,
            role=parsed_role,
            workspace_id=workspace_id,
            key=f"{KEY_PREFIX}_{prefix}_{secret}",
            created_at=row.created_at,
            user_id=user_id,
        )

    def create_for(
        self, *, name: str, role: str, workspace: str | None, user_email: str | None
    ) -> CreatedApiKey:
        """`api-keys create`: the workspace and user named (by name or id, and by email)."""
        with self.db.read() as session:
            workspace_id = self.people.workspace_id_named(session, workspace)
            user_id = None
            if user_email is not None:
                user = self.people.by_email(session, user_email)
                if user is None or self.people.membership(session, workspace_id, user.id) is None:
                    raise NotFound(f"no member with email {user_email!r} in that workspace")
                user_id = user.id
        return self.create(name=name, role=role, workspace_id=workspace_id, user_id=user_id)

    def issue(self, principal: Principal, *, name: str, role: str) -> CreatedApiKey:
        """A key made by a caller of the API, for themselves, in their workspace, with a
        role no higher than their own. A key without a user (made before the workspace had
        people) may make keys only as an admin, as before."""
        if principal.is_agent:
            raise Forbidden("an agent may not make API keys")
        if principal.user_id is None:
            require_role(principal, Role.ADMIN)
        try:
            wanted = Role(role)
        except ValueError:
            wanted = None
        if wanted is not None and not has_role(principal, wanted):
            raise Forbidden(
                f"a key may have no higher role than its maker's ({principal.role.value})"
            )
        return self.create(
            name=name,
            role=role,
            workspace_id=principal.workspace_id,
            user_id=principal.user_id,
            maker=principal,
        )

    def cached(self, presented: str, address: str | None = None) -> Principal | None:
        """A recently verified key's principal, as presented from ``address``, without
        touching the database."""
        with self._lock:
            hit = self._cache.get((presented, address))
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        return None

    def authenticate(self, presented: str | None, address: str | None = None) -> Principal:
        """The key's principal, calling from ``address``; ``Unauthenticated`` when there is
        no key, or it is unknown, revoked, or its user is disabled or gone."""
        if not presented:
            raise Unauthenticated("send an API key as `Authorization: Bearer <key>`")
        now = time.monotonic()
        cached = self.cached(presented, address)
        if cached is not None:
            return cached
        parts = presented.split("_", 2)
        if len(parts) != 3 or parts[0] != KEY_PREFIX:
            raise Unauthenticated("that is not an authprofiles API key")
        _, prefix, secret = parts
        with self._lock:
            generation = self._generation
        with self.db.read() as session:
            found = self.store.by_prefix_with_user(session, prefix)
        if found is None or found[0].revoked_at is not None:
            raise Unauthenticated("unknown or revoked API key")
        row, user, membership = found
        if not hmac.compare_digest(row.secret_hash, _hash(secret)):
            raise Unauthenticated("unknown or revoked API key")
        role = Role(row.role)
        if row.user_id is not None:
            role = acting_role(role, user, membership, "this API key's user")
        principal = Principal(
            workspace_id=row.workspace_id,
            role=role,
            key_id=row.id,
            name=row.name,
            user_id=row.user_id,
            address=address,
        )
        with self._lock:
            # A revocation or a change of the user made while this was read leaves it
            # unremembered: it may be what changed.
            if generation == self._generation:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[(presented, address)] = (now + CACHE_SECONDS, principal)
        return principal

    def list(
        self,
        workspace_id: str = DEFAULT_WORKSPACE_ID,
        *,
        after: tuple[datetime, str] | None = None,
        limit: int | None = None,
        user_id: str | None = None,
    ) -> builtins.list[ApiKeyInfo]:
        """Oldest first (then by id), revoked ones too; at most ``limit`` after the
        ``(created_at, id)`` key ``after``: a keyset page. ``user_id``: only theirs."""
        with self.db.read() as session:
            rows = self.store.page(session, workspace_id, after=after, limit=limit, user_id=user_id)
            return [ApiKeyInfo.of(row) for row in rows]

    def list_for(
        self,
        principal: Principal,
        *,
        after: tuple[datetime, str] | None = None,
        limit: int | None = None,
    ) -> builtins.list[ApiKeyInfo]:
        """Admins see the workspace's keys; everyone else their own."""
        if principal.is_agent:
            raise Forbidden("an agent may not list API keys")
        if has_role(principal, Role.ADMIN):
            return self.list(principal.workspace_id, after=after, limit=limit)
        if principal.user_id is None:
            require_role(principal, Role.ADMIN)
        return self.list(
            principal.workspace_id, after=after, limit=limit, user_id=principal.user_id
        )

    def revoke(
        self,
        key_id: str,
        workspace_id: str = DEFAULT_WORKSPACE_ID,
        *,
        by: Principal | None = None,
    ) -> ApiKeyInfo:
        """Revoke an active key of the workspace; :class:`NotFound` when there is none
        (unknown, another workspace's, or revoked already). A caller who is not an admin
        may revoke only their own keys (another's answers as unknown)."""
        own_only = None
        if by is not None:
            if by.user_id is None or by.is_agent:
                require_role(by, Role.ADMIN)
            if not has_role(by, Role.ADMIN):
                own_only = by.user_id
        with self.db.session() as session:
            row = self.store.revoke(session, key_id, workspace_id, user_id=own_only)
            if row is None:
                raise NotFound(f"no active API key with id {key_id!r}")
            revoked = ApiKeyInfo.of(row)
            self.audit.record(
                AuditEntry.by_caller_or_system(
                    by, workspace_id, Action.API_KEY_REVOKED, Target("api_key", row.id, row.name)
                ),
                session,
            )
        self._forget(lambda principal: principal.key_id == key_id)
        return revoked

    def forget_user(self, user_id: str) -> None:
        """A user was disabled, left a workspace or changed role: their keys are checked
        again on next use (in this worker; the others within :data:`CACHE_SECONDS`)."""
        self._forget(lambda principal: principal.user_id == user_id)

    def _forget(self, matches: Callable[[Principal], bool]) -> None:
        with self._lock:
            self._generation += 1
            for cache_key, (_, principal) in builtins.list(self._cache.items()):
                if matches(principal):
                    del self._cache[cache_key]
