"""RFC 6749 section 4.1: the authorization code grant, with RFC 7636 PKCE (S256) and
RFC 9207 authorization server issuer identification.

A person is sent to the authorization URL; the server redirects them back with a code
(or an error) and our ``state``; the code is exchanged for tokens at the token endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from authprofiles.core.auth_types import AuthType, AuthTypeSpec, spec_for
from authprofiles.core.connections import TokenSet
from authprofiles.oauth.engine import ClientSettings, OAuthEngine, new_code_verifier, new_state
from authprofiles.oauth.errors import GrantRefused
from authprofiles.oauth.grants.base import (
    FinishedByPerson,
    GrantInput,
    NextStep,
    Pending,
    PendingAuthorization,
    StillPending,
)
from authprofiles.oauth.rfc9207 import require_response_issuer

#: The kind of pending authorization it starts.
KIND = AuthType.AUTHORIZATION_CODE.value


def authorization_url(
    engine: OAuthEngine, settings: ClientSettings, *, state: str, code_verifier: str | None
) -> str:
    """Section 4.1.1, with the RFC 7636 section 4.3 challenge when PKCE is on, and the
    profile's additional fields as extra parameters."""
    if not settings.authorization_url:
        raise ValueError("the profile has no authorization URL")
    url, _ = engine.client(settings).create_authorization_url(
        settings.authorization_url,
        state=state,
        code_verifier=code_verifier,
        **dict(settings.extra_params),
    )
    return str(url)


def exchange_code(
    engine: OAuthEngine,
    settings: ClientSettings,
    *,
    code: str,
    code_verifier: str | None,
    redirect_uri: str | None = None,
) -> TokenSet:
    """Section 4.1.3, with the RFC 7636 section 4.5 verifier."""
    params = {"code": code, "redirect_uri": redirect_uri or settings.redirect_uri}
    if code_verifier:
        params["code_verifier"] = code_verifier
    # An authorization code is single use (section 4.1.2): a retry after the server may
    # have consumed it would fail anyway, so only connection failures are retried.
    return engine.fetch_token(
        settings,
        "authorization code exchange",
        grant_type="authorization_code",
        with_scope=False,
        retry_after_send=False,
        params=params,
    )


class AuthorizationCodeGrant(FinishedByPerson):
    @property
    def spec(self) -> AuthTypeSpec:
        return spec_for(AuthType.AUTHORIZATION_CODE)

    def start(
        self,
        engine: OAuthEngine,
        settings: ClientSettings,
        given: GrantInput,
        now: datetime,
        lifetime_seconds: float,
    ) -> Pending:
        state = new_state()
        verifier = new_code_verifier() if settings.pkce else None
        url = authorization_url(engine, settings, state=state, code_verifier=verifier)
        return Pending(
            kind=KIND,
            state=state,
            secrets={"code_verifier": verifier} if verifier else {},
            expires_at=now + timedelta(seconds=lifetime_seconds),
            next_step=NextStep(authorization_url=url),
            redirect_uri=settings.redirect_uri,
        )

    def complete(
        self,
        engine: OAuthEngine,
        settings: ClientSettings,
        pending: PendingAuthorization,
        answer: Mapping[str, str],
        now: datetime,
    ) -> TokenSet | StillPending:
        # RFC 9207 section 2.4, before the answer is believed or its code redeemed:
        # "clients MUST compare the value of the iss parameter to the issuer identifier of
        # the authorization server where the authorization request was sent to" (a
        # mix-up attack sends the code, or a made-up error, of another server).
        if settings.issuer:
            require_response_issuer(
                settings.issuer,
                answer.get("iss"),
                metadata=engine.issuer_metadata,
                egress_proxy_url=settings.egress_proxy_url,
            )
        if answer.get("error"):
            # Section 4.1.2.1: the server refused on the redirect.
            raise GrantRefused(answer["error"], answer.get("error_description"), None)
        code = answer.get("code")
        if not code:
            raise GrantRefused("invalid_request", "the answer carries no code", None)
        return exchange_code(
            engine,
            settings,
            code=code,
            code_verifier=pending.secrets.get("code_verifier"),
            redirect_uri=pending.redirect_uri,
        )


__all__ = ["KIND", "AuthorizationCodeGrant", "authorization_url", "exchange_code"]
