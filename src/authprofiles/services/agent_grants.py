"""Agent grants: bearer credentials for agents that work only through the proxy and ``/mcp``.

A developer (for connections they may use) or an admin mints a grant: the connections,
allow rules, an optional rate and call budget, a lifetime. Its token is shown once and
stored as a SHA-256 hash (256 random bits, so a fast hash is safe, as for API keys). The
agent acts for the grant's maker and never beyond them: the credential policy is asked
about every call as for the maker, and the grant's own rules are checked first.

The server's own token endpoint (client credentials, RFC 6749 section 4.4; client id the
grant id, secret the grant token) issues access tokens for one audience (RFC 8707): the
``/mcp`` resource or the proxy. Those are only hashed too, and die with their grant.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from authprofiles.core.agent_grants import (
    MAX_AGENT_NAME,
    MAX_TTL_SECONDS,
    AgentGrant,
    RateLimited,
    parse_rules,
)
from authprofiles.core.audit import Action, AuditEntry, Target
from authprofiles.core.callers import (
    CallerKind,
    CredentialRequest,
    Principal,
    Purpose,
    Role,
    has_role,
    require_role,
)
from authprofiles.core.errors import (
    FieldError,
    Forbidden,
    NotFound,
    Unauthenticated,
    ValidationFailed,
)
from authprofiles.core.ports import AuditTrail, Clock, ConnectionReader, CredentialPolicy
from authprofiles.core.validation import hidden_character
from authprofiles.store.agent_grants import AgentGrantStore, grant_of
from authprofiles.store.db import Database, UnitOfWork
from authprofiles.store.models import AgentAccessTokenRow, AgentGrantRow, MembershipRow, UserRow
from authprofiles.store.people import acting_role

#: A grant's token: ``apg_<prefix>_<secret>``; an access token issued for one: ``apt_...``.
GRANT_PREFIX = "apg"
ACCESS_TOKEN_PREFIX = "apt"  # noqa: S105 - a prefix, not a secret
#: A revoked grant stops working within this many seconds in every worker (at once in the
#: worker that revoked it).
CACHE_SECONDS = 5.0


def is_agent_credential(presented: str) -> bool:
    return presented.startswith((GRANT_PREFIX + "_", ACCESS_TOKEN_PREFIX + "_"))


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class CreatedGrant:
    grant: AgentGrant
    token: str  # the only time the plain token exists outside the caller's hands


@dataclass(frozen=True)
class IssuedAccessToken:
    access_token: str
    expires_in: int
    audience: str


class AgentGrants:
    """Minting, listing, revoking and checking agent grants, and counting their calls."""

    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        audit: AuditTrail,
        policy: CredentialPolicy,
        connections: ConnectionReader,
        access_token_seconds: int = 3600,
    ) -> None:
        self.db = db
        self.clock = clock
        self.audit = audit
        self.policy = policy
        self.connections = connections
        self.store = AgentGrantStore()
        self.access_token_seconds = access_token_seconds
        self._lock = threading.Lock()
        #: (credential, address) -> (until when, principal); grant id -> (until, grant).
        self._principals: dict[tuple[str, str | None], tuple[float, Principal]] = {}
        self._grants: dict[str, tuple[float, AgentGrant]] = {}
        self._generation = 0

    # -- minting ------------------------------------------------------------------------
    def create(
        self,
        principal: Principal,
        *,
        agent: str,
        connection_ids: Sequence[str],
        rules: Sequence[object],
        ttl_seconds: int,
        rate_per_minute: int | None = None,
        max_calls: int | None = None,
    ) -> CreatedGrant:
        """A grant for ``agent``, made by ``principal`` (a person's key or session, never an
        agent), on connections they may use themselves."""
        if principal.is_agent:
            raise Forbidden("an agent may not make agent grants")
        require_role(principal, Role.DEVELOPER)
        errors: list[FieldError] = []
        name = agent.strip()
        if not name:
            errors.append(FieldError("agent", "name the agent, e.g. 'billing-agent'"))
        elif len(name) > MAX_AGENT_NAME or hidden_character(name, multiline=False):
            errors.append(
                FieldError("agent", f"at most {MAX_AGENT_NAME} characters, no control characters")
            )
        if not connection_ids:
            errors.append(FieldError("connection_ids", "name at least one connection"))
        if not 1 <= ttl_seconds <= MAX_TTL_SECONDS:
            errors.append(
                FieldError("ttl_seconds", f"from 1 to {MAX_TTL_SECONDS} (30 days), in seconds")
            )
        if rate_per_minute is not None and rate_per_minute < 1:
            errors.append(FieldError("rate_per_minute", "at least 1, or left out for no limit"))
        if max_calls is not None and max_calls < 1:
            errors.append(FieldError("max_calls", "at least 1, or left out for no budget"))
        try:
            parsed_rules = parse_rules(rules)
        except ValidationFailed as exc:
            errors.extend(exc.errors)
            parsed_rules = ()
        if errors:
            raise ValidationFailed(errors)
        wanted = list(dict.fromkeys(connection_ids))
        for index, connection_id in enumerate(wanted):
            try:
                connection, _ = self.connections.read(principal.workspace_id, connection_id)
            except NotFound:
                raise ValidationFailed(
                    [FieldError(f"connection_ids[{index}]", f"no connection {connection_id!r}")]
                ) from None
            # The maker must be able to use it through the proxy themselves (as the person,
            # whether they ask with a key or signed in: the grant, not their browser, calls).
            self.policy.authorize(
                replace(principal, session_id=None),
                CredentialRequest.to_use(connection, Purpose.PROXY),
            )
        prefix = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        now = self.clock.now()
        row = AgentGrantRow(
            id=str(uuid.uuid4()),
            workspace_id=principal.workspace_id,
            agent=name,
            created_by=principal.user_id,
            role=principal.role.value,
            prefix=prefix,
            secret_hash=_hash(secret),
            connection_ids=json.dumps(wanted),
            rules=json.dumps([rule.as_dict() for rule in parsed_rules]),
            rate_per_minute=rate_per_minute,
            max_calls=max_calls,
            calls_made=0,
            window=0,
            window_calls=0,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_seconds),
        )
        with self.db.session() as session:
            self.store.add(session, row)
            session.flush()
            self.audit.record(
                AuditEntry.by(
                    principal,
                    Action.AGENT_GRANT_CREATED,
                    Target("agent_grant", row.id, name),
                    detail={
                        "agent": name,
                        "connections": len(wanted),
                        "rules": len(parsed_rules),
                        "ttl_seconds": ttl_seconds,
                    },
                ),
                session,
            )
            grant = grant_of(row)
        return CreatedGrant(grant, f"{GRANT_PREFIX}_{prefix}_{secret}")

    # -- listing and revoking ---------------------------------------------------------------
    def list_for(
        self,
        principal: Principal,
        *,
        after: tuple[datetime, str] | None = None,
        limit: int | None = None,
        agent: str | None = None,
    ) -> builtins.list[AgentGrant]:
        """Admins see the workspace's grants; anyone else the ones they made."""
        if principal.is_agent:
            raise Forbidden("an agent may not list agent grants")
        require_role(principal, Role.DEVELOPER)
        mine = None if has_role(principal, Role.ADMIN) else principal.user_id
        with self.db.read() as session:
            rows = self.store.page(
                session,
                principal.workspace_id,
                after=after,
                limit=limit,
                created_by=mine,
                agent=agent,
            )
            return [grant_of(row) for row in rows]

    def revoke(self, principal: Principal, grant_id: str) -> AgentGrant:
        """Revoke one grant (an admin any of the workspace's, anyone else their own)."""
        revoked = self._revoke(
            principal, lambda session, mine: self._one(session, principal, grant_id, mine)
        )
        return revoked[0]

    def revoke_agent(self, principal: Principal, agent: str) -> builtins.list[AgentGrant]:
        """Revoke every active grant of ``agent`` (the caller may revoke)."""
        return self._revoke(
            principal,
            lambda session, mine: self.store.active_of_agent(
                session, principal.workspace_id, agent, mine
            ),
        )

    def _one(
        self, session: UnitOfWork, principal: Principal, grant_id: str, mine: str | None
    ) -> builtins.list[AgentGrantRow]:
        row = self.store.get(session, grant_id, principal.workspace_id)
        if (
            row is None
            or row.revoked_at is not None
            or (mine is not None and row.created_by != mine)
        ):
            raise NotFound(f"no active agent grant with id {grant_id!r}")
        return [row]

    def _revoke(
        self,
        principal: Principal,
        select_rows: Callable[[UnitOfWork, str | None], builtins.list[AgentGrantRow]],
    ) -> builtins.list[AgentGrant]:
        if principal.is_agent:
            raise Forbidden("an agent may not revoke agent grants")
        require_role(principal, Role.DEVELOPER)
        mine = None if has_role(principal, Role.ADMIN) else principal.user_id
        now = self.clock.now()
        revoked = []
        with self.db.session() as session:
            for row in select_rows(session, mine):
                row.revoked_at = now
                revoked.append(grant_of(row))
                self.audit.record(
                    AuditEntry.by(
                        principal,
                        Action.AGENT_GRANT_REVOKED,
                        Target("agent_grant", row.id, row.agent),
                        detail={"agent": row.agent},
                    ),
                    session,
                )
        ids = {grant.id for grant in revoked}
        with self._lock:
            self._generation += 1
            for key, (_, known) in builtins.list(self._principals.items()):
                if known.key_id in ids:
                    del self._principals[key]
            for grant_id in ids:
                self._grants.pop(grant_id, None)
        return revoked

    # -- checking -----------------------------------------------------------------------------
    def cached(self, presented: str, address: str | None = None) -> Principal | None:
        """A recently verified credential's principal (no I/O), until the grant expires."""
        hit = self._principals.get((presented, address))  # a dict read: atomic
        if hit is None or hit[0] <= time.monotonic():
            return None
        return hit[1]

    def authenticate(self, presented: str | None, address: str | None = None) -> Principal:
        """The agent principal of a grant token or of an access token issued for one;
        ``Unauthenticated`` when unknown, expired, revoked, or its maker is disabled."""
        if not presented:
            raise Unauthenticated("send an agent grant's token as `Authorization: Bearer <token>`")
        cached = self.cached(presented, address)
        if cached is not None:
            return cached
        parts = presented.split("_", 2)
        if len(parts) != 3 or parts[0] not in (GRANT_PREFIX, ACCESS_TOKEN_PREFIX):
            raise Unauthenticated("that is not an authprofiles agent credential")
        kind, prefix, secret = parts
        with self._lock:
            generation = self._generation
        now = self.clock.now()
        audience: str | None = None
        with self.db.read() as session:
            if kind == GRANT_PREFIX:
                found = self.store.by_prefix_with_user(session, prefix)
                if found is None or not hmac.compare_digest(found[0].secret_hash, _hash(secret)):
                    raise Unauthenticated("unknown agent grant token")
                row, user, membership = found
            else:
                token_found = self.store.access_token(session, prefix)
                if token_found is None or not hmac.compare_digest(
                    token_found[0].secret_hash, _hash(secret)
                ):
                    raise Unauthenticated("unknown access token")
                token_row, row, user, membership = token_found
                if token_row.expires_at <= now:
                    raise Unauthenticated("this access token has expired; ask for a new one")
                audience = token_row.audience
            grant = grant_of(row)
        principal = self._principal(grant, user, membership, address, audience, now)
        with self._lock:
            if generation == self._generation:
                if len(self._principals) > 10_000:
                    self._principals.clear()
                until = self._remember_until(grant)
                self._principals[(presented, address)] = (until, principal)
                self._grants[grant.id] = (until, grant)
        return principal

    def _principal(
        self,
        grant: AgentGrant,
        user: UserRow | None,
        membership: MembershipRow | None,
        address: str | None,
        audience: str | None,
        now: datetime,
    ) -> Principal:
        if grant.revoked_at is not None:
            raise Unauthenticated("this agent grant was revoked")
        if grant.expires_at <= now:
            raise Unauthenticated("this agent grant has expired; ask its maker for a new one")
        role = Role(grant.role)
        if grant.created_by is not None:
            role = acting_role(role, user, membership, "this agent grant's maker")
        return Principal(
            workspace_id=grant.workspace_id,
            role=role,
            key_id=grant.id,
            name=grant.agent,
            user_id=grant.created_by,
            kind=CallerKind.AGENT,
            address=address,
            audience=audience,
        )

    def grant_in_memory(self, principal: Principal) -> AgentGrant | None:
        """The principal's grant as this worker read it within seconds, when still active
        (no I/O); None otherwise (then :meth:`grant_of`)."""
        hit = self._grants.get(principal.key_id or "")  # a dict read: atomic
        if hit is None or hit[0] <= time.monotonic():
            return None
        return hit[1]

    def _remember_until(self, grant: AgentGrant) -> float:
        """Until when (monotonic) this worker trusts what it read of ``grant``: a few
        seconds, and never past its expiry."""
        left = (grant.expires_at - self.clock.now()).total_seconds()
        return time.monotonic() + min(CACHE_SECONDS, left)

    def grant_of(self, principal: Principal) -> AgentGrant:
        """The grant an agent principal holds, as recently read; ``Unauthenticated`` once
        it expired or was revoked."""
        assert principal.key_id is not None
        with self._lock:
            hit = self._grants.get(principal.key_id)
        now = self.clock.now()
        if hit is not None and hit[0] > time.monotonic():
            grant = hit[1]
        else:
            with self.db.read() as session:
                row = self.store.get(session, principal.key_id, principal.workspace_id)
                if row is None:
                    raise Unauthenticated("this agent grant no longer exists")
                grant = grant_of(row)
            with self._lock:
                self._grants[grant.id] = (self._remember_until(grant), grant)
        if grant.revoked_at is not None:
            raise Unauthenticated("this agent grant was revoked")
        if grant.expires_at <= now:
            raise Unauthenticated("this agent grant has expired; ask its maker for a new one")
        return grant

    # -- counting calls -------------------------------------------------------------------
    def reserve_call(self, grant: AgentGrant) -> None:
        """Count one call against the grant's rate and budget; :class:`RateLimited` (429)
        when either is spent. A grant with neither costs nothing here."""
        if not grant.metered:
            return
        now = time.time()
        minute = int(now // 60)
        with self.db.session() as session:
            if self.store.reserve_call(session, grant, minute):
                return
            usage = self.store.usage(session, grant.id)
        if usage is not None and grant.max_calls is not None and usage[0] >= grant.max_calls:
            raise RateLimited(
                f"this agent grant's budget of {grant.max_calls} calls is spent; ask its "
                "maker for a new grant",
                None,
            )
        raise RateLimited(
            f"this agent grant allows {grant.rate_per_minute} calls a minute; wait for the "
            "next minute",
            max(1, 60 - int(now % 60)),
        )

    def refund_call(self, grant: AgentGrant) -> None:
        """A counted call never reached the upstream (it could not be sent)."""
        if grant.metered:
            with self.db.session() as session:
                self.store.refund_call(session, grant.id, int(time.time() // 60))

    # -- the server's own token endpoint ---------------------------------------------------
    def issue_access_token(
        self, client_id: str, client_secret: str, audience: str, address: str | None = None
    ) -> IssuedAccessToken:
        """An access token for ``audience``, to the grant ``client_id`` whose token is
        ``client_secret``; ``Unauthenticated`` (``invalid_client``) otherwise."""
        principal = self.authenticate(client_secret, address)
        if principal.key_id != client_id or principal.audience is not None:
            raise Unauthenticated("the client id and secret are not an agent grant's id and token")
        grant = self.grant_of(principal)
        now = self.clock.now()
        lifetime = min(self.access_token_seconds, int((grant.expires_at - now).total_seconds()))
        if lifetime < 1:
            raise Unauthenticated("this agent grant has expired")
        prefix = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        with self.db.session() as session:
            self.store.add_access_token(
                session,
                AgentAccessTokenRow(
                    prefix=prefix,
                    grant_id=grant.id,
                    secret_hash=_hash(secret),
                    audience=audience,
                    created_at=now,
                    expires_at=now + timedelta(seconds=lifetime),
                ),
            )
        return IssuedAccessToken(f"{ACCESS_TOKEN_PREFIX}_{prefix}_{secret}", lifetime, audience)


def for_audience(principal: Principal, audience: str) -> Principal:
    """``principal`` if its credential is good for ``audience`` (a grant's own token is
    good for the proxy and ``/mcp``; an access token for the one it was issued for)."""
    if principal.audience is not None and principal.audience != audience:
        raise Unauthenticated(
            f"this access token was issued for {principal.audience}, not for {audience}"
        )
    return principal


__all__ = [
    "ACCESS_TOKEN_PREFIX",
    "GRANT_PREFIX",
    "AgentGrants",
    "CreatedGrant",
    "IssuedAccessToken",
    "for_audience",
    "is_agent_credential",
]
