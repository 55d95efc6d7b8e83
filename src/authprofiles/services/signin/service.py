"""People signing in: with a password (throttled), with an OpenID Connect provider, and
through a one-time password reset link. Each success begins a server-side session
(:mod:`.sessions`); each sign-in, and each refused password, is in the audit log.

Password guessing is throttled on two counters: per account (``email:<address>``, also
for emails nobody has, so the lock reveals nothing about which accounts exist) and per
client address (``ip:<address>``). Each attempt is counted *before* its password is
checked, in one short write transaction that also reads the locks, so parallel
requests cannot slip past the limit while argon2 runs. A counter reaching its limit
within ``signin_lock_minutes`` locks for that long; a locked account or address is
refused before the password is even checked, with :class:`TooManyAttempts` saying until
when. A successful sign-in clears the account's counter and takes back its own attempt
on the address's (only that one: a right password must not buy an address another
round of guesses at other accounts).

The address is the client address the server sees. Behind a reverse proxy on another
host that is the proxy's, for everyone, unless the server trusts the proxy's
``X-Forwarded-For``: uvicorn (which ``authprofiles serve`` runs, with its default
``proxy_headers``) trusts it only from the addresses in the ``FORWARDED_ALLOW_IPS``
environment variable (default ``127.0.0.1,::1``, a proxy on the same machine);
``serve`` has no option of its own for it.

A sign-in lands in a workspace the person is an active member of (a membership can be
disabled in one workspace by its admin): the oldest such membership, or, for a reset
link made for a workspace, that one when the person is active there.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn
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
from authprofiles.services.signin.sessions import IssuedSession, Sessions, token_hash
from authprofiles.settings import Settings
from authprofiles.store.db import ConstraintViolated, Database, UnitOfWork
from authprofiles.store.models import DEFAULT_WORKSPACE_ID, UserRow
from authprofiles.store.people import UserStore, normalise_email
from authprofiles.store.sessions import Attempt, SignInRequestStore, ThrottleStore

#: How long a single sign-on may take at the provider.
SSO_REQUEST_TTL = timedelta(minutes=10)
#: Where a person lands after signing in when the sign-in names nowhere (or somewhere
#: that is not a path of this server).
DEFAULT_NEXT = "/"
_SSO, _RESET = "sso", "reset"
#: The answer to a person an admin has turned off: disabled everywhere, or in every
#: workspace they are a member of.
_DISABLED = "this account is disabled; ask an admin of your workspace"


class SignInRefused(Unauthenticated):
    """A sign-in that did not succeed; ``detail`` says why in words for the person."""


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
        self,
        email: str,
        password: str,
        address: str | None,
        next_url: str | None = None,
        *,
        previous_token: str | None = None,
    ) -> SignedIn:
        """A session for the person whose email and password these are. Refused with
        :class:`TooManyAttempts` while the account or the address is locked, and with
        :class:`SignInRefused` for a wrong email or password (the same words for both),
        a disabled user, one disabled in every workspace, or one in no workspace.
        ``previous_token``, the session this browser held, ends on success.

        The attempt is counted first (see :class:`ThrottleStore`), in its own short
        transaction; argon2 runs with no transaction open; a right password then takes
        the account's count back to nothing and the address's attempt back."""
        now = self.clock.now()
        email = normalise_email(email)[:320]
        keys = [f"email:{email}"] + ([f"ip:{address}"] if address else [])
        attempts = self._count_attempt(keys, now)
        with self.db.read() as unit:
            user = self.users.by_email(unit, email) if email else None
        # Argon2 runs whether or not the user exists (the same time either way).
        if not verify_password(user.password_hash if user is not None else None, password):
            self._failed(attempts, now, user, address)
        assert user is not None
        with self.db.session() as unit:
            self.throttle.clear(unit, keys[0])
            for attempt in attempts[1:]:
                self.throttle.forgive(
                    unit, attempt, limit=self.settings.signin_max_failures_per_address
                )
        with self.db.session() as unit:
            user = self.users.get(unit, user.id)
            if user is None:
                raise SignInRefused("wrong email or password")
            workspace_id = self._landing_workspace(unit, user)
            signed_in = self._begin(unit, user, workspace_id, address, "password", previous_token)
            email = user.email
        return SignedIn(signed_in, email, safe_next(next_url))

    def _count_attempt(self, keys: list[str], now: datetime) -> list[Attempt]:
        """Count one password attempt on each key, or refuse (:class:`TooManyAttempts`)
        when one of them is locked, in one write transaction, before any password is
        checked. Nothing is counted when any key is locked."""
        window = timedelta(minutes=self.settings.signin_lock_minutes)
        limits = [self.settings.signin_max_failures_per_account]
        limits += [self.settings.signin_max_failures_per_address] * (len(keys) - 1)
        for attempt in range(3):  # first attempts may race to create one counter (PG)
            try:
                with self.db.session() as unit:
                    counted: list[Attempt] = []
                    for key, limit in zip(keys, limits, strict=True):
                        counted.append(
                            self.throttle.count_attempt(
                                unit,
                                key,
                                now=now,
                                window_start=now - window,
                                limit=limit,
                                lock_until=now + window,
                            )
                        )
                        if counted[-1].refused:
                            # Locked: the transaction rolls back, counting nothing.
                            raise self._locked(counted[-1].locked_until or now, now)
                    return counted
            except ConstraintViolated:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _failed(
        self,
        attempts: list[Attempt],
        now: datetime,
        user: UserRow | None,
        address: str | None,
    ) -> NoReturn:
        if user is not None:
            with self.db.session() as unit:
                workspace_id = self._first_workspace(unit, user.id)
                if workspace_id is not None:
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
        locked = max((a.locked_until for a in attempts if a.locked_until is not None), default=None)
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
                state_hash=token_hash(state),
                secrets={
                    "kind": _SSO,
                    "nonce": nonce,
                    "code_verifier": verifier,
                    "next": safe_next(next_url),
                    "binding": token_hash(binding),
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
        previous_token: str | None = None,
    ) -> SignedIn:
        """The provider sent the person back: redeem the code, check the ID token, check
        the email's domain is allowed (``sso_allowed_domains``), find (or, when
        ``sso_provision_role`` is set, create) the user by verified email, and begin a
        session (ending ``previous_token``'s, the one this browser held). Every refusal
        is :class:`SignInRefused` (or 502 when the provider could not be reached)."""
        issuer, client_id = self._sso_settings()
        if not state:
            raise SignInRefused("the provider sent no state back; start the sign-in again")
        now = self.clock.now()
        with self.db.session() as unit:
            # Claimed at once: a state is good for one callback, success or not.
            request = self.requests.usable(unit, token_hash(state), now, claim=True)
        if request is None or request.get("kind") != _SSO:
            raise SignInRefused("this sign-in was used already or has expired; start again")
        if binding is None or not hmac.compare_digest(request["binding"], token_hash(binding)):
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
        self._check_domain(email)
        with self.db.session() as unit:
            user = self.users.by_email(unit, email)
            if user is None:
                user = self._provision(unit, email, claims)
            workspace_id = self._landing_workspace(unit, user)
            session = self._begin(unit, user, workspace_id, address, "sso", previous_token)
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

    def _check_domain(self, email: str) -> None:
        """Refuse an email outside ``sso_allowed_domains`` (when set), before it is
        matched to an account or one is made for it: a provider that lets anyone
        register vouches for addresses at any domain."""
        allowed = self.settings.sso_allowed_domain_set
        if not allowed:
            return
        domain = email.rpartition("@")[2].lower()
        if domain not in allowed:
            raise SignInRefused(
                f"single sign-on here is for addresses at {', '.join(sorted(allowed))}; "
                f"{domain!r} is not one of them"
            )

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
    def reset_link(self, user_id: str, workspace_id: str | None = None) -> ResetLink:
        """A one-time link (``{public URL}/reset/{token}``) that lets the user set a
        password, good for ``password_reset_hours``; a password change, a newer
        sign-out-everywhere or a newer link for the same user voids it (the older unused
        links are marked used here). The token is stored hashed. A link made for
        ``workspace_id`` (an admin's of that workspace) lands the person there when they
        are an active member of it."""
        token = secrets.token_urlsafe(32)
        now = self.clock.now()
        expires_at = now + timedelta(hours=self.settings.password_reset_hours)
        with self.db.session() as unit:
            user = self.users.get(unit, user_id)
            if user is None:
                raise NotFound(f"no user with id {user_id!r}")
            self.requests.forget_expired(unit, now)
            self.requests.claim_matching(
                unit,
                now,
                lambda found: found.get("kind") == _RESET and found.get("user_id") == user.id,
            )
            carried = {"kind": _RESET, "user_id": user.id, "epoch": str(user.session_epoch)}
            if workspace_id is not None:
                carried["workspace_id"] = workspace_id
            self.requests.add(
                unit,
                request_id=str(uuid.uuid4()),
                state_hash=token_hash(token),
                secrets=carried,
                now=now,
                expires_at=expires_at,
            )
        return ResetLink(f"{self.settings.public_base_url}/reset/{quote(token)}", expires_at)

    def reset_email(self, token: str) -> str:
        """The email of the user a reset link is for (the page shows it); ``NotFound``
        when the link is unknown, used, expired or voided."""
        now = self.clock.now()
        with self.db.read() as unit:
            user, _ = self._reset_user(unit, token, now, claim=False)
            return user.email

    def reset_password(
        self,
        token: str,
        password: str,
        address: str | None,
        *,
        previous_token: str | None = None,
    ) -> SignedIn | None:
        """Set the password through a reset link (once), end the user's sessions (and
        ``previous_token``'s, the one this browser held), and sign them in: in the
        link's workspace when they are active there, else their first active one (None
        when they are in no workspace at all). Refused (``Conflict``) for a disabled
        user, or one disabled in every workspace they are in."""
        check_password(password)
        password_hash = hash_password(password)
        now = self.clock.now()
        with self.db.session() as unit:
            user, _ = self._reset_user(unit, token, now, claim=False)
            memberships = self.sessions.store.memberships_of(unit, user.id)
            if user.disabled_at is not None or (
                memberships and all(m.disabled_at is not None for _, m in memberships)
            ):
                raise Conflict(_DISABLED)
            user, carried = self._reset_user(unit, token, now, claim=True)
            user.password_hash = password_hash
            unit.flush()
            self.sessions.store.end_every_session(unit, user.id)
            unit.refresh(user)
            workspace_id = (
                self._landing_workspace(unit, user, carried.get("workspace_id"))
                if memberships
                else None
            )
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
                self.sessions.end(unit, previous_token)
                return None
            session = self._begin(unit, user, workspace_id, address, "reset", previous_token)
            return SignedIn(session, user.email)

    def _reset_user(
        self, unit: UnitOfWork, token: str, now: datetime, *, claim: bool
    ) -> tuple[UserRow, dict[str, str]]:
        """The user of a usable reset link, and what the link carries."""
        found = self.requests.usable(unit, token_hash(token), now, claim=claim) if token else None
        user = None
        if found is not None and found.get("kind") == _RESET:
            user = self.users.get(unit, found.get("user_id", ""))
            if user is not None and str(user.session_epoch) != found.get("epoch"):
                user = None  # voided by a password change or sign-out everywhere since
        if user is None or found is None:
            raise NotFound("this reset link is unknown, used or expired; ask for a new one")
        return user, found

    # -- shared ------------------------------------------------------------------------
    def _first_workspace(self, unit: UnitOfWork, user_id: str) -> str | None:
        """The workspace a person's own audit entries go to when no session names one:
        their oldest membership, active or not."""
        memberships = self.sessions.store.memberships_of(unit, user_id)
        active = [w.id for w, m in memberships if m.disabled_at is None]
        return active[0] if active else memberships[0][0].id if memberships else None

    def _landing_workspace(
        self, unit: UnitOfWork, user: UserRow, preferred: str | None = None
    ) -> str:
        """The workspace a sign-in lands in: ``preferred`` when the person is an active
        member of it, else their oldest active membership. Refused for a disabled user
        and one disabled in every workspace (the same words: either way an admin has
        turned them off), and for one in no workspace."""
        if user.disabled_at is not None:
            raise SignInRefused(_DISABLED)
        memberships = self.sessions.store.memberships_of(unit, user.id)
        if not memberships:
            raise SignInRefused("this account is in no workspace; ask an admin to add you")
        active = [workspace.id for workspace, m in memberships if m.disabled_at is None]
        if not active:
            raise SignInRefused(_DISABLED)
        return preferred if preferred in active else active[0]

    def _begin(
        self,
        unit: UnitOfWork,
        user: UserRow,
        workspace_id: str,
        address: str | None,
        method: str,
        previous_token: str | None = None,
    ) -> IssuedSession:
        """Issue the new session and end ``previous_token``'s (whoever's: the browser
        now belongs to this sign-in), in one unit of work."""
        self.sessions.end(unit, previous_token)
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
