"""``GET /connections`` and the connection answers' ``id``, through the real HTTP API.
Each test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from authprofiles.core.callers import Principal, Role
from authprofiles.core.errors import Forbidden
from authprofiles.store.models import DEFAULT_WORKSPACE_ID
from tests.support.app import ADMIN, Live, oauth_profile
from tests.support.idp import IdP

CONNECTIONS = "/api/v1/connections"


def _authorization_code_profile(live: Live) -> dict[str, Any]:
    """A profile whose connections start without calling any identity provider."""
    return live.create_profile(
        auth_type="oauth2_authorization_code",
        client_id="client",
        client_secret="secret",
        authorization_url="https://idp.example.com/authorize",
        token_url="https://idp.example.com/token",
        tenancy=False,
    )


def _ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [c["id"] for c in response.json()]


def test_the_create_answer_carries_id_and_connection_id(live: Live, idp: IdP) -> None:
    pending = live.connect(_authorization_code_profile(live)["id"])
    assert pending["id"] == pending["connection_id"] == pending["connection"]["id"]
    assert pending["status"] == "pending"

    profile, _ = oauth_profile(live, idp, "client-credentials")
    active = live.connect(profile["id"])
    assert active["id"] == active["connection_id"] == active["connection"]["id"]
    assert active["status"] == "active"
    assert live.http.get(f"{CONNECTIONS}/{active['id']}").json()["id"] == active["id"]


def test_connections_are_listed_filtered_by_profile_owner_and_status(live: Live, idp: IdP) -> None:
    one = _authorization_code_profile(live)["id"]
    two = _authorization_code_profile(live)["id"]
    a = live.connect(one, owner="alice")["id"]
    b = live.connect(one)["id"]
    c = live.connect(two, owner="alice")["id"]
    client_credentials, _ = oauth_profile(live, idp, "client-credentials")
    d = live.connect(client_credentials["id"])["id"]

    listed = live.http.get(CONNECTIONS)
    assert _ids(listed) == [a, b, c, d]  # oldest first
    first = listed.json()[0]
    assert {"id", "profile_id", "owner", "tenant", "status", "expires_at", "scopes"} <= set(first)
    assert "connection_id" not in first and "access_token" not in listed.text

    assert _ids(live.http.get(CONNECTIONS, params={"profile_id": one})) == [a, b]
    assert _ids(live.http.get(CONNECTIONS, params={"owner": "alice"})) == [a, c]
    assert _ids(live.http.get(CONNECTIONS, params={"owner": "shared"})) == [b, d]
    assert _ids(live.http.get(CONNECTIONS, params={"status": "active"})) == [d]
    assert _ids(live.http.get(CONNECTIONS, params={"status": "pending"})) == [a, b, c]
    both = {"profile_id": one, "owner": "alice", "status": "pending"}
    assert _ids(live.http.get(CONNECTIONS, params=both)) == [a]
    assert _ids(live.http.get(CONNECTIONS, params={"profile_id": "no-such-profile"})) == []

    bad = live.http.get(CONNECTIONS, params={"status": "sleeping"})
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")

    # What the console's delete confirmation counts: one grouped read, admins only.
    counts = live.services.connections.counts_by_profile(ADMIN)
    assert counts == {one: 2, two: 1, client_credentials["id"]: 1}
    developer = Principal(workspace_id=DEFAULT_WORKSPACE_ID, role=Role.DEVELOPER)
    with pytest.raises(Forbidden):
        live.services.connections.counts_by_profile(developer)


def test_connections_are_listed_a_page_at_a_time(live: Live) -> None:
    profile = _authorization_code_profile(live)["id"]
    made = [live.connect(profile, owner=f"user-{i}")["id"] for i in range(5)]

    seen: list[str] = []
    response = live.http.get(CONNECTIONS, params={"limit": 2})
    pages = 0
    while True:
        pages += 1
        seen += _ids(response)
        if "link" not in response.headers:
            break
        link = response.headers["link"]
        assert link.endswith('>; rel="next"')
        response = live.http.get(link[1 : link.index(">")])
    assert seen == made
    assert pages == 3

    bad = live.http.get(CONNECTIONS, params={"cursor": "not-a-cursor"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "cursor"


def test_a_viewer_may_not_list_connections(live: Live) -> None:
    """Viewers read profiles and statuses only (the people issue's contract)."""
    profile = _authorization_code_profile(live)["id"]
    live.connect(profile)
    viewer = live.services.api_keys.create(name="viewer", role="viewer").key
    listed = httpx.get(
        f"{live.url}{CONNECTIONS}", headers={"Authorization": f"Bearer {viewer}"}, timeout=30
    )
    assert listed.status_code == 403, listed.text
