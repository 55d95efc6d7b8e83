"""RFC 9207 authorization server issuer identification, and private_key_jwt with the
authorization code grant, end to end against a real authorization server that sends
``iss`` in its authorization responses and says so in its metadata (oidc-provider).

A response whose ``iss`` differs from the profile's ``issuer``, or lacks it where the
issuer's metadata says it is sent, is refused before the code is redeemed: the server's
token endpoint never sees the code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from tests.support.app import Live
from tests.support.oidc_provider import OidcProvider

pytestmark = pytest.mark.idp


def _code_profile(live: Live, op: OidcProvider, **fields: Any) -> dict[str, Any]:
    client = op.register_client(
        "private_key_jwt",
        redirect_uris=[live.url + "/oauth/callback"],
        grant_types=("authorization_code", "refresh_token"),
    )
    body: dict[str, Any] = {
        "auth_type": "oauth2_authorization_code",
        "identity_provider": "oidc-provider",
        "client_id": client.client_id,
        "client_auth_method": "private_key_jwt",
        "private_key": client.private_key_pem,
        "private_key_id": client.key_id,
        "authorization_url": op.authorization_url,
        "token_url": op.token_url,
        "tenancy": False,
        "scopes": ["openid", "read"],
        "issuer": op.issuer,
    }
    return live.create_profile(**{**body, **fields})


def _with_iss(callback_url: str, iss: str | None) -> str:
    """The same redirect with its ``iss`` replaced (or removed, for None)."""
    parts = urlsplit(callback_url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "iss"]
    if iss is not None:
        query.append(("iss", iss))
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_private_key_jwt_authorization_code_with_the_right_iss_connects(
    live: Live, oidc_provider: OidcProvider, callback_from_oidc_provider: Callable[[str], str]
) -> None:
    profile = _code_profile(live, oidc_provider)
    assert profile["status"] == "configured", profile
    started = live.connect(profile["id"])
    callback = callback_from_oidc_provider(started["authorization_url"])
    assert dict(parse_qsl(urlsplit(callback).query))["iss"] == oidc_provider.issuer

    oidc_provider.reset_counters()
    page = httpx.get(callback, timeout=30)
    assert page.status_code == 200, page.text
    # The code was redeemed with a client assertion the server verified.
    assert oidc_provider.token_requests("authorization_code") == 1
    token = live.token(started["connection_id"])
    assert token.status_code == 200, token.text


@pytest.mark.parametrize(
    "iss", ["https://attacker.example", None], ids=["forged iss", "missing iss"]
)
def test_a_forged_or_missing_iss_is_refused_before_the_code_is_redeemed(
    live: Live,
    oidc_provider: OidcProvider,
    callback_from_oidc_provider: Callable[[str], str],
    iss: str | None,
) -> None:
    profile = _code_profile(live, oidc_provider)
    started = live.connect(profile["id"])
    callback = callback_from_oidc_provider(started["authorization_url"])

    oidc_provider.reset_counters()
    page = httpx.get(_with_iss(callback, iss), timeout=30)
    assert page.status_code == 400, page.text
    assert "iss" in page.text
    assert oidc_provider.token_requests() == 0  # the code never reached the token endpoint
    connection = live.http.get(f"/api/v1/connections/{started['connection_id']}").json()
    assert connection["status"] == "needs_reauth"
    assert "iss" in connection["last_error"]


def test_without_an_issuer_on_the_profile_the_answer_is_taken_as_before(
    live: Live, oidc_provider: OidcProvider, callback_from_oidc_provider: Callable[[str], str]
) -> None:
    profile = _code_profile(live, oidc_provider, issuer=None)
    started = live.connect(profile["id"])
    callback = callback_from_oidc_provider(started["authorization_url"])
    page = httpx.get(_with_iss(callback, None), timeout=30)
    assert page.status_code == 200, page.text


def test_an_error_answer_with_a_forged_iss_is_not_believed(
    live: Live, oidc_provider: OidcProvider, callback_from_oidc_provider: Callable[[str], str]
) -> None:
    """RFC 9207 puts ``iss`` in error answers too: a refusal claiming to come from another
    server is refused as a mix-up, not taken as the person's refusal."""
    profile = _code_profile(live, oidc_provider)
    started = live.connect(profile["id"])
    state = dict(parse_qsl(urlsplit(started["authorization_url"]).query))["state"]
    forged = httpx.get(
        live.url + "/oauth/callback",
        params={"state": state, "error": "access_denied", "iss": "https://attacker.example"},
        timeout=30,
    )
    assert forged.status_code == 400
    assert "iss" in forged.text and "did not authorize" not in forged.text
