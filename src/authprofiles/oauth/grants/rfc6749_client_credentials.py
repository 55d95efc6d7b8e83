"""RFC 6749 section 4.4: the client credentials grant. No person takes part, so its
tokens are renewed by asking again (section 4.4.3: "A refresh token SHOULD NOT be
included")."""

from __future__ import annotations

from datetime import datetime

from authprofiles.core.auth_types import AuthType, AuthTypeSpec, spec_for
from authprofiles.core.connections import Connection, TokenSet
from authprofiles.core.errors import FieldError
from authprofiles.core.profiles import ProfileDefinition
from authprofiles.oauth.engine import ClientSettings, OAuthEngine
from authprofiles.oauth.grants import rfc6749_refresh
from authprofiles.oauth.grants.base import (
    GrantInput,
    Obtained,
    ObtainedAtOnce,
)


def request_token(engine: OAuthEngine, settings: ClientSettings) -> TokenSet:
    """Section 4.4.2: ``grant_type=client_credentials``, the scope, and the profile's
    additional fields as extra parameters."""
    return engine.fetch_token(
        settings,
        "client credentials grant",
        grant_type="client_credentials",
        params=settings.extra_params,
    )


class ClientCredentialsGrant(ObtainedAtOnce):
    @property
    def spec(self) -> AuthTypeSpec:
        return spec_for(AuthType.CLIENT_CREDENTIALS)

    def check_input(
        self, profile: ProfileDefinition, given: GrantInput, kept: Connection | None = None
    ) -> tuple[GrantInput, list[FieldError]]:
        return given, []

    def start(
        self,
        engine: OAuthEngine,
        settings: ClientSettings,
        given: GrantInput,
        now: datetime,
        lifetime_seconds: float,
    ) -> Obtained:
        return Obtained(request_token(engine, settings))

    def renew(
        self,
        engine: OAuthEngine,
        settings: ClientSettings,
        profile: ProfileDefinition,
        connection: Connection,
    ) -> TokenSet:
        refresh_token = connection.refresh_token
        if refresh_token:
            # Some servers issue one all the same: it is what they expect to be used.
            return rfc6749_refresh.refresh(engine, settings, refresh_token)
        return request_token(engine, settings)


__all__ = ["ClientCredentialsGrant", "request_token"]
