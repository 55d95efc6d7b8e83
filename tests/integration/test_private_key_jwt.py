"""private_key_jwt (RFC 7523 section 2.2) end to end against a real authorization server
that verifies client assertions (panva's oidc-provider): a profile holding the client's
private key obtains a token by client credentials and revokes it, the server checking
each assertion's signature, kid, iss, sub, aud, jti and exp."""

from __future__ import annotations

from typing import Literal

import pytest

from tests.support.app import Live
from tests.support.oidc_provider import OidcProvider, new_signing_key

pytestmark = pytest.mark.idp


@pytest.mark.parametrize("kind", ["RSA", "EC"])
def test_client_credentials_with_a_private_key_jwt_profile(
    live: Live, oidc_provider: OidcProvider, kind: Literal["RSA", "EC"]
) -> None:
    client = oidc_provider.register_client(
        "private_key_jwt", grant_types=("client_credentials",), key=new_signing_key(kind=kind)
    )
    profile = live.create_profile(
        auth_type="oauth2_client_credentials",
        client_id=client.client_id,
        token_url=oidc_provider.token_url,
        revocation_url=oidc_provider.revocation_url,
        client_auth_method="private_key_jwt",
        private_key=client.private_key_pem,
        private_key_id=client.key_id,
        scopes=["read"],
    )
    assert profile["private_key_set"] is True
    assert profile["status"] == "configured"

    oidc_provider.reset_counters()
    started = live.connect(profile["id"])
    assert started["status"] == "active", started
    token = live.token(started["connection_id"])
    assert token.status_code == 200, token.text
    assert token.json()["access_token"]
    assert oidc_provider.token_requests("client_credentials") == 1

    # Revocation authenticates the same way, with the same audience (the token endpoint).
    deleted = live.http.delete(f"/api/v1/connections/{started['connection_id']}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["revocation_errors"] == []
    assert oidc_provider.counters()["requests"].get("revocation") == 1


def test_a_key_the_server_does_not_know_is_refused(live: Live, oidc_provider: OidcProvider) -> None:
    client = oidc_provider.register_client("private_key_jwt", grant_types=("client_credentials",))
    stranger = new_signing_key(kid=client.key_id)
    profile = live.create_profile(
        auth_type="oauth2_client_credentials",
        client_id=client.client_id,
        token_url=oidc_provider.token_url,
        client_auth_method="private_key_jwt",
        private_key=stranger.private_key_pem,
        private_key_id=stranger.kid,
        scopes=["read"],
    )
    refused = live.http.post(f"/api/v1/profiles/{profile['id']}/connections", json={})
    assert refused.status_code >= 400
    assert "invalid_client" in refused.text
