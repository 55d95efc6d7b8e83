"""Server-side sessions of signed-in people.

The cookie holds a random 256-bit token; the database holds its SHA-256, the user, the
workspace the person works in, the user's ``session_epoch`` when it began, and a CSRF
token. A session ends:

- after ``session_idle_minutes`` without a request (``last_seen_at``, written at most
  once a minute, so a busy page does not write per request);
- ``session_absolute_hours`` after sign-in, however active;
- when the person signs in again in the same browser (the old session's tokens go);
- when the user's membership of the session's workspace is removed or disabled (checked
  at every presentation, like the user's own row);
- at sign-out (this session) or "sign out everywhere", a password change or the user
  being disabled: those raise the user's ``session_epoch``, and a session of an older
  epoch is refused the next time it is presented, in every worker, because every
  presentation reads the user's row (one indexed query, no cache).

The token is rotated: a fresh one at sign-in (a token from before sign-in is never
promoted), and a new one once the current one is ``session_rotate_minutes`` old, handed
to the edge to send as Set-Cookie. The old token keeps working for
:data:`ROTATION_GRACE` so requests already on their way with it are not refused.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from authprofiles.core.callers import CallerKind, Principal, Role
from authprofiles.core.errors import Forbidden, NotFound, Unauthenticated
from authprofiles.core.ports import Clock
from authprofiles.settings import Settings
from authprofiles.store.db import Database, UnitOfWork
from authprofiles.store.people import UserStore
from authprofiles.store.sessions import SessionStore

#: The session cookie's name.
SESSION_COOKIE = "authprofiles_session"
#: The header an API call made with the session cookie sends the CSRF token in, for an
#: unsafe method; an HTML form sends the field ``csrf_token`` instead.
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
#: ``last_seen_at`` is written when it is older than this (the idle timeout's precision).
TOUCH_EVERY = timedelta(minutes=1)
#: How long a rotated-out token is still accepted.
ROTATION_GRACE = timedelta(minutes=1)
#: Methods RFC 9110 section 9.2.1 calls safe: no CSRF token needed.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def set_cookie_header(
    name: str, value: str, *, secure: bool, max_age: int | None, path: str = "/"
) -> str:
    """A ``Set-Cookie`` value (RFC 6265 section 4.1): ``HttpOnly`` (no script reads it),
    ``SameSite=Lax`` (not sent on cross-site subrequests and form posts), ``Secure``
    when the server is reached over HTTPS. ``max_age`` 0 deletes the cookie; None makes
    it last as long as the browser session."""
    parts = [f"{name}={value}", f"Path={path}", "HttpOnly", "SameSite=Lax"]
    if max_age is not None:
        parts.append(f"Max-Age={max(0, max_age)}")
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_matches(expected: str | None, presented: str | None) -> bool:
    """Whether a presented CSRF token is the expected one. An empty value on either side
    never matches: a cross-site form can always send an empty field, and a browser
    without the cookie gives an empty expected value, so ``"" == ""`` must not pass."""
    if not expected or not presented:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())


@dataclass(frozen=True)
class IssuedSession:
    """A new session: ``token`` goes in the cookie (the only time it exists in the clear
    outside the person's browser), ``csrf_token`` in the pages."""

    token: str
    csrf_token: str
    user_id: str
    workspace_id: str
    expires_at: datetime


@dataclass(frozen=True)
class ActiveSession:
    """A presented session that is still good: its principal, the CSRF token unsafe
    requests must carry, and, when the token was just rotated, the new one to set."""

    principal: Principal
    csrf_token: str
    new_token: str | None
    expires_at: datetime


class Sessions:
    def __init__(self, settings: Settings, db: Database, clock: Clock) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self.store = SessionStore()
        self.users = UserStore()

    @property
    def idle(self) -> timedelta:
        return timedelta(minutes=self.settings.session_idle_minutes)

    @property
    def lifetime(self) -> timedelta:
        return timedelta(hours=self.settings.session_absolute_hours)

    @property
    def rotate_after(self) -> timedelta:
        return timedelta(minutes=self.settings.session_rotate_minutes)

    @property
    def secure_cookie(self) -> bool:
        """``Secure`` when people reach this server over HTTPS."""
        return self.settings.public_base_url.lower().startswith("https://")

    def cookie(self, token: str, expires_at: datetime) -> str:
        """The session cookie's ``Set-Cookie`` value, lasting until the absolute timeout."""
        seconds = int((expires_at - self.clock.now()).total_seconds())
        return set_cookie_header(SESSION_COOKIE, token, secure=self.secure_cookie, max_age=seconds)

    def cookie_removal(self) -> str:
        return set_cookie_header(SESSION_COOKIE, "", secure=self.secure_cookie, max_age=0)

    # -- beginning ---------------------------------------------------------------------
    def issue(
        self,
        unit: UnitOfWork,
        *,
        user_id: str,
        workspace_id: str,
        epoch: int,
        address: str | None,
    ) -> IssuedSession:
        """Begin a session in the sign-in's unit of work (always a fresh token)."""
        now = self.clock.now()
        self.store.forget_ended(unit, user_id, now, now - self.idle)
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        expires_at = now + self.lifetime
        self.store.add(
            unit,
            session_id=str(uuid.uuid4()),
            token_hash=token_hash(token),
            user_id=user_id,
            workspace_id=workspace_id,
            epoch=epoch,
            csrf_token=csrf,
            address=address,
            now=now,
            expires_at=expires_at,
        )
        return IssuedSession(token, csrf, user_id, workspace_id, expires_at)

    # -- every request -----------------------------------------------------------------
    def resolve(self, token: str | None, address: str | None = None) -> ActiveSession:
        """The session of the cookie's ``token``; ``Unauthenticated`` when there is none
        or it ended (timed out, signed out, the user disabled, or no longer an active
        member of the session's workspace: removed, or disabled there by its admin)."""
        if not token:
            raise Unauthenticated("sign in, or send an API key as `Authorization: Bearer <key>`")
        hashed = token_hash(token)
        with self.db.read() as unit:
            found = self.store.find(unit, hashed)
        if found is None:
            raise Unauthenticated("your session has ended; sign in again")
        row, user, membership = found
        now = self.clock.now()
        if (
            row.expires_at <= now
            or row.last_seen_at + self.idle <= now
            or user.disabled_at is not None
            or row.epoch != user.session_epoch
            or membership is None
            or membership.disabled_at is not None
        ):
            raise Unauthenticated("your session has ended; sign in again")
        new_token: str | None = None
        session_id = row.id
        if now - row.last_seen_at >= TOUCH_EVERY:
            new_token, session_id = self._touch(row.id, now)
        principal = Principal(
            workspace_id=row.workspace_id,
            role=Role(membership.role),
            name=user.email,
            user_id=user.id,
            kind=CallerKind.USER,
            address=address,
            session_id=session_id,
        )
        return ActiveSession(principal, row.csrf_token, new_token, row.expires_at)

    def _touch(self, session_id: str, now: datetime) -> tuple[str | None, str]:
        """Note the session was seen; rotate its token when it is old enough. Returns
        (the new token or None, the id of the session row now in use)."""
        with self.db.session() as unit:
            row = self.store.get_for_update(unit, session_id)
            # Gone (signed out meanwhile) or touched by a concurrent request: nothing to do.
            if row is None or now - row.last_seen_at < TOUCH_EVERY:
                return None, session_id
            row.last_seen_at = now
            if now - row.created_at < self.rotate_after or row.expires_at <= now + ROTATION_GRACE:
                return None, session_id
            token = secrets.token_urlsafe(32)
            successor = self.store.add(
                unit,
                session_id=str(uuid.uuid4()),
                token_hash=token_hash(token),
                user_id=row.user_id,
                workspace_id=row.workspace_id,
                epoch=row.epoch,
                csrf_token=row.csrf_token,
                address=row.address,
                now=now,
                expires_at=row.expires_at,
            )
            row.expires_at = now + ROTATION_GRACE
            return token, successor.id

    def workspaces(self, user_id: str) -> list[tuple[str, str, Role]]:
        """(id, name, role) of each workspace the user is an active member of (not
        disabled there): the switcher's."""
        with self.db.read() as unit:
            return [
                (workspace.id, workspace.name, Role(membership.role))
                for workspace, membership in self.store.memberships_of(unit, user_id)
                if membership.disabled_at is None
            ]

    # -- ending and switching ----------------------------------------------------------
    def end(self, unit: UnitOfWork, token: str | None) -> str | None:
        """End the session of ``token`` (every token it had), whoever's it is, in the
        caller's unit of work: signing in again in a browser ends the session it held,
        rather than leaving that token good until its idle timeout. Returns the user's
        id, or None when there was no such session."""
        if not token:
            return None
        found = self.store.find(unit, token_hash(token))
        if found is None:
            return None
        row = found[0]
        self.store.end_lineage(unit, row.user_id, row.csrf_token)
        return row.user_id

    def sign_out(self, token: str | None) -> str | None:
        """End the session of ``token`` in a unit of work of its own (see :meth:`end`)."""
        if not token:
            return None
        with self.db.session() as unit:
            return self.end(unit, token)

    def sign_out_everywhere(self, user_id: str) -> None:
        """End every session of the user, in every browser and worker."""
        with self.db.session() as unit:
            self.store.end_every_session(unit, user_id)

    def switch_workspace(self, principal: Principal, workspace_id: str) -> None:
        """Work in another workspace the user is an active member of (404 for any other,
        one they are disabled in included, so workspace ids do not leak)."""
        if principal.kind is not CallerKind.USER or principal.session_id is None:
            raise Forbidden("only a signed-in person switches workspaces")
        assert principal.user_id is not None
        with self.db.session() as unit:
            membership = self.users.membership(unit, workspace_id, principal.user_id)
            if membership is None or membership.disabled_at is not None:
                raise NotFound(f"no workspace with id {workspace_id!r}")
            row = self.store.get_for_update(unit, principal.session_id)
            if row is None:
                raise Unauthenticated("your session has ended; sign in again")
            self.store.set_workspace(unit, row.user_id, row.csrf_token, workspace_id)


__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "ROTATION_GRACE",
    "SAFE_METHODS",
    "SESSION_COOKIE",
    "TOUCH_EVERY",
    "ActiveSession",
    "IssuedSession",
    "Sessions",
    "csrf_matches",
    "set_cookie_header",
    "token_hash",
]
