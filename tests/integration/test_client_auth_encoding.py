"""client_secret_basic against a server that decodes it as RFC 6749 section 2.3.1 says.

django-oauth-toolkit form-decodes both halves of HTTP Basic client credentials
(``+`` is a space, ``%XX`` an octet), so a client whose id and secret hold ``+``, ``%``,
``:``, a space or ``@/=&?`` is accepted only when each half is form-encoded before
base64. Every request that authenticates the client is covered: the token request of
each grant, the refresh request and the RFC 7009 revocation request.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.app import Live, oauth_profile
from tests.support.idp import Client, Grant, IdP

pytestmark = pytest.mark.idp

#: Every character the form encoding changes, and ones a naive decoder mistakes.
SECRET = "p@ss:w0rd+/=%&? with space+plus%2Bpercent"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'client-auth.db'}"


def awkward_client(idp: IdP, grant: Grant, redirect_uris: list[str] | None = None) -> Client:
    """A client at the IdP whose id and secret both need the form encoding."""
    client_id = f"id with space+plus%25:colon-{uuid.uuid4().hex[:8]}"
    return idp.register_client(
        grant, redirect_uris or [], client_id=client_id, client_secret=SECRET
    )


def profile_for(
    live: Live, idp: IdP, client: Client, grant: Grant, **fields: Any
) -> dict[str, Any]:
    """A profile of ``grant`` for ``client`` that authenticates it with HTTP Basic and
    revokes at the IdP; for the password grant, in preauthorized mode."""
    basic: dict[str, Any] = {
        "client_auth_method": "client_secret_basic",
        "revocation_url": idp.revocation_url,
    }
    if grant == "password":
        basic["authorization_mode"] = "preauthorized"
    profile, _ = oauth_profile(live, idp, grant, client=client, **{**basic, **fields})
    return profile


def stored_tokens(live: Live, connection_id: str) -> Any:
    with live.services.db.read() as session:
        tokens = live.services.connection_store.get(session, None, connection_id).tokens
    assert tokens is not None
    return tokens


def use_basic(live: Live, profile_id: str) -> None:
    patched = live.http.patch(
        f"/api/v1/profiles/{profile_id}", json={"client_auth_method": "client_secret_basic"}
    )
    assert patched.status_code == 200, patched.text


def test_the_client_credentials_token_request_is_accepted(live: Live, idp: IdP) -> None:
    client = awkward_client(idp, "client-credentials")
    profile = profile_for(live, idp, client, "client-credentials")
    idp.reset_counters()
    response = live.http.post(f"/api/v1/profiles/{profile['id']}/connections", json={})
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "active"
    assert idp.token_requests("client_credentials") == 1
    assert idp.is_active(live.token(response.json()["connection_id"]).json()["access_token"])

    # The profile test authenticates the same way, and keeps the secret out of its answer.
    tested = live.http.post(f"/api/v1/profiles/{profile['id']}/test", json={})
    assert tested.json()["ok"] is True, tested.text
    assert SECRET not in tested.text


def test_the_password_token_request_is_accepted(
    live: Live, idp: IdP, user: tuple[str, str]
) -> None:
    client = awkward_client(idp, "password")
    profile = profile_for(live, idp, client, "password", username=user[0], password=user[1])
    response = live.http.post(
        f"/api/v1/profiles/{profile['id']}/connections",
        json={"username": user[0], "password": user[1]},
    )
    assert response.status_code == 201, response.text
    tokens = stored_tokens(live, response.json()["connection_id"])
    assert idp.is_active(tokens.access_token)


def test_the_authorization_code_exchange_is_accepted(
    live: Live, idp: IdP, user: tuple[str, str]
) -> None:
    client = awkward_client(idp, "authorization-code", [live.url + "/oauth/callback"])
    profile = profile_for(live, idp, client, "authorization-code")
    started = live.connect(profile["id"])
    callback = idp.log_in_and_consent(started["authorization_url"], *user)
    page = httpx.get(callback, timeout=30, trust_env=False)
    assert page.status_code == 200, page.text
    assert 'data-ok="true"' in page.text
    tokens = stored_tokens(live, started["connection_id"])
    assert idp.is_active(tokens.access_token)


def test_the_refresh_request_is_accepted(live: Live, idp: IdP, user: tuple[str, str]) -> None:
    # Connected with client_secret_post, so only the refresh authenticates with Basic; in
    # user mode no password is kept that a refused refresh could fall back to.
    client = awkward_client(idp, "password")
    profile = profile_for(
        live,
        idp,
        client,
        "password",
        client_auth_method="client_secret_post",
        authorization_mode="user",
    )
    started = live.connect(profile["id"], username=user[0], password=user[1])
    before = stored_tokens(live, started["connection_id"])
    use_basic(live, profile["id"])
    live.expire(started["connection_id"])
    idp.reset_counters()
    refreshed = live.token(started["connection_id"])
    assert refreshed.status_code == 200, refreshed.text
    assert idp.token_requests("refresh_token") == 1
    assert idp.token_requests("password") == 0
    assert refreshed.json()["access_token"] != before.access_token
    assert idp.is_active(refreshed.json()["access_token"])
    assert not idp.is_active(before.refresh_token)  # rotated: the IdP took the refresh


def test_the_revocation_request_is_accepted(live: Live, idp: IdP, user: tuple[str, str]) -> None:
    client = awkward_client(idp, "password")
    profile = profile_for(
        live,
        idp,
        client,
        "password",
        client_auth_method="client_secret_post",
        username=user[0],
        password=user[1],
    )
    started = live.connect(profile["id"], username=user[0], password=user[1])
    tokens = stored_tokens(live, started["connection_id"])
    use_basic(live, profile["id"])

    deleted = live.http.delete(f"/api/v1/connections/{started['connection_id']}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["revocation_errors"] == []
    assert deleted.json()["revoked"] == ["refresh_token", "access_token"]
    assert not idp.is_active(tokens.access_token)
    assert not idp.is_active(tokens.refresh_token)
