"""Many callers, several server processes, one expired token: exactly one refresh."""

from __future__ import annotations

import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from authprofiles.services.container import Services
from authprofiles.store.models import ConnectionRow
from tests.support.idp import IdP
from tests.support.live import ProcessServer

CALLERS = 200


async def _fire(urls: list[str], key: str, connection_id: str) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=CALLERS)
    async with httpx.AsyncClient(timeout=60, limits=limits, trust_env=False) as http:
        return await asyncio.gather(
            *(
                http.get(
                    f"{urls[i % len(urls)]}/api/v1/connections/{connection_id}/token",
                    headers={"Authorization": f"Bearer {key}"},
                )
                for i in range(CALLERS)
            )
        )


def test_two_hundred_callers_on_two_processes_cause_one_refresh(
    services: Services, master_key: str, tmp_path: Path, idp: IdP, user: tuple[str, str]
) -> None:
    env = {
        "AUTHPROFILES_DATABASE_URL": services.settings.database_url,
        "AUTHPROFILES_MASTER_KEY": master_key,
        "AUTHPROFILES_BACKGROUND_REFRESH_INTERVAL_SECONDS": "3600",
        "AUTHPROFILES_LOG_LEVEL": "warning",
    }
    servers = [ProcessServer(env, tmp_path).start() for _ in range(2)]
    try:
        key = services.api_keys.create(name="load", role="admin").key
        admin = httpx.Client(
            base_url=servers[0].url, headers={"Authorization": f"Bearer {key}"}, timeout=30
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

        # Its own thread: another suite's event loop (Playwright's) may own this one.
        with ThreadPoolExecutor(1) as pool:
            responses = pool.submit(
                asyncio.run, _fire([s.url for s in servers], key, connection_id)
            ).result()
    finally:
        for server in servers:
            server.stop()

    assert [r.status_code for r in responses] == [200] * CALLERS, {
        r.status_code: r.text for r in responses if r.status_code != 200
    }
    tokens = {r.json()["access_token"] for r in responses}
    assert len(tokens) == 1, "every caller got the one new token"
    assert tokens != {old}
    assert idp.token_requests("refresh_token") == 1
    assert idp.token_requests() == 1
    assert idp.is_active(tokens.pop())
