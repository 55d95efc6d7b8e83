"""People signing in: with a password (throttled), with an OpenID Connect provider, and
through a one-time password reset link. Each success begins a server-side session
(:mod:`.sessions`); each sign-in, and each refused password, is in the audit log.

Password guessing is throttled on two counters: per account (``email:<address>``, also
for emails nobody has, so the lock reveals nothing about which accounts exist) and per
client address (``ip:<address>``). A counter reaching its limit within
``signin_lock_minutes`` locks for that long; a locked account or address is refused
before the password is even checked, with :class:`TooManyAttempts` saying until when.
A successful sign-in clears the account's counter (not the address's: one right
password must not buy an address another round of guesses at other accounts).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from authprofiles.core.audit import Action, Actor, AuditEntry, Target
from authprofiles.core.callers import Role
from authprofiles.core.errors import (
    Conflict,
    NotFound,
    TooManyAttempts,
    Unauthenticated,
    UpstreamError,
)
from authprofiles.core.ports import AuditTrail, Clock
from authprofiles.oauth.errors import GrantRefused, IdPUnavailable, OAuthFailure
from authprofiles.oauth.oidc_signin import OidcSignIn
from authprofiles.services.passwords import check_password, hash_password, verify_password
from authprofiles.services.signin.sessions import IssuedSession, Sessions
from authprofiles.settings import Settings
from authprofiles.store.db import ConstraintViolated, Database, UnitOfWork
from authprofiles.store.models import DEFAULT_WORKSPACE_ID, UserRow
from authprofiles.store.people import UserStore, normalise_email
from authprofiles.store.sessions import SignInRequestStore, ThrottleStore

#: How long a single sign-on may take at the provider.
SSO_REQUEST_TTL = timedelta(minutes=10)
#: Where a person lands after signing in when the sign-in names nowhere (or somewhere
#: that is not a path of this server).
DEFAULT_NEXT = "/"
_SSO, _RESET = "sso", "reset"


class SignInRefused(Unauthenticated):
    """A sign-in that did not succeed; ``detail`` says why in words for the person."""


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def safe_next(value: str | None) -> str:
    """``value`` when it is a path on this server, else ``/``: never an open redirect.
    A path starts with one ``/`` (``//host`` and ``/\\host`` are other hosts to a
    browser) and has no scheme, host, or control characters."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return DEFAULT_NEXT
    if any(ord(c) < 0x20 or c == "\\" for c in value) or len(value) > 2000:
        return DEFAULT_NEXT
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return DEFAULT_NEXT
    return value


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class SignedIn:
    """A sign-in that succeeded: the session to set, and where to go."""

    session: IssuedSession
    email: str
    next: str = DEFAULT_NEXT


@dataclass(frozen=True)
class SsoStart:
    """Where to send the person (the provider's authorization URL), and the value of the
    cookie that binds the sign-in to this browser (so a callback URL made for someone
    else's sign-in cannot be planted in another person's browser)."""

    redirect_url: str
    binding: str


@dataclass(frozen=True)
class ResetLink:
    url: str
    expires_at: datetime


class SignInService:
    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        sessions: Sessions,
        requests: SignInRequestStore,
        oidc: OidcSignIn,
        audit: AuditTrail,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.db = db
        self.sessions = sessions
        self.requests = requests
        self.oidc = oidc
        self.audit = audit
        self.clock = clock
        self.users = UserStore()
        self.throttle = ThrottleStore()

    # -- passwords ---------------------------------------------------------------------
    def sign_in_with_password(
        self, email: str, password: str, address: str | None, next_url: str | None = None
    ) -> SignedIn:
        """A session for the person whose email and password these are. Refused with
        :class:`TooManyAttempts` while the account or the address is locked, and with
        :class:`SignInRefused` for a wrong email or password (the same words for both),
        a disabled user or one in no workspace."""
        now = self.clock.now()
        email = normalise_email(email)[:320]
        keys = [f"email:{email}"] + ([f"ip:{address}"] if address else [])
        with self.db.read() as unit:
            locked = self.throttle.locked_until(unit, keys, now)
            user = self.users.by_email(unit, email) if email else None
            workspace_id = self._first_workspace(unit, user.id) if user is not None else None
        if locked is not None:
            raise self._locked(locked, now)
        # Argon2 runs whether or not the user exists (the same time either way).
        if not verify_password(user.password_hash if user is not None else None, password):
            self._failed(keys, now, user, workspace_id, address)
        assert user is not None
        if user.disabled_at is not None:
            raise SignInRefused("this account is disabled; ask an admin of your workspace")
        if workspace_id is None:
            raise SignInRefused("this account is in no workspace; ask an admin to add you")
        with self.db.session() as unit:
            self.throttle.clear(unit, keys[0])
            signed_in = self._begin(unit, user, workspace_id, address, "password")
        return SignedIn(signed_in, user.email, safe_next(next_url))

    def _failed(
        self,
        keys: list[str],
        now: datetime,
        user: UserRow | None,
        workspace_id: str | None,
        address: str | None,
    ) -> None:
        window = timedelta(minutes=self.settings.signin_lock_minutes)
        limits = [self.settings.signin_max_failures_per_account]
        limits += [self.settings.signin_max_failures_per_address] * (len(keys) - 1)
        for attempt in range(2):  # two first failures may race to create one counter
            try:
                with self.db.session() as unit:
                    locks = [
                        self.throttle.record_failure(
                            unit,
                            key,
                            now=now,
                            window_start=now - window,
                            limit=limit,
                            lock_until=now + window,
                        )
                        for key, limit in zip(keys, limits, strict=True)
                    ]
                    if user is not None and workspace_id is not None:
                        self.audit.record(
                            AuditEntry(
                                workspace_id=workspace_id,
                                action=Action.USER_SIGNIN_FAILED,
                                actor=Actor("user", user.id, user.email),
                                target=Target("user", user.id, user.email),
                                address=address,
                                detail={"method": "password"},
                            ),
                            unit,
                        )
                break
            except ConstraintViolated:
                if attempt:
                    raise
        locked = max((lock for lock in locks if lock is not None), default=None)
        if locked is not None:
            raise self._locked(locked, now)
        raise SignInRefused("wrong email or password")

    @staticmethod
    def _locked(until: datetime, now: datetime) -> TooManyAttempts:
        seconds = max(1, int((until - now).total_seconds() + 0.999))
        return TooManyAttempts(
            f"too many failed sign-ins; try again after {_when(until)}", until, seconds
        )

    # -- single sign-on ----------------------------------------------------------------
    @property
    def sso_enabled(self) -> bool:
        return bool(self.settings.sso_issuer and self.settings.sso_client_id)

    @property
    def sso_provider_name(self) -> str | None:
        if not self.sso_enabled:
            return None
        issuer = self.settings.sso_issuer or ""
        return self.settings.sso_provider_name or urlsplit(issuer).hostname or issuer

    @property
    def sso_redirect_uri(self) -> str:
        return self.settings.public_base_url + "/signin/sso/callback"

    def _sso_settings(self) -> tuple[str, str]:
        if not self.sso_enabled:
            raise NotFound("single sign-on is not set up on this server")
        assert self.settings.sso_issuer is not None and self.settings.sso_client_id is not None
        return self.settings.sso_issuer, self.settings.sso_client_id

    def start_sso(self, next_url: str | None = None) -> SsoStart:
        """Begin a sign-in at the provider: state, nonce and PKCE verifier kept (the state
        hashed; the rest encrypted) for :data:`SSO_REQUEST_TTL`, once."""
        issuer, client_id = self._sso_settings()
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        verifier, binding = secrets.token_urlsafe(48), secrets.token_urlsafe(32)
        try:
            url = self.oidc.authorization_url(
                issuer,
                client_id=client_id,
                redirect_uri=self.sso_redirect_uri,
                scope=self.settings.sso_scopes,
                state=state,
                nonce=nonce,
                code_verifier=verifier,
            )
        except OAuthFailure as exc:
            raise self._upstream(exc) from None
        now = self.clock.now()
        with self.db.session() as unit:
            self.requests.forget_expired(unit, now)
            self.requests.add(
                unit,
                request_id=str(uuid.uuid4()),
                state_hash=_hash(state),
                secrets={
                    "kind": _SSO,
                    "nonce": nonce,
                    "code_verifier": verifier,
                    "next": safe_next(next_url),
                    "binding": _hash(binding),
                },
                now=now,
                expires_at=now + SSO_REQUEST_TTL,
            )
        return SsoStart(url, binding)

    def complete_sso(
        self,
        *,
        state: str | None,
        code: str | None,
        error: str | None,
        iss: str | None,
        binding: str | None,
        address: str | None,
    ) -> SignedIn:
        """The provider sent the person back: redeem the code, check the ID token, find
        (or, when ``sso_provision_role`` is set, create) the user by verified email, and
        begin a session. Every refusal is :class:`SignInRefused` (or 502 when the
        provider could not be reached)."""
        issuer, client_id = self._sso_settings()
        if not state:
            raise SignInRefused("the provider sent no state back; start the sign-in again")
        now = self.clock.now()
        with self.db.session() as unit:
            # Claimed at once: a state is good for one callback, success or not.
            request = self.requests.usable(unit, _hash(state), now, claim=True)
        if request is None or request.get("kind") != _SSO:
            raise SignInRefused("this sign-in was used already or has expired; start again")
        if binding is None or not hmac.compare_digest(request["binding"], _hash(binding)):
            raise SignInRefused("this sign-in was started in another browser; start again")
        if error:
            raise SignInRefused(f"the provider refused the sign-in ({error[:100]})")
        try:
            metadata = self.oidc.metadata(issuer)
            # RFC 9207 section 2.4: an answer naming another issuer, or none where the
            # provider says it names itself, may come from another server (a mix-up).
            if (iss is not None and iss != issuer) or (
                iss is None and metadata.iss_parameter_supported
            ):
                raise SignInRefused("the answer does not come from the configured provider (iss)")
            if not code:
                raise SignInRefused("the provider sent no code back; start the sign-in again")
            secret = self.settings.sso_client_secret
            claims = self.oidc.redeem(
                issuer,
                client_id=client_id,
                client_secret=secret.get_secret_value() if secret else None,
                code=code,
                code_verifier=request["code_verifier"],
                redirect_uri=self.sso_redirect_uri,
                nonce=request["nonce"],
                now=now,
            )
        except SignInRefused:
            raise
        except GrantRefused as exc:
            raise SignInRefused(f"the provider refused the code ({exc.error})") from None
        except OAuthFailure as exc:
            if isinstance(exc, IdPUnavailable):
                raise self._upstream(exc) from None
            raise SignInRefused(exc.detail) from None
        email = self._verified_email(claims)
        with self.db.session() as unit:
            user = self.users.by_email(unit, email)
            if user is None:
                user = self._provision(unit, email, claims)
            if user.disabled_at is not None:
                raise SignInRefused("this account is disabled; ask an admin of your workspace")
            workspace_id = self._first_workspace(unit, user.id)
            if workspace_id is None:
                raise SignInRefused("this account is in no workspace; ask an admin to add you")
            session = self._begin(unit, user, workspace_id, address, "sso")
            email = user.email
        return SignedIn(session, email, safe_next(request.get("next")))

    @staticmethod
    def _verified_email(claims: dict[str, Any]) -> str:
        email = claims.get("email")
        if not isinstance(email, str) or "@" not in email:
            raise SignInRefused("the provider did not say who you are by email (the email scope?)")
        # OpenID Connect Core 5.1: "email_verified: True if the End-User's e-mail address
        # has been verified". An unverified address could be anyone's: not matched.
        verified = claims.get("email_verified")
        if verified is not True and verified != "true":
            raise SignInRefused("the provider has not verified your email address")
        return normalise_email(email)

    def _provision(self, unit: UnitOfWork, email: str, claims: dict[str, Any]) -> UserRow:
        role = self.settings.sso_provision_role
        if role is None:
            raise SignInRefused(
                f"there is no account for {email} here; ask an admin to add you first"
            )
        name = claims.get("name")
        user = self.users.add(
            unit,
            user_id=str(uuid.uuid4()),
            email=email,
            name=name[:200] if isinstance(name, str) else "",
            password_hash=None,
        )
        workspace_id = DEFAULT_WORKSPACE_ID
        if self.users.workspace(unit, workspace_id) is None:
            raise SignInRefused("this server has no default workspace to add you to")
        self.users.set_membership(unit, workspace_id, user.id, Role(role).value)
        self.audit.record(
            AuditEntry(
                workspace_id=workspace_id,
                action=Action.USER_CREATED,
                actor=Actor("user", user.id, user.email),
                target=Target("user", user.id, user.email),
                detail={"method": "sso", "role": role},
            ),
            unit,
        )
        return user

    @staticmethod
    def _upstream(exc: OAuthFailure) -> UpstreamError:
        return UpstreamError(f"the sign-in provider could not be used: {exc.detail}")

    # -- password reset links ----------------------------------------------------------
    def reset_link(self, user_id: str) -> ResetLink:
        """A one-time link (``{public URL}/reset/{token}``) that lets the user set a
        password, good for ``password_reset_hours``; a password change or a newer
        sign-out-everywhere voids it. The token is stored hashed."""
        token = secrets.token_urlsafe(32)
        now = self.clock.now()
        expires_at = now + timedelta(hours=self.settings.password_reset_hours)
        with self.db.session() as unit:
            user = self.users.get(unit, user_id)
            if user is None:
                raise NotFound(f"no user with id {user_id!r}")
            self.requests.forget_expired(unit, now)
            self.requests.add(
                unit,
                request_id=str(uuid.uuid4()),
                state_hash=_hash(token),
                secrets={"kind": _RESET, "user_id": user.id, "epoch": str(user.session_epoch)},
                now=now,
                expires_at=expires_at,
            )
        return ResetLink(f"{self.settings.public_base_url}/reset/{quote(token)}", expires_at)

    def reset_email(self, token: str) -> str:
        """The email of the user a reset link is for (the page shows it); ``NotFound``
        when the link is unknown, used, expired or voided."""
        now = self.clock.now()
        with self.db.read() as unit:
            user = self._reset_user(unit, token, now, claim=False)
            return user.email

    def reset_password(self, token: str, password: str, address: str | None) -> SignedIn | None:
        """Set the password through a reset link (once), end the user's sessions, and
        sign them in (None when they are in no workspace to sign in to)."""
        check_password(password)
        password_hash = hash_password(password)
        now = self.clock.now()
        with self.db.session() as unit:
            user = self._reset_user(unit, token, now, claim=False)
            if user.disabled_at is not None:
                raise Conflict("this account is disabled; ask an admin of your workspace")
            user = self._reset_user(unit, token, now, claim=True)
            user.password_hash = password_hash
            unit.flush()
            self.sessions.store.end_every_session(unit, user.id)
            unit.refresh(user)
            workspace_id = self._first_workspace(unit, user.id)
            self.audit.record(
                AuditEntry(
                    workspace_id=workspace_id or DEFAULT_WORKSPACE_ID,
                    action=Action.USER_PASSWORD_RESET,
                    actor=Actor("user", user.id, user.email),
                    target=Target("user", user.id, user.email),
                    address=address,
                    detail={"method": "link"},
                ),
                unit,
            )
            if workspace_id is None:
                return None
            session = self._begin(unit, user, workspace_id, address, "reset")
            return SignedIn(session, user.email)

    def _reset_user(self, unit: UnitOfWork, token: str, now: datetime, *, claim: bool) -> UserRow:
        found = self.requests.usable(unit, _hash(token), now, claim=claim) if token else None
        user = None
        if found is not None and found.get("kind") == _RESET:
            user = self.users.get(unit, found.get("user_id", ""))
            if user is not None and str(user.session_epoch) != found.get("epoch"):
                user = None  # voided by a password change or sign-out everywhere since
        if user is None:
            raise NotFound("this reset link is unknown, used or expired; ask for a new one")
        return user

    # -- shared ------------------------------------------------------------------------
    def _first_workspace(self, unit: UnitOfWork, user_id: str) -> str | None:
        workspaces = self.users.workspaces_of(unit, user_id)
        return workspaces[0][0].id if workspaces else None

    def _begin(
        self,
        unit: UnitOfWork,
        user: UserRow,
        workspace_id: str,
        address: str | None,
        method: str,
    ) -> IssuedSession:
        session = self.sessions.issue(
            unit,
            user_id=user.id,
            workspace_id=workspace_id,
            epoch=user.session_epoch,
            address=address,
        )
        self.audit.record(
            AuditEntry(
                workspace_id=workspace_id,
                action=Action.USER_SIGNED_IN,
                actor=Actor("user", user.id, user.email),
                target=Target("user", user.id, user.email),
                address=address,
                detail={"method": method},
            ),
            unit,
        )
        return session


__all__ = [
    "DEFAULT_NEXT",
    "SSO_REQUEST_TTL",
    "ResetLink",
    "SignInRefused",
    "SignInService",
    "SignedIn",
    "SsoStart",
    "safe_next",
]
