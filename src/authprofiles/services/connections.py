"""Connection use cases: authorize (every grant), complete the callback, read, disconnect."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from authprofiles.core.connections import SHARED_OWNER, Connection, ConnectionStatus
from authprofiles.core.errors import FieldError, NotFound, ValidationFailed
from authprofiles.core.profiles import AuthorizationMode, AuthType, FieldLocation, Profile
from authprofiles.core.templating import is_valid_tenant
from authprofiles.oauth.errors import GrantRefused, OAuthFailure
from authprofiles.oauth.grants import new_code_verifier, new_state
from authprofiles.services.access import Principal, Role, require_role
from authprofiles.services.errors import from_oauth
from authprofiles.services.oauth_settings import client_settings, connection_settings
from authprofiles.store.profiles import UnreadableProfile

if TYPE_CHECKING:
    from authprofiles.services.container import Services

log = logging.getLogger("authprofiles.connections")


class ConnectionRequest(BaseModel):
    """Body of ``POST /profiles/{id}/connections``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    owner: str = Field(default=SHARED_OWNER, min_length=1, max_length=200)
    tenant: str | None = None
    fields: dict[str, str] = Field(default_factory=dict)
    username: str | None = Field(default=None, max_length=255)
    password: str | None = Field(default=None, max_length=1024)


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
            return self._start_authorization_code(principal, profile, request, tenant)

        settings = client_settings(
            profile, tenant=tenant, fields=request.fields, redirect_uri=self.s.settings.callback_url
        )
        username, password, store_password = None, None, False
        try:
            if profile.auth_type is AuthType.CLIENT_CREDENTIALS:
                tokens = self.s.oauth.client_credentials(settings)
            else:
                username, password, store_password = self._password_credentials(profile, request)
                tokens = self.s.oauth.password(
                    settings,
                    username=username,
                    password=password,
                    form_values=self._form_values(profile, request.fields),
                )
        except OAuthFailure as exc:
            raise from_oauth(exc) from None
        # The token came first; only now is anything written, in one transaction.
        with self.s.db.session() as session:
            connection = self.s.connection_store.add(
                session,
                workspace_id=principal.workspace_id,
                profile_id=profile.id,
                owner=request.owner,
                tenant=tenant,
                fields=request.fields,
                # Seed 003: pre-authorized credentials are kept (encrypted) so tokens can be
                # regenerated when the refresh token is refused; a user's are used once.
                username=username if store_password else None,
                password=password if store_password and request.password else None,
                status=ConnectionStatus.ACTIVE,
                tokens=tokens,
                requested_scopes=profile.scopes,
            )
            if connection.is_shared:
                self.s.profile_store.set_failing(session, profile.id, None)
        return StartedConnection(connection=connection)

    def _check_request(self, profile: Profile, request: ConnectionRequest) -> str | None:
        errors: list[FieldError] = []
        tenant = request.tenant or None
        if profile.tenancy:
            if tenant is None:
                errors.append(FieldError("tenant", "this profile needs a tenant"))
            elif not is_valid_tenant(tenant):
                errors.append(
                    FieldError(
                        "tenant",
                        "a tenant is one DNS label: letters, digits and inner hyphens, "
                        "at most 63 characters",
                    )
                )
        elif tenant is not None:
            errors.append(FieldError("tenant", "this profile has no tenancy; leave tenant out"))
        allowed = {f.key for f in profile.form_fields} | {
            f.key for f in profile.authorization_fields if f.value is None
        }
        for key in request.fields:
            if key not in allowed:
                errors.append(FieldError(f"fields.{key}", "is not a form field of this profile"))
        for form_field in profile.form_fields:
            if form_field.mandatory and not request.fields.get(form_field.key):
                errors.append(
                    FieldError(f"fields.{form_field.key}", f"{form_field.title} is required")
                )
        if errors:
            raise ValidationFailed(errors)
        return tenant.lower() if tenant else None

    @staticmethod
    def _form_values(profile: Profile, fields: dict[str, str]) -> dict[str, str]:
        keys = {f.key for f in profile.form_fields}
        return {k: v for k, v in fields.items() if k in keys}

    @staticmethod
    def _password_credentials(
        profile: Profile, request: ConnectionRequest
    ) -> tuple[str, str, bool]:
        preauthorized = profile.authorization_mode is AuthorizationMode.PREAUTHORIZED
        username = request.username or (profile.username if preauthorized else None)
        password = request.password or (profile.password if preauthorized else None)
        errors = []
        if not username:
            errors.append(FieldError("username", "the password grant needs a username"))
        if not password:
            errors.append(FieldError("password", "the password grant needs a password"))
        if errors:
            raise ValidationFailed(errors)
        assert username is not None and password is not None
        return username, password, preauthorized

    def _start_authorization_code(
        self,
        principal: Principal,
        profile: Profile,
        request: ConnectionRequest,
        tenant: str | None,
    ) -> StartedConnection:
        redirect_uri = self.s.settings.callback_url
        settings = client_settings(
            profile, tenant=tenant, fields=request.fields, redirect_uri=redirect_uri
        )
        state = new_state()
        verifier = new_code_verifier() if profile.pkce else None
        url = self.s.oauth.authorization_url(settings, state=state, code_verifier=verifier)
        with self.s.db.session() as session:
            connection = self.s.connection_store.add(
                session,
                workspace_id=principal.workspace_id,
                profile_id=profile.id,
                owner=request.owner,
                tenant=tenant,
                fields=request.fields,
                username=None,
                password=None,
                status=ConnectionStatus.PENDING,
                tokens=None,
            )
            self.s.connection_store.add_authorization_request(
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
            return _refused("This authorization was not started here, or it was cancelled.")
        if not claimed:
            return _refused("This authorization link was already used. Start again.")
        if expires_at <= self.s.clock.now():
            return _refused("This authorization took longer than allowed. Start again.")
        if error:
            # Section 4.1.2.1: the IdP reports the refusal on the redirect.
            text = f"{error}: {error_description}" if error_description else error
            self._record_error(connection_id, f"authorization refused ({text})")
            return _refused(f"The identity provider did not authorize: {text}.")
        if not code:
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
            self._record_error(connection_id, exc.detail)
            return _refused(f"Exchanging the code failed: {exc.detail}.", status=502)
        with self.s.db.session() as session:
            locked = self.s.connection_store.row(session, None, connection_id)
            self.s.connection_store.store_tokens(locked, tokens, requested=profile.scopes)
            if connection.is_shared:
                self.s.profile_store.set_failing(session, profile.id, None)
        return CallbackOutcome(
            ok=True,
            title="Connected",
            message=f"{profile.identity_provider or profile.name} is connected. "
            "You can close this window.",
            connection_id=connection_id,
        )

    def _record_error(self, connection_id: str, message: str) -> None:
        with self.s.db.session() as session:
            try:
                row = self.s.connection_store.row(session, None, connection_id)
            except NotFound:
                return
            self.s.connection_store.mark_error(row, message, needs_reauth=False)

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
        after: tuple[datetime, str] | None = None,
        limit: int | None = None,
    ) -> list[Connection]:
        """Oldest first; a page of ``limit`` after the ``(created_at, id)`` key ``after``."""
        require_role(principal, Role.VIEWER)
        with self.s.db.read() as session:
            return self.s.connection_store.list(
                session, principal.workspace_id, profile_id, after=after, limit=limit
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


__all__ = ["ConnectionRequest", "ConnectionService", "FieldLocation"]
