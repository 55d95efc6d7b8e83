"""Tables. Every row belongs to a workspace from day one.

Columns ending in ``_enc`` hold :mod:`authprofiles.store.cipher` ciphertexts, never
plain secrets. Non-secret profile settings live in ``config`` (JSON text), where the
secret values of additional and authorization fields are also ciphertexts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

DEFAULT_WORKSPACE_ID = "default"

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite drops the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class WorkspaceRow(Base):
    __tablename__ = "workspaces"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiKeyRow(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    #: The public part of the key, used to find the row; the rest is only hashed.
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: The user the key acts for (with its own role or lower). Null only for keys made
    #: before the workspace had an admin: `users create --admin` adopts them.
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True
    )


class UserRow(Base):
    """A person. Their roles are per workspace (:class:`MembershipRow`)."""

    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    #: Lower-cased; unique across the installation (one person, many workspaces).
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    #: argon2id; null until the person sets a password (invited, or single sign-on only).
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: Events the person turned off for email, space separated (all on by default).
    muted_events: Mapped[str] = mapped_column(Text, default="")
    #: Bumped by "sign out everywhere", a password change and disabling: sessions and
    #: reset links minted under an older value stop working.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MembershipRow(Base):
    """One user's role in one workspace."""

    __tablename__ = "memberships"
    workspace_id: Mapped[str] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(20))
    #: Disabled in this workspace by its admin (their keys and sessions here stop); a
    #: person is disabled everywhere only from the server's command line.
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TeamRow(Base):
    """A named group of a workspace's users (seed 004's "roles" an admin invites)."""

    __tablename__ = "teams"
    __table_args__ = (UniqueConstraint("workspace_id", "name", name="uq_teams_workspace_name"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TeamMemberRow(Base):
    __tablename__ = "team_members"
    team_id: Mapped[str] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class ProfileAccessRow(Base):
    """Who an admin invited to use a profile: a user or a team (``grantee_type``)."""

    __tablename__ = "profile_access"
    profile_id: Mapped[str] = mapped_column(
        ForeignKey("profiles.id", ondelete="CASCADE"), primary_key=True
    )
    grantee_type: Mapped[str] = mapped_column(String(10), primary_key=True)
    grantee_id: Mapped[str] = mapped_column(String(36), primary_key=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UserSessionRow(Base):
    """A signed-in person's session: the cookie holds a random token, this row its hash."""

    __tablename__ = "user_sessions"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: The workspace the person is working in (the console's switcher changes it).
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    #: The user's ``session_epoch`` when it was made: a newer one ends it.
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    csrf_token: Mapped[str] = mapped_column(String(64))
    address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: The absolute timeout; the idle timeout counts from ``last_seen_at``.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class SignInRequestRow(Base):
    """A single sign-on on its way through the OpenID provider: state, nonce, verifier."""

    __tablename__ = "signin_requests"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: ``{nonce, code_verifier, next}``, encrypted.
    secrets_enc: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SignInThrottleRow(Base):
    """Password sign-in attempts per account (``email:…``) and per address (``ip:…``) in
    the current window, counted before the password is checked (a right one is taken back),
    and until when each is locked."""

    __tablename__ = "signin_throttle"
    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WebhookRow(Base):
    __tablename__ = "webhooks"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(Text)
    #: Event names, space separated.
    events: Mapped[str] = mapped_column(Text)
    #: The signing secret, encrypted (shown once, at creation).
    secret_enc: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OutboxRow(Base):
    """A message to deliver (an email or a webhook call), written in the transaction of
    the change it tells of, delivered off the request path by whichever worker claims it
    (``claimed_until``, a lease); the row then stays as the delivery log."""

    __tablename__ = "outbox"
    #: Each worker's look for due messages reads only pending ones, however many sent rows
    #: the delivery log keeps.
    __table_args__ = (Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[str] = mapped_column(String(10))  # "email" or "webhook"
    #: An email address, or a webhook's id.
    recipient: Mapped[str] = mapped_column(String(320))
    webhook_id: Mapped[str | None] = mapped_column(
        ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=True, index=True
    )
    event: Mapped[str] = mapped_column(String(60))
    #: The message: for a webhook its JSON body; for an email ``{subject, text}`` as JSON.
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending|sent|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AuditEventRow(Base):
    """One line of the append-only audit log (never a secret)."""

    __tablename__ = "audit_events"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    action: Mapped[str] = mapped_column(String(60), index=True)
    actor_type: Mapped[str] = mapped_column(String(10))
    actor_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    actor_name: Mapped[str] = mapped_column(String(320), default="")
    target_type: Mapped[str | None] = mapped_column(String(20), nullable=True)
    target_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    target_name: Mapped[str | None] = mapped_column(String(320), nullable=True)
    #: The profile the entry concerns, for the per-profile filter.
    profile_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: Non-secret particulars, JSON.
    detail: Mapped[str] = mapped_column(Text, default="{}")


class ProfileRow(Base):
    __tablename__ = "profiles"
    __table_args__ = (UniqueConstraint("workspace_id", "name", name="uq_profiles_workspace_name"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    auth_type: Mapped[str] = mapped_column(String(40))
    identity_provider: Mapped[str | None] = mapped_column(String(255), nullable=True)
    config: Mapped[str] = mapped_column(Text)
    client_secret_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: private_key_jwt's PEM private key (RFC 7523).
    private_key_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    password_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    failing_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConnectionRow(Base):
    __tablename__ = "connections"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    profile_id: Mapped[str] = mapped_column(
        ForeignKey("profiles.id", ondelete="CASCADE"), index=True
    )
    #: "shared" (every caller uses it) or the id of the one user it belongs to.
    owner: Mapped[str] = mapped_column(String(200))
    tenant: Mapped[str | None] = mapped_column(String(63), nullable=True)
    fields_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    username: Mapped[str | None] = mapped_column(String(255), nullable=True)
    password_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(20))
    access_token_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    refresh_token_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    token_type: Mapped[str | None] = mapped_column(String(40), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    scopes: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Other members of the token response (e.g. ``instance_url``, ``id_token``), encrypted.
    extra_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: Bumped on every token change; lets readers tell a fresh token from a stale one, and
    #: makes the write-back of a refresh a compare-and-swap.
    version: Mapped[int] = mapped_column(Integer, default=0)
    #: Who is refreshing this connection's token, and until when (a lease, not a lock: no
    #: transaction stays open while the identity provider answers).
    refresh_lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    refresh_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: When the background refresher renews the token (``core.renewal``: before it expires,
    #: spread at random); None when there is nothing to renew (no expiry, or a connection
    #: that is not active). The refresher's leases are taken in this order.
    next_refresh_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    #: Set when a refresh lease lapsed with nothing written back: its holder died, perhaps
    #: after the identity provider rotated the refresh token we hold. Cleared by the next
    #: tokens stored.
    refresh_token_possibly_spent: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuthorizationRequestRow(Base):
    """One pending authorization a person finishes: its kind (the auth type that started
    it), the hash of its state, the secrets to finish it with (encrypted: a PKCE verifier,
    a device code) and its deadline; a polled kind says when to ask next."""

    __tablename__ = "authorization_requests"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    connection_id: Mapped[str] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), index=True
    )
    #: SHA-256 of the state: a database reader cannot forge a callback from it.
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: Rows written before pending authorizations had kinds keep their verifier here.
    code_verifier_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    redirect_uri: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(40), default="oauth2_authorization_code")
    #: The grant's secrets, a JSON object, encrypted.
    secrets_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Polled kinds: when to ask the authorization server next (claimed by moving it on).
    next_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


def json_default(value: Any) -> Any:
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class KeyRingRow(Base):
    """The master key ring as `keys rotate` last announced it: one row, id 1.

    Every running process reads ``version`` about once a second and reloads its keys when
    it changed. ``key_ids`` lists the keys in use, the one to write with first (the key
    file's order); ``retired_key_ids`` are keys that no row uses any more and that left
    the key file: a write encrypted under one of them is refused at commit.
    """

    __tablename__ = "key_ring"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    #: Key ids (hash prefixes, never keys), space separated.
    key_ids: Mapped[str] = mapped_column(Text, default="")
    retired_key_ids: Mapped[str] = mapped_column(Text, default="")
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class KeyRingWorkerRow(Base):
    """A heartbeat of one running server worker: which keys it reads, which it writes with.

    `keys rotate` waits for every live worker (seen recently) to load the new key before
    anything is written with it, and to write with it before the old key is retired.
    """

    __tablename__ = "key_ring_workers"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    #: The key ring version it has loaded, and its key ids, space separated.
    keyring_version: Mapped[int] = mapped_column(Integer)
    key_ids: Mapped[str] = mapped_column(Text)
    #: The key its writes use, once no transaction begun under an older key is still open.
    writes_with_key_id: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class AgentGrantRow(Base):
    """What an agent may do through the proxy (and ``/mcp``): the token is only hashed."""

    __tablename__ = "agent_grants"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    agent: Mapped[str] = mapped_column(String(200), index=True)
    #: The person who made it: the agent acts for them, with no more than their access.
    created_by: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True
    )
    #: The maker's role when it was made, which the agent never acts above.
    role: Mapped[str] = mapped_column(String(20))
    #: The token's public part, used to find the row; the rest is only hashed.
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(128))
    #: JSON: the connection ids, and the allow rules ``[{methods, path, host, approval}]``.
    connection_ids: Mapped[str] = mapped_column(Text)
    rules: Mapped[str] = mapped_column(Text)
    rate_per_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_calls: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Calls that reached the upstream; and this minute's (``window`` minutes since 1970).
    calls_made: Mapped[int] = mapped_column(Integer, default=0)
    window: Mapped[int] = mapped_column(Integer, default=0)
    window_calls: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AgentAccessTokenRow(Base):
    """An access token the server's own token endpoint issued for a grant (client
    credentials), for one audience (RFC 8707): only hashed."""

    __tablename__ = "agent_access_tokens"
    prefix: Mapped[str] = mapped_column(String(32), primary_key=True)
    grant_id: Mapped[str] = mapped_column(
        ForeignKey("agent_grants.id", ondelete="CASCADE"), index=True
    )
    secret_hash: Mapped[str] = mapped_column(String(128))
    audience: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class ApprovalRow(Base):
    """A call an agent made that waits for (or got) a person's decision."""

    __tablename__ = "approvals"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    grant_id: Mapped[str] = mapped_column(
        ForeignKey("agent_grants.id", ondelete="CASCADE"), index=True
    )
    agent: Mapped[str] = mapped_column(String(200))
    connection_id: Mapped[str] = mapped_column(String(36))
    method: Mapped[str] = mapped_column(String(10))
    #: The upstream URL without any credential (the caller's query; none injected).
    url: Mapped[str] = mapped_column(Text)
    body_sha256: Mapped[str] = mapped_column(String(64))
    #: The first bytes of the body, as text, for the person deciding.
    body_preview: Mapped[str] = mapped_column(Text, default="")
    #: pending, approved, denied, used, expired.
    status: Mapped[str] = mapped_column(String(10), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
