"""Against the suite's real authorization server (django-oauth-toolkit): discovery answers
the issuer, the device authorization endpoint and the server's own list of client
authentication methods; a public client (``none``, RFC 6749 section 2.1) obtains, refreshes
and revokes tokens with its client id alone."""

from __future__ import annotations

import httpx
import pytest

from tests.support.app import Live, oauth_profile
from tests.support.idp import IdP

pytestmark = pytest.mark.idp


def test_discovery_answers_the_issuer_the_device_endpoint_and_the_servers_methods(
    live: Live, idp: IdP
) -> None:
    response = live.http.get("/api/v1/discovery", params={"issuer": idp.issuer})
    assert response.status_code == 200, response.text
    found = response.json()
    with httpx.Client(trust_env=False) as plain:
        document = plain.get(found["source"]).json()
    # The issuer as the metadata writes it: what a profile's `issuer` must equal (RFC 9207
    # compares strings exactly).
    assert found["issuer"] == document["issuer"]
    assert found["device_authorization_url"] == idp.device_authorization_url
    # The server's list as it advertises it, not ours.
    assert found["client_auth_methods"] == document["token_endpoint_auth_methods_supported"]
    assert found["authorization_response_iss_parameter_supported"] is bool(
        document.get("authorization_response_iss_parameter_supported", False)
    )


def test_a_discovered_issuer_is_accepted_as_the_profiles_issuer(live: Live, idp: IdP) -> None:
    found = live.http.get("/api/v1/discovery", params={"issuer": idp.issuer}).json()
    profile, _ = oauth_profile(
        live,
        idp,
        "authorization-code",
        issuer=found["issuer"],
        device_authorization_url=found["device_authorization_url"],
    )
    assert profile["issuer"] == found["issuer"]
    assert profile["device_authorization_url"] == idp.device_authorization_url


def test_a_public_client_gets_refreshes_and_revokes_with_its_id_alone(
    live: Live, idp: IdP, user: tuple[str, str]
) -> None:
    client = idp.register_client("password", client_type="public")
    profile, _ = oauth_profile(
        live,
        idp,
        "password",
        client=client,
        client_secret=None,
        client_auth_method="none",
        revocation_url=idp.revocation_url,
    )
    assert profile["client_secret_set"] is False
    assert profile["status"] == "configured"

    idp.reset_counters()
    connected = live.connect(profile["id"], username=user[0], password=user[1])
    assert connected["status"] == "active"
    connection_id = connected["connection_id"]
    first = live.token(connection_id).json()["access_token"]
    assert idp.is_active(first)

    live.expire(connection_id)
    refreshed = live.token(connection_id)
    assert refreshed.status_code == 200, refreshed.text
    second = refreshed.json()["access_token"]
    assert second != first
    assert idp.token_requests("refresh_token") == 1

    deleted = live.http.delete(f"/api/v1/connections/{connection_id}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["revocation_errors"] == []
    assert not idp.is_active(second)
