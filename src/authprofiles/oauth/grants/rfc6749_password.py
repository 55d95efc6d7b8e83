"""RFC 6749 section 4.3: the resource owner password credentials grant.

Seed 003's two modes: in ``user`` mode each user gives their username and password when
connecting, used once; in ``preauthorized`` mode the credentials are provided in advance
(the profile's, or the connection's own) and kept, encrypted, so that a refused refresh
token is replaced by a new grant ("auto-regeneration ... works only when the User ID and
Password are provided").
"""

from __future__ import annotations

import logging
from datetime import datetime

from authprofiles.core.auth_types import AuthType, AuthTypeSpec, spec_for
from authprofiles.core.connections import Connection, TokenSet
from authprofiles.core.errors import FieldError
from authprofiles.core.profiles import AuthorizationMode, ProfileDefinition, form_values_of
from authprofiles.oauth.engine import ClientSettings, OAuthEngine
from authprofiles.oauth.errors import GrantRefused
from authprofiles.oauth.grants import rfc6749_refresh
from authprofiles.oauth.grants.base import (
    GrantInput,
    Obtained,
    ObtainedAtOnce,
)

log = logging.getLogger("authprofiles.oauth")


def request_token(engine: OAuthEngine, settings: ClientSettings, given: GrantInput) -> TokenSet:
    """Section 4.3.2: ``grant_type=password`` with the username and password, plus the
    profile's additional fields and the user's form field values."""
    assert given.username is not None and given.password is not None
    params = {**dict(settings.extra_params), **dict(given.form_values)}
    params.update(username=given.username, password=given.password)
    return engine.fetch_token(settings, "password grant", grant_type="password", params=params)


class PasswordGrant(ObtainedAtOnce):
    @property
    def spec(self) -> AuthTypeSpec:
        return spec_for(AuthType.PASSWORD)

    def keeps_credentials(self, profile: ProfileDefinition) -> bool:
        return profile.authorization_mode is AuthorizationMode.PREAUTHORIZED

    def check_input(
        self, profile: ProfileDefinition, given: GrantInput, kept: Connection | None = None
    ) -> tuple[GrantInput, list[FieldError]]:
        """The username and password to run the grant with: the ones given, else (in
        preauthorized mode) the connection's own, else the profile's."""
        username, password = given.username, given.password
        if self.keeps_credentials(profile):
            username = username or (kept.username if kept else None) or profile.username
            password = password or (kept.password if kept else None) or profile.password
        errors = []
        if not username:
            errors.append(FieldError("username", "the password grant needs a username"))
        if not password:
            errors.append(FieldError("password", "the password grant needs a password"))
        resolved = GrantInput(username=username, password=password, form_values=given.form_values)
        return resolved, errors

    def start(
        self,
        engine: OAuthEngine,
        settings: ClientSettings,
        given: GrantInput,
        now: datetime,
        lifetime_seconds: float,
    ) -> Obtained:
        return Obtained(request_token(engine, settings, given))

    def renew(
        self,
        engine: OAuthEngine,
        settings: ClientSettings,
        profile: ProfileDefinition,
        connection: Connection,
    ) -> TokenSet:
        refresh_token = connection.refresh_token
        regenerate = self._regeneration_input(profile, connection)
        if refresh_token:
            try:
                return rfc6749_refresh.refresh(engine, settings, refresh_token)
            except GrantRefused as exc:
                if regenerate is None:
                    raise
                # Seed 003 "auto-regeneration": with stored credentials, a refused refresh
                # token is replaced by a fresh password grant.
                log.info("refresh refused for %s (%s); regenerating", connection.id, exc.error)
        if regenerate is None:
            raise rfc6749_refresh.no_refresh_token()
        return request_token(engine, settings, regenerate)

    def _regeneration_input(
        self, profile: ProfileDefinition, connection: Connection
    ) -> GrantInput | None:
        """The stored credentials to log in again with (preauthorized mode), or None."""
        if not self.keeps_credentials(profile):
            return None
        given = GrantInput(form_values=form_values_of(profile, connection.fields))
        resolved, missing = self.check_input(profile, given, kept=connection)
        return None if missing else resolved


__all__ = ["PasswordGrant", "request_token"]
