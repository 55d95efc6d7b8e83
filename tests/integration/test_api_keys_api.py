"""API keys over the HTTP API: `GET/POST /api/v1/api-keys`, `DELETE /api/v1/api-keys/{id}`
(issue 9, item 11), on the served app."""

from __future__ import annotations

import httpx
import pytest

from tests.support.app import Live

BASE = "/api/v1/api-keys"


def _client(live: Live, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=live.url, headers={"Authorization": f"Bearer {key}"}, timeout=30, trust_env=False
    )


def test_an_admin_creates_a_key_shown_once_that_works_with_its_role(live: Live) -> None:
    response = live.http.post(BASE, json={"name": "billing-agent", "role": "developer"})
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == {"id", "name", "role", "created_at", "revoked_at", "key", "user_id"}
    assert (created["name"], created["role"], created["revoked_at"]) == (
        "billing-agent",
        "developer",
        None,
    )
    key = created["key"]
    assert key.startswith("ap_")

    with _client(live, key) as developer:
        assert developer.get("/api/v1/profiles").status_code == 200
        # A developer uses profiles; making them takes an admin.
        refused = developer.post(
            "/api/v1/profiles", json={"name": "x", "auth_type": "oauth2_client_credentials"}
        )
        assert refused.status_code == 403

    listed = live.http.get(BASE)
    assert listed.status_code == 200
    assert created["id"] in [k["id"] for k in listed.json()]
    # Shown once: no later answer holds the key, nor any part of its secret.
    assert key.split("_", 2)[2] not in listed.text
    assert all(
        set(k) == {"id", "name", "role", "created_at", "revoked_at", "user_id"}
        for k in listed.json()
    )


def test_the_list_is_paged_with_limit_cursor_and_a_link_to_the_next_page(live: Live) -> None:
    made = [
        live.http.post(BASE, json={"name": f"key-{i}", "role": "viewer"}).json()["id"]
        for i in range(5)
    ]
    seen: list[str] = []
    url: str | None = f"{BASE}?limit=2"
    pages = 0
    while url is not None:
        response = live.http.get(url)
        assert response.status_code == 200, response.text
        page = response.json()
        assert isinstance(page, list) and len(page) <= 2
        seen += [k["id"] for k in page]
        pages += 1
        url = response.links.get("next", {}).get("url")
    # The fixture's own admin key first (oldest first), then the five, each once.
    assert len(seen) == len(set(seen)) == 6
    assert seen[1:] == made
    assert pages == 3

    bad = live.http.get(BASE, params={"cursor": "not-a-cursor"})
    assert bad.status_code == 422
    assert [e["field"] for e in bad.json()["errors"]] == ["cursor"]


def test_deleting_a_key_revokes_it_at_once_and_keeps_it_listed(live: Live) -> None:
    created = live.http.post(BASE, json={"name": "short-lived", "role": "admin"}).json()
    with _client(live, created["key"]) as doomed:
        assert doomed.get("/api/v1/profiles").status_code == 200  # now in this worker's cache

        assert live.http.delete(f"{BASE}/{created['id']}").status_code == 204
        after = doomed.get("/api/v1/profiles")
        assert after.status_code == 401
        assert after.headers["content-type"].startswith("application/problem+json")

    listed = {k["id"]: k for k in live.http.get(BASE).json()}
    assert listed[created["id"]]["revoked_at"] is not None
    again = live.http.delete(f"{BASE}/{created['id']}")
    assert again.status_code == 404
    assert created["id"] in again.json()["detail"]
    assert live.http.delete(f"{BASE}/no-such-key").status_code == 404


@pytest.mark.parametrize("role", ["developer", "viewer"])
def test_only_an_admin_manages_api_keys(live: Live, role: str) -> None:
    other = live.http.post(BASE, json={"name": "victim", "role": "viewer"}).json()
    caller = live.http.post(BASE, json={"name": f"a-{role}", "role": role}).json()
    with _client(live, caller["key"]) as client:
        assert client.get(BASE).status_code == 403
        # Not even a key of the caller's own role or lower: keys are an admin's business.
        refused = client.post(BASE, json={"name": "mine", "role": role})
        assert refused.status_code == 403
        assert "admin" in refused.json()["detail"]
        assert client.post(BASE, json={"name": "up", "role": "admin"}).status_code == 403
        assert client.delete(f"{BASE}/{other['id']}").status_code == 403
    listed = {k["name"]: k for k in live.http.get(BASE).json()}
    assert "mine" not in listed and "up" not in listed
    assert listed["victim"]["revoked_at"] is None


def test_a_bad_create_names_every_field_at_fault(live: Live) -> None:
    response = live.http.post(BASE, json={"name": "", "role": "root", "colour": "red"})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert {e["field"] for e in response.json()["errors"]} == {"name", "role", "colour"}

    hidden = live.http.post(BASE, json={"name": "evil\u202eyek", "role": "viewer"})
    assert hidden.status_code == 422
    assert [e["field"] for e in hidden.json()["errors"]] == ["name"]


def test_the_api_keys_operations_are_in_the_openapi_schema(live: Live) -> None:
    paths = live.http.get("/openapi.json").json()["paths"]
    assert {"get", "post"} <= set(paths[BASE])
    assert "delete" in paths[f"{BASE}/{{key_id}}"]
    created = paths[BASE]["post"]["responses"]["201"]["content"]["application/json"]
    assert created["schema"] == {"$ref": "#/components/schemas/ApiKeyCreated"}
