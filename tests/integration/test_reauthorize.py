"""``POST /connections/{id}/reauthorize``: the same connection, authorized again, through
the real HTTP API against the real IdP. Each test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.app import Live, oauth_profile
from tests.support.idp import IdP


def _reauthorize(live: Live, connection_id: str, **body: Any) -> httpx.Response:
    return live.http.post(f"/api/v1/connections/{connection_id}/reauthorize", json=body)


def _connection(live: Live, connection_id: str) -> dict[str, Any]:
    response = live.http.get(f"/api/v1/connections/{connection_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _connections_of(live: Live, profile_id: str) -> list[str]:
    listed = live.http.get(f"/api/v1/profiles/{profile_id}/connections").json()
    return [c["id"] for c in listed]


def test_an_authorization_code_connection_needing_reauth_is_authorized_again_in_place(
    live: Live, idp: IdP, user: tuple[str, str]
) -> None:
    profile, client = oauth_profile(live, idp, "authorization-code", scopes=["read"])
    started = live.connect(profile["id"])
    assert httpx.get(idp.log_in_and_consent(started["authorization_url"], *user)).is_success
    idp.revoke_all_tokens(client.client_id)
    live.expire(started["id"])
    assert live.token(started["id"]).json()["connection_status"] == "needs_reauth"

    again = _reauthorize(live, started["id"])
    assert again.status_code == 200, again.text
    body = again.json()
    assert body["id"] == body["connection_id"] == started["id"]
    assert body["authorization_url"].startswith(idp.authorization_url)
    # Until the callback brings new tokens it stays as it was.
    assert body["status"] == "needs_reauth"
    assert _connection(live, started["id"])["status"] == "needs_reauth"

    page = httpx.get(idp.log_in_and_consent(body["authorization_url"], *user), timeout=30)
    assert page.status_code == 200, page.text
    shown = _connection(live, started["id"])
    assert shown["status"] == "active"
    assert shown["last_error"] is None
    token = live.token(started["id"])
    assert token.status_code == 200, token.text
    assert idp.is_active(token.json()["access_token"])
    assert _connections_of(live, profile["id"]) == [started["id"]]  # no second connection
    shared = live.http.get(f"/api/v1/profiles/{profile['id']}").json()
    assert shared["status"] == "configured"  # recovered from the refused refresh


def test_a_working_connection_keeps_serving_while_only_the_newest_link_completes(
    live: Live, idp: IdP, user: tuple[str, str]
) -> None:
    profile, _ = oauth_profile(live, idp, "authorization-code")
    started = live.connect(profile["id"], owner="user-9")
    assert httpx.get(idp.log_in_and_consent(started["authorization_url"], *user)).is_success
    before = live.token(started["id"]).json()["access_token"]

    first = _reauthorize(live, started["id"]).json()
    second = _reauthorize(live, started["id"]).json()
    assert first["status"] == second["status"] == "active"
    assert live.token(started["id"]).json()["access_token"] == before

    # An older link left open was replaced by the newer one.
    stale = httpx.get(idp.log_in_and_consent(first["authorization_url"], *user), timeout=30)
    assert stale.status_code == 400
    assert "replaced by a newer one" in stale.text
    assert live.token(started["id"]).json()["access_token"] == before

    page = httpx.get(idp.log_in_and_consent(second["authorization_url"], *user), timeout=30)
    assert page.status_code == 200, page.text
    after = live.token(started["id"]).json()["access_token"]
    assert after != before
    assert idp.is_active(after)


def test_client_credentials_are_granted_again_on_the_same_connection(live: Live, idp: IdP) -> None:
    profile, _ = oauth_profile(live, idp, "client-credentials", scopes=["read"])
    started = live.connect(profile["id"])
    before = live.token(started["id"]).json()["access_token"]

    idp.reset_counters()
    again = _reauthorize(live, started["id"])
    assert again.status_code == 200, again.text
    body = again.json()
    assert body["id"] == started["id"]
    assert body["status"] == "active"
    assert "authorization_url" not in body
    assert idp.token_requests("client_credentials") == 1
    after = live.token(started["id"]).json()["access_token"]
    assert after != before
    assert idp.is_active(after)
    assert _connections_of(live, profile["id"]) == [started["id"]]


def test_a_user_mode_password_connection_is_authorized_again_with_the_users_password(
    live: Live, idp: IdP, user: tuple[str, str]
) -> None:
    profile, _ = oauth_profile(live, idp, "password", authorization_mode="user")
    started = live.connect(profile["id"], owner="u1", username=user[0], password=user[1])
    idp.revoke_all_tokens(username=user[0])
    live.expire(started["id"])
    assert live.token(started["id"]).json()["connection_status"] == "needs_reauth"

    # In user mode no password was kept: the user gives it again.
    missing = _reauthorize(live, started["id"])
    assert missing.status_code == 422
    assert {e["field"] for e in missing.json()["errors"]} == {"username", "password"}
    wrong = _reauthorize(live, started["id"], username=user[0], password="wrong")
    assert wrong.status_code == 400
    assert wrong.json()["idp_error"] == "invalid_grant"
    assert _connection(live, started["id"])["status"] == "needs_reauth"

    again = _reauthorize(live, started["id"], username=user[0], password=user[1])
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "active"
    assert again.json()["last_error"] is None
    token = live.token(started["id"])
    assert token.status_code == 200, token.text
    assert idp.is_active(token.json()["access_token"])
    with live.services.db.read() as session:
        stored = live.services.connection_store.get(session, None, started["id"])
    assert stored.password is None  # still not kept


def test_a_preauthorized_password_connection_is_authorized_again_with_its_credentials(
    live: Live, idp: IdP, user: tuple[str, str]
) -> None:
    profile, _ = oauth_profile(
        live,
        idp,
        "password",
        authorization_mode="preauthorized",
        username=user[0],
        password=user[1],
    )
    started = live.connect(profile["id"])
    idp.reset_counters()
    again = _reauthorize(live, started["id"])  # nothing to bring: the profile holds them
    assert again.status_code == 200, again.text
    assert idp.token_requests("password") == 1
    assert idp.is_active(live.token(started["id"]).json()["access_token"])

    # Credentials given replace the ones the connection keeps, for every later grant.
    other = ("other-" + user[0], "another password")
    idp.create_user(*other)
    assert _reauthorize(live, started["id"], username=other[0], password=other[1]).is_success
    with live.services.db.read() as session:
        stored = live.services.connection_store.get(session, None, started["id"])
    assert (stored.username, stored.password) == other


def test_a_client_refused_on_reauthorization_marks_the_profile_failing_until_it_works(
    live: Live, idp: IdP
) -> None:
    profile, client = oauth_profile(live, idp, "client-credentials")
    started = live.connect(profile["id"])  # shared
    patch = f"/api/v1/profiles/{profile['id']}"
    live.http.patch(patch, json={"client_secret": "not-the-secret"})
    refused = _reauthorize(live, started["id"])
    assert refused.status_code == 400
    assert refused.json()["idp_error"] == "invalid_client"
    shown = live.http.get(patch).json()
    assert shown["status"] == "failing"
    assert started["id"] in shown["failing_reason"]
    assert "invalid_client" in shown["failing_reason"]
    # The grant it holds is not the one refused: it keeps serving it.
    assert live.token(started["id"]).status_code == 200

    live.http.patch(patch, json={"client_secret": client.client_secret})
    assert _reauthorize(live, started["id"]).status_code == 200
    assert live.http.get(patch).json()["status"] == "configured"


def test_reauthorizing_asks_for_the_developer_role_and_an_existing_connection(
    live: Live, idp: IdP
) -> None:
    profile, _ = oauth_profile(live, idp, "authorization-code")
    started = live.connect(profile["id"])
    viewer = live.services.api_keys.create(name="viewer", role="viewer").key
    refused = httpx.post(
        f"{live.url}/api/v1/connections/{started['id']}/reauthorize",
        headers={"Authorization": f"Bearer {viewer}"},
        timeout=30,
    )
    assert refused.status_code == 403
    assert _reauthorize(live, "no-such-connection").status_code == 404
    # Credentials belong to the password grant only.
    wrong = _reauthorize(live, started["id"], username="someone")
    assert wrong.status_code == 422
    assert [e["field"] for e in wrong.json()["errors"]] == ["username"]
