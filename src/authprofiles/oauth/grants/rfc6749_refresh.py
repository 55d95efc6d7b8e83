"""RFC 6749 section 6: refreshing an access token, which every grant that issued a
refresh token renews with."""

from __future__ import annotations

from typing import Any

from authprofiles.core.connections import Connection, TokenSet
from authprofiles.oauth.engine import ClientSettings, OAuthEngine
from authprofiles.oauth.errors import GrantRefused


def refresh(engine: OAuthEngine, settings: ClientSettings, refresh_token: str) -> TokenSet:
    """Section 6: "If the authorization server issued a refresh token to the client, the
    client makes a refresh request to the token endpoint" (or the profile's refresh URL).
    The scope is left out: "If omitted, [it] is treated as equal to the scope originally
    granted by the resource owner"."""

    def call() -> Any:
        client = engine.client(settings, with_scope=False)
        return client.refresh_token(settings.refresh_url, refresh_token=refresh_token)

    return engine.request_token(call, "refresh", settings.refresh_url)


def renew(engine: OAuthEngine, settings: ClientSettings, connection: Connection) -> TokenSet:
    """Renew with the connection's refresh token: a grant a person finished cannot be run
    again without them."""
    refresh_token = connection.refresh_token
    if not refresh_token:
        raise no_refresh_token()
    return refresh(engine, settings, refresh_token)


def no_refresh_token() -> GrantRefused:
    return GrantRefused(
        "no_refresh_token",
        "the identity provider issued no refresh token; authorize again",
        None,
    )


__all__ = ["no_refresh_token", "refresh", "renew"]
