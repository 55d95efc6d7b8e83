"""Many callers, several server processes, one expired token: exactly one refresh."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from authprofiles.composition import Services
from authprofiles.store.models import ConnectionRow
from tests.support.echo import EchoServer
from tests.support.idp import IdP
from tests.support.live import ProcessServer

CALLERS = 200


async def _fire(urls: list[str], key: str) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=CALLERS)
    async with httpx.AsyncClient(timeout=60, limits=limits, trust_env=False) as http:
        return await asyncio.gather(
            *(http.get(url, headers={"Authorization": f"Bearer {key}"}) for url in urls)
        )


def _expired_connection(
    services: Services, server: ProcessServer, idp: IdP, user: tuple[str, str], api_base: str
) -> tuple[str, str, str]:
    """(admin key, connection id, its access token), the token expired in the database."""
    key = services.api_keys.create(name="load", role="admin").key
    admin = httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    client = idp.register_client("password")
    profile = admin.post(
        "/api/v1/profiles",
        json={
            "name": f"concurrency-{uuid.uuid4().hex[:6]}",
            "auth_type": "oauth2_password",
            "identity_provider": "Test IdP",
            "client_id": client.client_id,
            "client_secret": client.client_secret,
            "token_url": idp.token_url,
            "authorization_mode": "user",
            "token_test_url": idp.base_url + "/o/userinfo/",
            "token_test_method": "GET",
            "token_test_content_type": "json",
            "api_base_url": api_base,
        },
    ).json()
    started = admin.post(
        f"/api/v1/profiles/{profile['id']}/connections",
        json={"username": user[0], "password": user[1]},
    )
    assert started.status_code == 201, started.text
    connection_id = started.json()["connection_id"]
    old = admin.get(f"/api/v1/connections/{connection_id}/token").json()["access_token"]
    admin.close()

    with services.db.session() as session:
        row = session.get(ConnectionRow, connection_id)
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    idp.reset_counters()
    # Past the servers' token reuse window, so every caller really asks the database.
    time.sleep(1.2)
    return key, connection_id, old


@pytest.fixture
def two_servers(
    services: Services, master_key: str, tmp_path: Path
) -> Iterator[list[ProcessServer]]:
    env = {
        "AUTHPROFILES_DATABASE_URL": services.settings.database_url,
        "AUTHPROFILES_MASTER_KEY": master_key,
        "AUTHPROFILES_BACKGROUND_REFRESH_INTERVAL_SECONDS": "3600",
        "AUTHPROFILES_LOG_LEVEL": "warning",
    }
    servers = [ProcessServer(env, tmp_path).start() for _ in range(2)]
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


def _in_own_loop(urls: list[str], key: str) -> list[httpx.Response]:
    # Its own thread: another suite's event loop (Playwright's) may own this one.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _fire(urls, key)).result()


def _all_ok(responses: list[httpx.Response]) -> None:
    assert [r.status_code for r in responses] == [200] * CALLERS, {
        r.status_code: r.text for r in responses if r.status_code != 200
    }


def test_two_hundred_callers_on_two_processes_cause_one_refresh(
    services: Services, two_servers: list[ProcessServer], idp: IdP, user: tuple[str, str]
) -> None:
    key, connection_id, old = _expired_connection(
        services, two_servers[0], idp, user, "https://api.invalid"
    )
    path = f"/api/v1/connections/{connection_id}/token"
    responses = _in_own_loop([two_servers[i % 2].url + path for i in range(CALLERS)], key)

    _all_ok(responses)
    tokens = {r.json()["access_token"] for r in responses}
    assert len(tokens) == 1, "every caller got the one new token"
    assert tokens != {old}
    assert idp.token_requests("refresh_token") == 1
    assert idp.token_requests() == 1
    assert idp.is_active(tokens.pop())


def test_two_hundred_proxied_calls_on_two_processes_cause_one_refresh(
    services: Services,
    two_servers: list[ProcessServer],
    idp: IdP,
    user: tuple[str, str],
    echo_server: EchoServer,
) -> None:
    key, connection_id, old = _expired_connection(
        services, two_servers[0], idp, user, echo_server.url
    )
    path = f"/api/v1/proxy/{connection_id}/orders"
    responses = _in_own_loop([two_servers[i % 2].url + path for i in range(CALLERS)], key)

    _all_ok(responses)
    sent = {r.json()["headers"]["authorization"] for r in responses}
    assert len(sent) == 1, "every call carried the one new token"
    assert sent != {f"Bearer {old}"}
    assert idp.token_requests("refresh_token") == 1
    assert idp.token_requests() == 1
