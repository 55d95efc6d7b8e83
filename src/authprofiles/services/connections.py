"""Connection use cases: authorize (every grant) and authorize again, complete the
callback, read, list, disconnect, and clean up authorizations nobody finished."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from authprofiles.core.connections import SHARED_OWNER, Connection, ConnectionStatus, TokenSet
from authprofiles.core.errors import FieldError, Forbidden, NotFound, ValidationFailed
from authprofiles.core.profiles import AuthorizationMode, AuthType, FieldLocation, Profile
from authprofiles.core.validation import check_use_input
from authprofiles.oauth.errors import GrantRefused, OAuthFailure
from authprofiles.oauth.grants import new_code_verifier, new_state
from authprofiles.services.access import Principal, Role, require_role
from authprofiles.services.errors import from_oauth, refuses_client
from authprofiles.services.oauth_settings import client_settings, connection_settings
from authprofiles.store.profiles import UnreadableProfile

if TYPE_CHECKING:
    from authprofiles.services.container import Services

log = logging.getLogger("authprofiles.connections")


class ConnectionRequest(BaseModel):
    """Body of ``POST /profiles/{id}/connections``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    owner: str = Field(
        default=SHARED_OWNER,
        min_length=1,
        max_length=200,
        description="`shared` (default), or the user id the connection belongs to",
        examples=["shared"],
    )
    tenant: str | None = Field(
        default=None, description="Needed when the profile has tenancy", examples=["acme"]
    )
    fields: dict[str, str] = Field(
        default_factory=dict,
        description="Values of the profile's form fields (and of authorization fields "
        "without a stored value)",
        examples=[{"region": "eu"}],
    )
    username: str | None = Field(
        default=None,
        max_length=255,
        description="Password grant: the resource owner's username",
        examples=["alice"],
    )
    password: str | None = Field(
        default=None,
        max_length=1024,
        description="Password grant: write-only",
        examples=["correct horse battery staple"],
    )


class ReauthorizeRequest(BaseModel):
    """Body of ``POST /connections/{id}/reauthorize``, all optional: the password grant's
    credentials (needed in user mode, where none are kept; in preauthorized mode they
    replace the ones the connection keeps). The tenant and field values stay."""

    model_config = ConfigDict(extra="forbid")

    username: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="Password grant only: the resource owner's username",
        examples=["alice"],
    )
    password: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="Password grant only; write-only",
        examples=["correct horse battery staple"],
    )


@dataclass(frozen=True)
class StartedConnection:
    connection: Connection
    authorization_url: str | None = None


@dataclass(frozen=True)
class CallbackOutcome:
    ok: bool
    title: str
    message: str
    status_code: int = 200
    connection_id: str | None = None


@dataclass
class RevocationReport:
    revoked: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def hash_state(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


class ConnectionService:
    def __init__(self, services: Services) -> None:
        self.s = services

    # -- start ------------------------------------------------------------------------
    def create(
        self, principal: Principal, profile_id: str, request: ConnectionRequest
    ) -> StartedConnection:
        require_role(principal, Role.DEVELOPER)
        profile = self.s.profiles.get_configured(principal, profile_id)
        tenant = self._check_request(profile, request)
        if profile.auth_type is AuthType.AUTHORIZATION_CODE:
            return self._start_authorization_code(
                principal, profile, owner=request.owner, tenant=tenant, fields=request.fields
            )
        username = password = None
        if profile.auth_type is AuthType.PASSWORD:
            username, password = self._password_credentials(
                profile, request.username, request.password
            )
        shared = request.owner == SHARED_OWNER
        tokens = self._grant(
            profile,
            tenant=tenant,
            fields=request.fields,
            username=username,
            password=password,
            refused_shared=("connecting a shared connection" if shared else None),
        )
        # The token came first; only now is anything written, in one transaction.
        with self.s.db.session() as session:
            kept = self._keeps_credentials(profile)
            connection = self.s.connection_store.add(
                session,
                workspace_id=principal.workspace_id,
                profile_id=profile.id,
                owner=request.owner,
                tenant=tenant,
                fields=request.fields,
                # Seed 003: pre-authorized credentials are kept (encrypted) so tokens can be
                # regenerated when the refresh token is refused; a user's are used once.
                # Only the connection's own are kept: otherwise the profile's stand, as
                # they are when it is edited.
                username=request.username if kept else None,
                password=request.password if kept else None,
                status=ConnectionStatus.ACTIVE,
                tokens=tokens,
                requested_scopes=profile.scopes,
            )
            if connection.is_shared:
                self.s.profile_store.set_failing(session, profile.id, None)
        return StartedConnection(connection=connection)

    def _check_request(self, profile: Profile, request: ConnectionRequest) -> str | None:
        tenant, errors = check_use_input(profile, request.tenant, request.fields)
        if profile.auth_type is AuthType.PASSWORD:
            # Named with the rest: one answer lists everything the request lacks.
            try:
                self._password_credentials(profile, request.username, request.password)
            except ValidationFailed as exc:
                errors += exc.errors
        if errors:
            raise ValidationFailed(errors)
        return tenant

    @staticmethod
    def _form_values(profile: Profile, fields: dict[str, str]) -> dict[str, str]:
        keys = {f.key for f in profile.form_fields}
        return {k: v for k, v in fields.items() if k in keys}

    @staticmethod
    def _keeps_credentials(profile: Profile) -> bool:
        return (
            profile.auth_type is AuthType.PASSWORD
            and profile.authorization_mode is AuthorizationMode.PREAUTHORIZED
        )

    @classmethod
    def _password_credentials(
        cls,
        profile: Profile,
        username: str | None,
        password: str | None,
        kept: Connection | None = None,
    ) -> tuple[str, str]:
        """The username and password to run the grant with: the ones given, else (in
        preauthorized mode) the connection's own, else the profile's."""
        if cls._keeps_credentials(profile):
            username = username or (kept.username if kept else None) or profile.username
            password = password or (kept.password if kept else None) or profile.password
        errors = []
        if not username:
            errors.append(FieldError("username", "the password grant needs a username"))
        if not password:
            errors.append(FieldError("password", "the password grant needs a password"))
        if errors:
            raise ValidationFailed(errors)
        assert username is not None and password is not None
        return username, password

    def _grant(
        self,
        profile: Profile,
        *,
        tenant: str | None,
        fields: dict[str, str],
        username: str | None,
        password: str | None,
        refused_shared: str | None,
    ) -> TokenSet:
        """A new client credentials or password grant (the network call: no transaction
        is open). ``refused_shared`` names a shared connection's attempt: if the identity
        provider refuses the client itself, the profile is marked failing with it."""
        settings = client_settings(
            profile, tenant=tenant, fields=fields, redirect_uri=self.s.settings.callback_url
        )
        try:
            if profile.auth_type is AuthType.CLIENT_CREDENTIALS:
                return self.s.oauth.client_credentials(settings)
            assert username is not None and password is not None
            return self.s.oauth.password(
                settings,
                username=username,
                password=password,
                form_values=self._form_values(profile, fields),
            )
        except OAuthFailure as exc:
            if refused_shared is not None and refuses_client(exc):
                self._mark_failing(profile.id, f"{refused_shared}: {exc.detail}")
            raise from_oauth(exc) from None

    def _mark_failing(self, profile_id: str, reason: str) -> None:
        """The seeds' "failing": the identity provider refused the profile's client."""
        with self.s.db.session() as session:
            self.s.profile_store.set_failing(session, profile_id, reason)

    def _start_authorization_code(
        self,
        principal: Principal,
        profile: Profile,
        *,
        owner: str,
        tenant: str | None,
        fields: dict[str, str],
        again: Connection | None = None,
    ) -> StartedConnection:
        """A new pending connection and its authorization link; or, ``again``, a new link
        for that connection, which keeps its status and tokens until the callback brings
        new ones (a connection that works keeps working if the user never comes back)."""
        redirect_uri = self.s.settings.callback_url
        settings = client_settings(profile, tenant=tenant, fields=fields, redirect_uri=redirect_uri)
        state = new_state()
        verifier = new_code_verifier() if profile.pkce else None
        url = self.s.oauth.authorization_url(settings, state=state, code_verifier=verifier)
        store = self.s.connection_store
        with self.s.db.session() as session:
            if again is None:
                connection = store.add(
                    session,
                    workspace_id=principal.workspace_id,
                    profile_id=profile.id,
                    owner=owner,
                    tenant=tenant,
                    fields=fields,
                    username=None,
                    password=None,
                    status=ConnectionStatus.PENDING,
                    tokens=None,
                )
            else:
                row = store.locked_row(session, again.id)
                if row is None:
                    raise NotFound(f"no connection with id {again.id}")
                # Only the newest link completes it: an older one left open is forgotten.
                store.supersede_authorization_requests(session, again.id)
                connection = store.to_domain(row)
            store.add_authorization_request(
                session,
                workspace_id=principal.workspace_id,
                connection_id=connection.id,
                state_hash=hash_state(state),
                code_verifier=verifier,
                redirect_uri=redirect_uri,
                expires_at=self.s.clock.now()
                + timedelta(seconds=self.s.settings.authorization_state_ttl_seconds),
            )
        return StartedConnection(connection=connection, authorization_url=url)

    # -- authorize the same connection again -------------------------------------------
    def reauthorize(
        self, principal: Principal, connection_id: str, request: ReauthorizeRequest
    ) -> StartedConnection:
        """The same connection, authorized again (after ``needs_reauth``, or to replace a
        grant): for authorization code a new link whose callback stores the new tokens
        on this connection; for the other grants a new grant, stored at once."""
        require_role(principal, Role.DEVELOPER)
        with self.s.db.read() as session:
            connection = self.s.connection_store.get(session, principal.workspace_id, connection_id)
        if principal.user_id is not None and connection.owner not in (
            SHARED_OWNER,
            principal.user_id,
        ):
            raise Forbidden("this connection belongs to another user")
        profile = self.s.profiles.get_configured(principal, connection.profile_id)
        if profile.auth_type is AuthType.AUTHORIZATION_CODE:
            if request.username is not None or request.password is not None:
                raise ValidationFailed(
                    [
                        FieldError(name, "only the password grant takes credentials")
                        for name in ("username", "password")
                        if getattr(request, name) is not None
                    ]
                )
            return self._start_authorization_code(
                principal,
                profile,
                owner=connection.owner,
                tenant=connection.tenant,
                fields=connection.fields,
                again=connection,
            )
        username = password = None
        if profile.auth_type is AuthType.PASSWORD:
            username, password = self._password_credentials(
                profile, request.username, request.password, kept=connection
            )
        tokens = self._grant(
            profile,
            tenant=connection.tenant,
            fields=connection.fields,
            username=username,
            password=password,
            refused_shared=(f"shared connection {connection.id}" if connection.is_shared else None),
        )
        store = self.s.connection_store
        with self.s.db.session() as session:
            # Under its lock: a refresh finishing meanwhile (a compare-and-swap on the
            # version) finds the version moved on and drops its older tokens.
            row = store.locked_row(session, connection_id)
            if row is None:
                raise NotFound(f"no connection with id {connection_id}")
            store.store_new_grant(row, tokens, requested=profile.scopes)
            if self._keeps_credentials(profile):
                store.set_credentials(row, username=request.username, password=request.password)
            if row.owner == SHARED_OWNER:
                self.s.profile_store.set_failing(session, profile.id, None)
            renewed = store.to_domain(row)
        self.s.tokens.forget(connection_id)
        return StartedConnection(connection=renewed)

    # -- RFC 6749 section 4.1.2: the redirect back -----------------------------------------
    def complete_authorization(
        self,
        *,
        state: str | None,
        code: str | None,
        error: str | None,
        error_description: str | None,
    ) -> CallbackOutcome:
        if not state:
            return _refused("The answer from the identity provider carries no state.")
        with self.s.db.session() as session:
            row, verifier, claimed = self.s.connection_store.claim_authorization_request(
                session, hash_state(state)
            )
            if row is not None:
                connection_id, redirect_uri, expires_at = (
                    row.connection_id,
                    row.redirect_uri,
                    row.expires_at,
                )
        if row is None:
            return _refused(
                "This authorization was not started here, or it was replaced by a newer one, "
                "cancelled or expired."
            )
        if not claimed:
            return _refused("This authorization link was already used. Start again.")
        if expires_at <= self.s.clock.now():
            # Came back too late: a connection that never completed goes now.
            with self.s.db.session() as session:
                self.s.connection_store.expire_authorizations(
                    session, before=self.s.clock.now(), connection_id=connection_id
                )
            return _refused("This authorization took longer than allowed. Start again.")
        if error:
            # Section 4.1.2.1: the IdP reports the refusal on the redirect.
            text = f"{error}: {error_description}" if error_description else error
            self._record_callback_failure(
                connection_id,
                f"authorization refused ({text})",
                client_refused=refuses_client(GrantRefused(error, error_description, None)),
            )
            return _refused(f"The identity provider did not authorize: {text}.")
        if not code:
            self._record_callback_failure(
                connection_id, "the identity provider answered without a code", False
            )
            return _refused("The answer from the identity provider carries no code.")
        with self.s.db.read() as session:
            connection = self.s.connection_store.get(session, None, connection_id)
            profile = self.s.profile_store.get(
                session, connection.workspace_id, connection.profile_id
            )
        settings = connection_settings(profile, connection, redirect_uri)
        try:
            tokens = self.s.oauth.exchange_code(settings, code=code, code_verifier=verifier)
        except OAuthFailure as exc:
            self._record_callback_failure(
                connection_id, exc.detail, client_refused=refuses_client(exc)
            )
            return _refused(f"Exchanging the code failed: {exc.detail}.", status=502)
        with self.s.db.session() as session:
            locked = self.s.connection_store.locked_row(session, connection_id)
            if locked is not None:
                # The new grant replaces the old one whole, on the same connection.
                self.s.connection_store.store_new_grant(locked, tokens, requested=profile.scopes)
                if connection.is_shared:
                    self.s.profile_store.set_failing(session, profile.id, None)
        if locked is None:
            return _refused("This connection was deleted while it was being authorized.")
        self.s.tokens.forget(connection_id)
        return CallbackOutcome(
            ok=True,
            title="Connected",
            message=f"{profile.identity_provider or profile.name} is connected. "
            "You can close this window.",
            connection_id=connection_id,
        )

    def _record_callback_failure(
        self, connection_id: str, message: str, client_refused: bool
    ) -> None:
        """Say on the connection why its authorization failed. One that never held a
        token has nothing to serve: it becomes ``needs_reauth`` (no longer ``pending``),
        so its owner sees why and can authorize it again. One being authorized again
        keeps its status and the tokens it has. A shared connection's client refused by
        the identity provider marks the profile failing."""
        with self.s.db.session() as session:
            row = self.s.connection_store.locked_row(session, connection_id)
            if row is None:
                return
            never_connected = row.status == ConnectionStatus.PENDING.value
            self.s.connection_store.mark_error(row, message, needs_reauth=never_connected)
            if client_refused and row.owner == SHARED_OWNER:
                self.s.profile_store.set_failing(
                    session, row.profile_id, f"shared connection {row.id}: {message}"
                )

    # -- authorizations nobody finished --------------------------------------------------
    def expire_abandoned(self) -> int:
        """Delete each connection whose first authorization ended unanswered or denied
        (its ``authorization_state_ttl_seconds`` passed), and every authorization request
        that ended; returns how many connections went. A connection being authorized again is
        never deleted: it keeps what it had. Run by the background refresher's pass."""
        # A callback that claimed its request just before the end may still be exchanging
        # the code: it has the identity provider's deadline to do so.
        before = self.s.clock.now() - timedelta(seconds=self.s.settings.idp_deadline_seconds)
        with self.s.db.session() as session:
            gone = self.s.connection_store.expire_authorizations(session, before=before)
        if gone:
            log.info("deleted %d connections whose authorization was never completed", len(gone))
        return len(gone)

    # -- read ------------------------------------------------------------------------------
    def get(self, principal: Principal, connection_id: str) -> Connection:
        require_role(principal, Role.VIEWER)
        with self.s.db.read() as session:
            return self.s.connection_store.get(session, principal.workspace_id, connection_id)

    def list(
        self,
        principal: Principal,
        profile_id: str | None = None,
        *,
        owner: str | None = None,
        status: ConnectionStatus | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int | None = None,
    ) -> list[Connection]:
        """The connections of the caller's workspace (what ``get`` shows it), those of
        ``profile_id``, ``owner`` and ``status`` when given, oldest first; a page of
        ``limit`` after the ``(created_at, id)`` key ``after``."""
        require_role(principal, Role.VIEWER)
        with self.s.db.read() as session:
            return self.s.connection_store.list(
                session,
                principal.workspace_id,
                profile_id,
                owner=owner,
                status=status,
                after=after,
                limit=limit,
            )

    # -- disconnect ------------------------------------------------------------------------
    def delete(self, principal: Principal, connection_id: str) -> RevocationReport:
        require_role(principal, Role.DEVELOPER)
        with self.s.db.read() as session:
            connection = self.s.connection_store.get(session, principal.workspace_id, connection_id)
            profile = self.s.profile_store.get(
                session, connection.workspace_id, connection.profile_id
            )
        report = self.revoke(profile, connection)
        with self.s.db.session() as session:
            session.delete(
                self.s.connection_store.row(session, principal.workspace_id, connection_id)
            )
        self.s.tokens.forget(connection_id)
        return report

    def delete_profile(self, principal: Principal, profile_id: str) -> RevocationReport:
        with self.s.db.read() as session:
            # A profile whose secrets cannot be decrypted can still be deleted; its tokens
            # cannot be revoked without them, and the report says so.
            profile = self.s.profile_store.get(
                session, principal.workspace_id, profile_id, strict=False
            )
            connections = [
                self.s.connection_store.to_domain(r)
                for r in self.s.connection_store.for_profile(session, profile_id)
            ]
        report = RevocationReport()
        if isinstance(profile, UnreadableProfile):
            report.errors.append(f"tokens were not revoked: {profile.failing_reason}")
            connections_to_revoke: list[Connection] = []
        else:
            connections_to_revoke = connections
        for connection in connections_to_revoke:
            one = self.revoke(profile, connection)
            report.revoked += one.revoked
            report.errors += one.errors
        with self.s.db.session() as session:
            # Connections and pending authorizations go with it (ON DELETE CASCADE).
            self.s.profile_store.delete(session, profile)
        for connection in connections:
            self.s.tokens.forget(connection.id)
        return report

    def revoke(self, profile: Profile, connection: Connection) -> RevocationReport:
        """RFC 7009, best effort: the refresh token first (section 2.1: revoking it SHOULD
        also revoke the access tokens of the same grant), then the access token."""
        report = RevocationReport()
        tokens = connection.tokens
        if tokens is None or not profile.revocation_url:
            return report
        try:
            settings = connection_settings(profile, connection, self.s.settings.callback_url)
        except ValidationFailed as exc:
            report.errors.append(exc.detail)
            return report
        for hint, token in (
            ("refresh_token", tokens.refresh_token),
            ("access_token", tokens.access_token),
        ):
            if not token:
                continue
            try:
                self.s.oauth.revoke(settings, token=token, hint=hint)
                report.revoked.append(hint)
            except OAuthFailure as exc:
                if isinstance(exc, GrantRefused) and exc.error == "unsupported_token_type":
                    continue
                log.warning(
                    "revoking the %s of connection %s failed: %s", hint, connection.id, exc.detail
                )
                report.errors.append(f"{hint}: {exc.detail}")
        return report


def _refused(message: str, status: int = 400) -> CallbackOutcome:
    return CallbackOutcome(ok=False, title="Not connected", message=message, status_code=status)


__all__ = ["ConnectionRequest", "ConnectionService", "FieldLocation", "ReauthorizeRequest"]
