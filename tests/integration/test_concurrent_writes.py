"""Concurrent writers against a served process: no 5xx, no dropped connection, ever.

SQLite is the embedded default, so it must take many writers at once as PostgreSQL does:
every request is answered, and the stored state is one whole writer's values.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from authprofiles.composition import Services
from tests.support.app import ADMIN
from tests.support.live import ProcessServer
from tests.support.load import Request, assert_no_failures, send_concurrently, tally

REQUESTS = 200
CONCURRENCY = 50


@pytest.fixture
def server(services: Services, master_key: str, tmp_path: Path) -> Iterator[ProcessServer]:
    env = {
        "AUTHPROFILES_DATABASE_URL": services.settings.database_url,
        "AUTHPROFILES_MASTER_KEY": master_key,
        "AUTHPROFILES_BACKGROUND_REFRESH_INTERVAL_SECONDS": "3600",
        "AUTHPROFILES_LOG_LEVEL": "warning",
    }
    process = ProcessServer(env, tmp_path, workers=2).start()
    try:
        yield process
    finally:
        process.stop()


def _profile(name: str, marker: str = "0") -> dict[str, Any]:
    return {
        "name": name,
        "auth_type": "oauth2_client_credentials",
        "identity_provider": f"IdP {marker}",
        "description": f"writer {marker}",
        "client_id": f"client-{marker}",
        "client_secret": f"secret-{marker}",
        "token_url": f"http://127.0.0.1:9/token/{marker}",
        "scopes": [f"scope-{marker}"],
    }


def test_many_concurrent_creates_all_succeed(services: Services, server: ProcessServer) -> None:
    key = services.api_keys.create(name="writers", role="admin").key
    prefix = uuid.uuid4().hex[:6]
    requests: list[Request] = [
        ("POST", "/api/v1/profiles", _profile(f"{prefix}-{i}", str(i))) for i in range(REQUESTS)
    ]
    results = send_concurrently(
        server.url, requests, concurrency=CONCURRENCY, headers={"Authorization": f"Bearer {key}"}
    )

    assert_no_failures(results)
    assert tally(results) == {"201": REQUESTS}
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as http:
        names = {p["name"] for p in _all_profiles(http)}
    assert {f"{prefix}-{i}" for i in range(REQUESTS)} <= names


def test_many_concurrent_patches_leave_one_whole_writers_values(
    services: Services, server: ProcessServer
) -> None:
    key = services.api_keys.create(name="writers", role="admin").key
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server.url, headers=headers) as http:
        created = http.post("/api/v1/profiles", json=_profile("patched", "start"))
        assert created.status_code == 201, created.text
        profile_id = created.json()["id"]
    requests: list[Request] = []
    for i in range(REQUESTS):
        body = _profile("patched", str(i))
        del body["name"], body["auth_type"]
        requests.append(("PATCH", f"/api/v1/profiles/{profile_id}", body))
    results = send_concurrently(
        server.url, requests, concurrency=CONCURRENCY, headers={"Authorization": f"Bearer {key}"}
    )

    assert_no_failures(results)
    assert tally(results) == {"200": REQUESTS}
    with httpx.Client(base_url=server.url, headers=headers) as http:
        final = http.get(f"/api/v1/profiles/{profile_id}").json()
    marker = final["client_id"].removeprefix("client-")
    assert final["identity_provider"] == f"IdP {marker}"
    assert final["description"] == f"writer {marker}"
    assert final["token_url"] == f"http://127.0.0.1:9/token/{marker}"
    assert final["scopes"] == [f"scope-{marker}"]
    secret = services.profiles.get(ADMIN, profile_id).client_secret
    assert secret == f"secret-{marker}", "the secret was written by the same writer"


def test_a_same_name_race_gives_one_201_and_409s(services: Services, server: ProcessServer) -> None:
    key = services.api_keys.create(name="writers", role="admin").key
    name = f"race-{uuid.uuid4().hex[:6]}"
    requests: list[Request] = [
        ("POST", "/api/v1/profiles", _profile(name, str(i))) for i in range(CONCURRENCY)
    ]
    results = send_concurrently(
        server.url, requests, concurrency=CONCURRENCY, headers={"Authorization": f"Bearer {key}"}
    )

    assert_no_failures(results)
    assert tally(results) == {"201": 1, "409": CONCURRENCY - 1}


def _all_profiles(http: httpx.Client) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    url: str | None = "/api/v1/profiles?limit=1000"
    while url:
        response = http.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        out.extend(body if isinstance(body, list) else body["items"])
        url = response.links.get("next", {}).get("url")
    return out
