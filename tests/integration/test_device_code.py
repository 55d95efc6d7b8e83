"""The device authorization grant (RFC 8628), end to end through the real HTTP API against
a real authorization server (django-oauth-toolkit's device flow), on SQLite and PostgreSQL.

A person approves on another device; the server polls the token endpoint meanwhile
(honouring the interval and ``slow_down``) and the connection turns ``active``, or
``needs_reauth`` when the person denies or the code expires.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.support.app import Live
from tests.support.idp import IdP

#: A generous bound on waiting for the server's polls to see the person's answer (each
#: poll comes about one interval, 1 s here, after the last).
WAIT_SECONDS = 60.0


def _device_profile(live: Live, idp: IdP, *, public: bool = True, **fields: Any) -> dict:
    client = idp.register_client("device-code", client_type="public" if public else "confidential")
    body: dict[str, Any] = {
        "auth_type": "oauth2_device_code",
        "identity_provider": "Test IdP",
        "client_id": client.client_id,
        "device_authorization_url": idp.device_authorization_url,
        "token_url": idp.token_url,
        "revocation_url": idp.revocation_url,
        "scopes": ["read"],
    }
    if public:
        body["client_auth_method"] = "none"  # RFC 6749 section 2.1: no secret to keep
    else:
        body["client_secret"] = client.client_secret
    return live.create_profile(**{**body, **fields})


def _wait_for_status(live: Live, connection_id: str, wanted: str) -> dict[str, Any]:
    """Read the connection until the background poll has moved it to ``wanted`` (a wait
    for a real event: the server's next poll of the authorization server)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        connection = live.http.get(f"/api/v1/connections/{connection_id}").json()
        if connection["status"] == wanted or time.monotonic() > deadline:
            assert connection["status"] == wanted, connection
            return dict(connection)
        time.sleep(0.1)


@pytest.mark.parametrize("public", [True, False], ids=["public client", "confidential client"])
def test_a_device_code_connection_turns_active_once_the_person_approves(
    live: Live, idp: IdP, user: tuple[str, str], public: bool
) -> None:
    profile = _device_profile(live, idp, public=public)
    assert profile["status"] == "configured", profile
    started = live.connect(profile["id"])
    assert started["id"] == started["connection_id"]
    assert started["status"] == "pending"
    assert started["user_code"] and started["verification_uri"] == idp.device_verification_url
    assert started["interval"] >= 1
    assert started["expires_at"].endswith(("Z", "+00:00"))
    # Nothing to serve until the person approves.
    assert live.token(started["id"]).status_code == 409

    assert idp.approve_device(started["user_code"], *user) == "Authorized"
    connection = _wait_for_status(live, started["id"], "active")
    assert connection["has_refresh_token"] is True

    token = live.token(started["id"])
    assert token.status_code == 200, token.text
    assert idp.is_active(token.json()["access_token"])


def test_slow_down_is_honoured_and_the_connection_still_completes(
    live: Live, idp: IdP, user: tuple[str, str]
) -> None:
    profile = _device_profile(live, idp)
    idp.answer_slow_down(times=1)
    started = live.connect(profile["id"])
    idp.approve_device(started["user_code"], *user)
    _wait_for_status(live, started["id"], "active")


def test_a_denied_device_code_leaves_the_connection_needing_authorization(
    live: Live, idp: IdP, user: tuple[str, str]
) -> None:
    profile = _device_profile(live, idp)
    started = live.connect(profile["id"])
    assert idp.approve_device(started["user_code"], *user, approve=False) == "Denied"
    connection = _wait_for_status(live, started["id"], "needs_reauth")
    assert "access_denied" in connection["last_error"]


def test_an_expired_device_code_leaves_the_connection_needing_authorization(
    live: Live, idp: IdP
) -> None:
    profile = _device_profile(live, idp)
    started = live.connect(profile["id"])
    idp.expire_device_code(started["user_code"])
    connection = _wait_for_status(live, started["id"], "needs_reauth")
    assert "expired_token" in connection["last_error"]


def test_the_profile_test_starts_a_device_authorization_and_shows_the_user_code(
    live: Live, idp: IdP
) -> None:
    profile = _device_profile(live, idp)
    result = live.http.post(f"/api/v1/profiles/{profile['id']}/test", json={})
    assert result.status_code == 200, result.text
    body = result.json()
    assert body["ok"] is True, body
    step = body["steps"][0]
    assert step["ok"] is True and "device authorization" in step["detail"]
    # The device code is a secret: redacted wherever the test shows the exchange.
    exchange = str(body)
    assert "device_code" not in exchange or "[redacted]" in exchange


def test_reauthorizing_a_device_code_connection_answers_a_new_user_code(
    live: Live, idp: IdP, user: tuple[str, str]
) -> None:
    profile = _device_profile(live, idp)
    started = live.connect(profile["id"])
    idp.approve_device(started["user_code"], *user)
    _wait_for_status(live, started["id"], "active")

    again = live.http.post(f"/api/v1/connections/{started['id']}/reauthorize", json={})
    assert again.status_code == 200, again.text
    body = again.json()
    assert body["id"] == started["id"]
    assert body["user_code"] and body["user_code"] != started["user_code"]
    assert body["verification_uri"] == idp.device_verification_url
    # It keeps serving its token until the person answers again.
    assert live.token(started["id"]).status_code == 200
    assert body["connection"]["status"] == "active"
