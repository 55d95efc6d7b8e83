"""Every grant, end to end, through the real HTTP API against a real OAuth 2.0 server.

Each test runs on SQLite and on PostgreSQL (the ``database_url`` fixture).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.support.app import Live, oauth_profile
from tests.support.idp import IdP


def _auth_code_profile(
    live: Live, idp: IdP, *, skip_consent: bool = True, **overrides: Any
) -> tuple[dict, object]:
    return oauth_profile(
        live,
        idp,
        "authorization-code",
        skip_authorization=skip_consent,
        revocation_url=idp.revocation_url,
        scopes=["read", "write"],
        **overrides,
    )


def _password_profile(live: Live, idp: IdP, mode: str = "preauthorized", **overrides: Any) -> dict:
    profile, _ = oauth_profile(
        live,
        idp,
        "password",
        revocation_url=idp.revocation_url,
        authorization_mode=mode,
        **overrides,
    )
    return profile


def test_authorization_code_with_pkce_connects_and_serves_a_token(
    live: Live, idp: IdP, user: tuple[str, str]
) -> None:
    profile, _ = _auth_code_profile(live, idp)
    started = live.connect(profile["id"], owner="user-42")
    assert started["status"] == "pending"
    query = parse_qs(urlsplit(started["authorization_url"]).query)
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43  # base64url of a SHA-256 digest
    assert query["redirect_uri"] == [live.url + "/oauth/callback"]
    assert query["scope"] == ["read write"]
    assert len(query["state"][0]) >= 32

    callback = idp.log_in_and_consent(started["authorization_url"], *user)
    page = httpx.get(callback, timeout=30)
    assert page.status_code == 200, page.text
    assert 'data-ok="true"' in page.text

    connection = live.http.get(f"/api/v1/connections/{started['connection_id']}").json()
    assert connection["status"] == "active"
    assert connection["owner"] == "user-42"
    assert connection["scopes"] == ["read", "write"]
    assert connection["has_refresh_token"] is True

    token = live.token(started["connection_id"])
    assert token.status_code == 200, token.text
    body = token.json()
    assert idp.is_active(body["access_token"])
    assert body["inject"]["headers"] == {"Authorization": f"Bearer {body['access_token']}"}

    # The same redirect again is a replay; a made-up state is a forgery. Both refused.
    replay = httpx.get(callback, timeout=30)
    assert replay.status_code == 400
    assert "already used" in replay.text
    forged = httpx.get(live.url + "/oauth/callback", params={"state": "x" * 43, "code": "abc"})
    assert forged.status_code == 400
    assert 'data-ok="false"' in forged.text


def test_authorization_code_refused_at_the_idp_is_reported(
    live: Live, idp: IdP, user: tuple[str, str]
) -> None:
    profile, _ = _auth_code_profile(live, idp, skip_consent=False)
    started = live.connect(profile["id"])
    callback = idp.log_in_and_consent(started["authorization_url"], *user, consent=False)
    assert "error=access_denied" in callback
    page = httpx.get(callback, timeout=30)
    assert page.status_code == 400
    assert "access_denied" in page.text
    # No longer pending: marked, so its owner sees why, and can authorize it again.
    connection = live.http.get(f"/api/v1/connections/{started['connection_id']}").json()
    assert connection["status"] == "needs_reauth"
    assert "access_denied" in connection["last_error"]
    assert live.token(started["connection_id"]).json()["connection_status"] == "needs_reauth"


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_client_credentials_in_both_client_auth_methods(live: Live, idp: IdP, method: str) -> None:
    profile, _ = oauth_profile(
        live, idp, "client-credentials", client_auth_method=method, scopes=["read"]
    )
    idp.reset_counters()
    started = live.connect(profile["id"])
    assert started["status"] == "active"
    assert started["authorization_url"] is None
    assert idp.token_requests("client_credentials") == 1
    token = live.token(started["connection_id"]).json()
    assert idp.is_active(token["access_token"])

    # Without a refresh token, "refresh" means running the grant again.
    live.expire(started["connection_id"])
    renewed = live.token(started["connection_id"]).json()
    assert renewed["access_token"] != token["access_token"]
    assert idp.token_requests("client_credentials") == 2


def test_client_credentials_with_a_wrong_secret_stores_nothing(live: Live, idp: IdP) -> None:
    profile, _ = oauth_profile(live, idp, "client-credentials", client_secret="not-the-secret")
    response = live.http.post(f"/api/v1/profiles/{profile['id']}/connections", json={})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["idp_error"] == "invalid_client"
    assert live.http.get(f"/api/v1/profiles/{profile['id']}/connections").json() == []


def _profile_status(live: Live, profile_id: str) -> tuple[str, str | None]:
    shown = live.http.get(f"/api/v1/profiles/{profile_id}").json()
    return shown["status"], shown["failing_reason"]


def test_a_client_refused_on_connect_marks_the_profile_failing_until_a_connect_succeeds(
    live: Live, idp: IdP
) -> None:
    profile, client = oauth_profile(live, idp, "client-credentials", client_secret="not-the-secret")
    connections = f"/api/v1/profiles/{profile['id']}/connections"
    refused = live.http.post(connections, json={"owner": "shared"})
    assert refused.status_code == 400
    assert refused.json()["idp_error"] == "invalid_client"
    status, reason = _profile_status(live, profile["id"])
    assert status == "failing"
    assert reason is not None and "invalid_client" in reason
    assert "not-the-secret" not in reason

    live.http.patch(
        f"/api/v1/profiles/{profile['id']}", json={"client_secret": client.client_secret}
    )
    assert live.http.post(connections, json={}).status_code == 201
    assert _profile_status(live, profile["id"]) == ("configured", None)


def test_a_client_not_allowed_the_grant_marks_the_profile_failing(
    live: Live, idp: IdP, user: tuple[str, str]
) -> None:
    # RFC 6749 section 5.2 unauthorized_client: the client may not use this grant type.
    only_client_credentials = idp.register_client("client-credentials")
    profile = _password_profile(
        live,
        idp,
        "preauthorized",
        client_id=only_client_credentials.client_id,
        client_secret=only_client_credentials.client_secret,
        username=user[0],
        password=user[1],
    )
    refused = live.http.post(f"/api/v1/profiles/{profile['id']}/connections", json={})
    assert refused.status_code == 400
    assert refused.json()["idp_error"] == "unauthorized_client"
    status, reason = _profile_status(live, profile["id"])
    assert status == "failing"
    assert reason is not None and "unauthorized_client" in reason


def test_a_users_own_connection_refused_leaves_the_profile_as_it_was(live: Live, idp: IdP) -> None:
    # Only a shared connection speaks for the profile (a user's own attempt may name a
    # tenant of their choosing); the caller still hears the refusal.
    profile, _ = oauth_profile(live, idp, "client-credentials", client_secret="not-the-secret")
    refused = live.http.post(
        f"/api/v1/profiles/{profile['id']}/connections", json={"owner": "user-7"}
    )
    assert refused.status_code == 400
    assert refused.json()["idp_error"] == "invalid_client"
    assert _profile_status(live, profile["id"]) == ("configured", None)


def test_a_client_refused_on_the_code_exchange_marks_the_profile_failing(
    live: Live, idp: IdP, user: tuple[str, str]
) -> None:
    # The IdP shows its login to any known client id; the secret is checked only when the
    # code is exchanged.
    profile, client = _auth_code_profile(live, idp, client_secret="not-the-secret")
    started = live.connect(profile["id"])  # shared
    page = httpx.get(idp.log_in_and_consent(started["authorization_url"], *user), timeout=30)
    assert page.status_code == 502
    assert "invalid_client" in page.text
    status, reason = _profile_status(live, profile["id"])
    assert status == "failing"
    assert reason is not None and "invalid_client" in reason
    connection = live.http.get(f"/api/v1/connections/{started['id']}").json()
    assert connection["status"] == "needs_reauth"
    assert "invalid_client" in connection["last_error"]

    # Fixed, and authorized again: the same connection, and the profile recovers.
    live.http.patch(
        f"/api/v1/profiles/{profile['id']}", json={"client_secret": client.client_secret}
    )
    again = live.http.post(f"/api/v1/connections/{started['id']}/reauthorize")
    assert again.status_code == 200, again.text
    page = httpx.get(idp.log_in_and_consent(again.json()["authorization_url"], *user), timeout=30)
    assert page.status_code == 200, page.text
    assert live.http.get(f"/api/v1/connections/{started['id']}").json()["status"] == "active"
    assert _profile_status(live, profile["id"]) == ("configured", None)


def test_password_grant_preauthorized_stores_credentials_and_regenerates(
    live: Live, idp: IdP, user: tuple[str, str]
) -> None:
    profile = _password_profile(live, idp, "preauthorized", username=user[0], password=user[1])
    started = live.connect(profile["id"])  # the profile's credentials: nothing to bring
    connection_id = started["connection_id"]
    first = live.token(connection_id).json()

    # The IdP forgets every token: the refresh is refused with invalid_grant, and the
    # stored credentials regenerate a token (seed 003 "auto-regeneration").
    idp.revoke_all_tokens(username=user[0])
    live.expire(connection_id)
    idp.reset_counters()
    again = live.token(connection_id)
    assert again.status_code == 200, again.text
    assert again.json()["access_token"] != first["access_token"]
    assert idp.token_requests("refresh_token") == 1
    assert idp.token_requests("password") == 1


def test_a_preauthorized_password_profile_without_credentials_is_not_configured_until_given(
    live: Live, idp: IdP, user: tuple[str, str]
) -> None:
    # Seed 003: pre-authorized credentials are "provided in advance". Without them the
    # profile says so, instead of showing configured and failing on connect.
    client = idp.register_client("password")
    fields = {
        "auth_type": "oauth2_password",
        "identity_provider": "Test IdP",
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "token_url": idp.token_url,
        "authorization_mode": "preauthorized",
    }
    refused = live.http.post("/api/v1/profiles", json={"name": "no-credentials", **fields})
    assert refused.status_code == 422
    assert [e["field"] for e in refused.json()["errors"]] == ["username", "password"]

    created = live.http.post(
        "/api/v1/profiles",
        params={"allow_incomplete": "true"},
        json={"name": "no-credentials", **fields},
    )
    assert created.status_code == 201, created.text
    profile = created.json()
    assert profile["status"] == "not_configured"
    assert profile["missing_fields"] == ["username", "password"]
    connections = f"/api/v1/profiles/{profile['id']}/connections"
    not_yet = live.http.post(connections, json={})
    assert not_yet.status_code == 409
    assert "username, password" in not_yet.json()["detail"]

    patched = live.http.patch(
        f"/api/v1/profiles/{profile['id']}", json={"username": user[0], "password": user[1]}
    )
    assert patched.json()["status"] == "configured"
    connected = live.http.post(connections, json={})
    assert connected.status_code == 201, connected.text
    assert connected.json()["status"] == "active"


def test_password_grant_user_mode_uses_the_password_once(
    live: Live, idp: IdP, user: tuple[str, str]
) -> None:
    profile = _password_profile(live, idp, "user")
    missing = live.http.post(f"/api/v1/profiles/{profile['id']}/connections", json={"owner": "u1"})
    assert missing.status_code == 422
    assert {e["field"] for e in missing.json()["errors"]} == {"username", "password"}
    started = live.connect(profile["id"], owner="u1", username=user[0], password=user[1])
    with live.services.db.read() as session:
        connection = live.services.connection_store.get(session, None, started["connection_id"])
    assert connection.password is None  # not kept: the user gave it for this authorization

    idp.revoke_all_tokens(username=user[0])
    live.expire(started["connection_id"])
    refused = live.token(started["connection_id"])
    assert refused.status_code == 409
    assert refused.json()["connection_status"] == "needs_reauth"


def test_refresh_rotates_the_refresh_token_in_the_same_write(
    live: Live, idp: IdP, user: tuple[str, str]
) -> None:
    profile = _password_profile(live, idp, "user")
    started = live.connect(profile["id"], username=user[0], password=user[1])
    connection_id = started["connection_id"]
    with live.services.db.read() as session:
        before = live.services.connection_store.get(session, None, connection_id).tokens
    assert before is not None and before.refresh_token

    live.expire(connection_id)
    idp.reset_counters()
    response = live.token(connection_id)
    assert response.status_code == 200, response.text
    assert idp.token_requests("refresh_token") == 1
    with live.services.db.read() as session:
        after = live.services.connection_store.get(session, None, connection_id)
    assert after.tokens is not None
    assert after.tokens.access_token == response.json()["access_token"] != before.access_token
    assert after.tokens.refresh_token and after.tokens.refresh_token != before.refresh_token
    assert not idp.is_active(before.refresh_token)  # rotated away at the IdP
    assert idp.is_active(after.tokens.refresh_token)
    assert after.tokens.expires_at is not None and after.tokens.expires_at > datetime.now(UTC)

    # A valid token is served as is: no further request reaches the IdP.
    for _ in range(5):
        assert live.token(connection_id).json()["access_token"] == after.tokens.access_token
    assert idp.token_requests() == 1


def test_invalid_grant_marks_needs_reauth_and_a_shared_profile_failing(
    live: Live, idp: IdP, user: tuple[str, str]
) -> None:
    profile, client = _auth_code_profile(live, idp)
    started = live.connect(profile["id"])  # shared
    page = httpx.get(idp.log_in_and_consent(started["authorization_url"], *user), timeout=30)
    assert page.status_code == 200

    idp.revoke_all_tokens(client.client_id)
    live.expire(started["connection_id"])
    refused = live.token(started["connection_id"])
    assert refused.status_code == 409
    problem = refused.json()
    assert problem["connection_status"] == "needs_reauth"
    assert "invalid_grant" in problem["last_error"]
    connection = live.http.get(f"/api/v1/connections/{started['connection_id']}").json()
    assert connection["status"] == "needs_reauth"
    assert "invalid_grant" in connection["last_error"]
    assert connection["has_refresh_token"] is True  # never discarded
    shown = live.http.get(f"/api/v1/profiles/{profile['id']}").json()
    assert shown["status"] == "failing"
    assert "invalid_grant" in shown["failing_reason"]


def test_deleting_a_connection_revokes_its_tokens_at_the_idp(
    live: Live, idp: IdP, user: tuple[str, str]
) -> None:
    profile = _password_profile(live, idp, "user")
    started = live.connect(profile["id"], username=user[0], password=user[1])
    with live.services.db.read() as session:
        tokens = live.services.connection_store.get(session, None, started["connection_id"]).tokens
    assert tokens is not None and tokens.refresh_token
    assert idp.is_active(tokens.access_token) and idp.is_active(tokens.refresh_token)

    deleted = live.http.delete(f"/api/v1/connections/{started['connection_id']}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["revoked"] == ["refresh_token", "access_token"]
    assert not idp.is_active(tokens.access_token)
    assert not idp.is_active(tokens.refresh_token)
    assert live.http.get(f"/api/v1/connections/{started['connection_id']}").status_code == 404


def test_deleting_a_profile_revokes_and_removes_its_connections(
    live: Live, idp: IdP, user: tuple[str, str]
) -> None:
    profile = _password_profile(live, idp, "preauthorized", username=user[0], password=user[1])
    one = live.connect(profile["id"])
    token = live.token(one["connection_id"]).json()["access_token"]
    deleted = live.http.delete(f"/api/v1/profiles/{profile['id']}")
    assert deleted.status_code == 200
    assert not idp.is_active(token)
    assert live.http.get(f"/api/v1/connections/{one['connection_id']}").status_code == 404


def test_discovery_reads_the_servers_metadata(live: Live, idp: IdP) -> None:
    response = live.http.get("/api/v1/discovery", params={"issuer": idp.issuer})
    assert response.status_code == 200, response.text
    found = response.json()
    assert found["token_url"] == idp.token_url
    assert found["authorization_url"] == idp.authorization_url
    assert found["revocation_url"] == idp.revocation_url
    assert "S256" in found["code_challenge_methods"]
    assert {"client_secret_basic", "client_secret_post"} <= set(found["client_auth_methods"])

    wrong = live.http.get("/api/v1/discovery", params={"issuer": idp.issuer + "/nope"})
    assert wrong.status_code == 422


def test_tenant_and_fields_are_rendered_into_urls_and_cannot_move_the_host(
    live: Live, idp: IdP
) -> None:
    profile, _ = oauth_profile(
        live,
        idp,
        "authorization-code",
        authorization_url="https://{tenant}.login.example.com/{{region}}/authorize",
        form_fields=[{"title": "Region", "key": "region", "mandatory": True}],
        tenancy=True,
    )
    connections = f"/api/v1/profiles/{profile['id']}/connections"
    for tenant in ("evil.com/x", "a@b", "x.y", "-a", "a" * 64):
        bad = live.http.post(connections, json={"tenant": tenant, "fields": {"region": "eu"}})
        assert bad.status_code == 422, tenant
        assert bad.json()["errors"][0]["field"] == "tenant"
    missing = live.http.post(connections, json={"fields": {"region": "eu"}})
    assert {e["field"] for e in missing.json()["errors"]} == {"tenant"}
    no_field = live.http.post(connections, json={"tenant": "acme"})
    assert {e["field"] for e in no_field.json()["errors"]} == {"fields.region"}

    # A value that would climb out of its segment, even encoded, is refused naming the URL.
    climb = live.http.post(connections, json={"tenant": "acme", "fields": {"region": "eu/../w"}})
    assert climb.status_code == 422, climb.text
    assert [e["field"] for e in climb.json()["errors"]] == ["authorization_url"]

    ok = live.http.post(connections, json={"tenant": "Acme", "fields": {"region": "eu west?"}})
    assert ok.status_code == 201, ok.text
    assert ok.json()["connection"]["tenant"] == "acme"
    url = urlsplit(ok.json()["authorization_url"])
    assert url.netloc == "acme.login.example.com"
    assert url.path == "/eu%20west%3F/authorize"  # one encoded segment
