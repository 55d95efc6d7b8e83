"""The token endpoint for a valid token only reads: no write reaches the database."""

from __future__ import annotations

import asyncio
import gc
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import event, text

from authprofiles.app import create_app
from authprofiles.composition import Services
from authprofiles.core.connections import TokenSet
from tests.support.app import Live
from tests.support.seed import seed_connection


def _valid_connection(services: Services) -> str:
    _, connection = seed_connection(
        services,
        {
            "name": "hot",
            "auth_type": "oauth2_client_credentials",
            "identity_provider": "IdP",
            "client_id": "id",
            "client_secret": "secret",
            "token_url": "https://idp.invalid/token",
            "authorization_fields": [
                {"type": "query", "key": "api_key", "value": "{{access_token}}"}
            ],
        },
        TokenSet(
            access_token="at-1",
            token_type="bearer",
            refresh_token="rt-1",
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        ),
    )
    return connection.id


def test_a_valid_token_is_served_without_any_database_write(
    services: Services, client: TestClient, developer_headers: dict[str, str]
) -> None:
    connection_id = _valid_connection(services)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement.strip().split()[0].upper())

    event.listen(services.db.engine, "before_cursor_execute", record)
    try:
        for _ in range(20):
            response = client.get(
                f"/api/v1/connections/{connection_id}/token", headers=developer_headers
            )
            assert response.status_code == 200, response.text
    finally:
        event.remove(services.db.engine, "before_cursor_execute", record)
    body = response.json()
    assert body["access_token"] == "at-1"
    assert body["token_type"] == "Bearer"  # RFC 6749 7.1: case-insensitive; sent canonical
    assert body["inject"]["query"] == {"api_key": "at-1"}
    assert "SELECT" in statements
    assert not {"INSERT", "UPDATE", "DELETE"} & set(statements), statements


def test_a_changed_profile_is_seen_at_once_despite_the_profile_cache(
    services: Services,
    client: TestClient,
    developer_headers: dict[str, str],
    admin_headers: dict[str, str],
) -> None:
    connection_id = _valid_connection(services)
    url = f"/api/v1/connections/{connection_id}/token"
    assert client.get(url, headers=developer_headers).json()["inject"]["query"] == {
        "api_key": "at-1"
    }
    profile_id = client.get(
        f"/api/v1/connections/{connection_id}", headers=developer_headers
    ).json()["profile_id"]
    changed = client.patch(
        f"/api/v1/profiles/{profile_id}",
        headers=admin_headers,
        json={
            "authorization_fields": [
                {"type": "header", "key": "X-Key", "value": "v-{{access_token}}"}
            ]
        },
    )
    assert changed.status_code == 200, changed.text
    inject = client.get(url, headers=developer_headers).json()["inject"]
    assert inject["query"] == {}
    assert inject["headers"]["X-Key"] == "v-at-1"


def test_roles_and_keys_guard_the_token(
    services: Services, client: TestClient, viewer_headers: dict[str, str]
) -> None:
    connection_id = _valid_connection(services)
    url = f"/api/v1/connections/{connection_id}/token"
    assert client.get(url).status_code == 401
    assert client.get(url, headers={"Authorization": "Bearer ap_nope_nope"}).status_code == 401
    forbidden = client.get(url, headers=viewer_headers)
    assert forbidden.status_code == 403
    assert forbidden.headers["content-type"].startswith("application/problem+json")
    assert "at-1" not in forbidden.text


def test_a_token_just_handed_out_is_reused_without_any_database_read(
    services: Services,
    client: TestClient,
    developer_headers: dict[str, str],
    admin_headers: dict[str, str],
) -> None:
    services.settings.token_reuse_seconds = 30
    connection_id = _valid_connection(services)
    url = f"/api/v1/connections/{connection_id}/token"
    assert client.get(url, headers=developer_headers).status_code == 200
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # Not the background passes' own reads (the device-code poller ticks meanwhile).
        if "authorization_requests" not in statement:
            statements.append(statement)

    event.listen(services.db.engine, "before_cursor_execute", record)
    try:
        for _ in range(10):
            assert client.get(url, headers=developer_headers).json()["access_token"] == "at-1"
    finally:
        event.remove(services.db.engine, "before_cursor_execute", record)
    assert statements == []
    # The policy is still asked every time, and a deleted connection is gone at once.
    viewer = services.api_keys.create(name="v", role="viewer").key
    assert client.get(url, headers={"Authorization": f"Bearer {viewer}"}).status_code == 403
    assert (
        client.delete(f"/api/v1/connections/{connection_id}", headers=admin_headers).status_code
        == 200
    )
    assert client.get(url, headers=developer_headers).status_code == 404


def test_callers_missing_the_reuse_window_together_share_one_read(
    services: Services, live: Live, developer_headers: dict[str, str]
) -> None:
    services.settings.token_reuse_seconds = 30
    connection_id = _valid_connection(services)
    url = f"{live.url}/api/v1/connections/{connection_id}/token"
    reads: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM connections" in statement:
            reads.append(statement)

    async def many(n: int) -> list[httpx.Response]:
        async with httpx.AsyncClient(headers=developer_headers, trust_env=False) as http:
            return await asyncio.gather(*(http.get(url, timeout=30) for _ in range(n)))

    assert httpx.get(url, headers=developer_headers, trust_env=False).status_code == 200
    services.token_issuing.forget(connection_id)  # as if the window had just lapsed
    # On PostgreSQL a still-valid token is read through psycopg alone (AsyncReads).
    async_reads = services.db.async_reads
    if async_reads is not None:
        one = async_reads.one

        async def counted(statement: str, params: dict[str, Any]) -> Any:
            record(None, None, statement)
            return await one(statement, params)

        async_reads.one = counted  # type: ignore[method-assign]
    event.listen(services.db.engine, "before_cursor_execute", record)
    try:
        answers = asyncio.run(many(40))
    finally:
        event.remove(services.db.engine, "before_cursor_execute", record)
        if async_reads is not None:
            del async_reads.one
    assert {a.status_code for a in answers} == {200}
    assert {a.json()["access_token"] for a in answers} == {"at-1"}
    # Requests that arrived while the first read was under way waited for it; one that
    # arrived after it found the token in memory. Neither read again.
    assert len(reads) == 1, reads


def test_a_read_whose_connection_the_database_dropped_is_tried_again(
    services: Services, client: TestClient, developer_headers: dict[str, str]
) -> None:
    """On PostgreSQL the hot path's connections are not pinged before use: one that the
    server closed (a restart, an idle timeout) fails the read, which is tried once more
    on a new one. The caller never sees it."""
    connection_id = _valid_connection(services)
    url = f"/api/v1/connections/{connection_id}/token"
    assert client.get(url, headers=developer_headers).status_code == 200
    if services.db.is_sqlite:
        return  # no pool of its own: the reads share the engine's
    with services.db.engine.connect() as db:
        dropped = db.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    assert dropped >= 1
    for _ in range(6):  # more than the pool holds: every one of them was dropped
        response = client.get(url, headers=developer_headers)
        assert response.status_code == 200, response.text
        assert response.json()["access_token"] == "at-1"


def test_the_server_freezes_what_it_started_with_out_of_the_collectors_way(
    services: Services,
) -> None:
    app = create_app(
        services=services, migrate=False, background_refresh=False, freeze_startup_objects=True
    )
    try:
        with TestClient(app) as client:
            assert client.get("/healthz").status_code == 200
            assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
