"""A slow identity provider holds no database lock, and a refresh lease is never lost.

A refresh is claimed with a lease, the IdP is called with no transaction open, and the
result is written back with a compare-and-swap. So while one connection's IdP hangs,
every other request (callbacks, creates, refreshes of other connections) goes through.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from authprofiles.oauth.grants import rfc6749_refresh
from authprofiles.store.models import ConnectionRow
from tests.support.app import ADMIN, Live, oauth_profile, password_connection
from tests.support.faults import FaultProxy
from tests.support.idp import IdP
from tests.support.load import Request, assert_no_failures, send_concurrently, tally

TOKEN_PATH = "/o/token/"


def _stored(live: Live, connection_id: str) -> ConnectionRow:
    with live.services.db.read() as session:
        row = session.get(ConnectionRow, connection_id)
        assert row is not None
        return row


def _authorized_callbacks(live: Live, idp: IdP, user: tuple[str, str], count: int) -> list[str]:
    """Callback URLs, each with a fresh code, that the IdP redirected a person to."""
    profile, _ = oauth_profile(live, idp, "authorization-code")
    urls = []
    for _ in range(count):
        started = live.connect(profile["id"], owner="shared")
        location = idp.log_in_and_consent(started["authorization_url"], *user)
        urls.append(location.removeprefix(live.url))
    return urls


def test_a_hung_idp_refresh_blocks_nothing_else(
    live: Live, idp: IdP, faults: FaultProxy, user: tuple[str, str]
) -> None:
    live.services.oauth.retries = 0
    live.services.oauth.deadline_seconds = 60.0
    live.services.transports.timeout = httpx.Timeout(60.0)
    hung = password_connection(live, idp, user, token_url=faults.url + TOKEN_PATH)
    others = [password_connection(live, idp, user) for _ in range(10)]
    callbacks = _authorized_callbacks(live, idp, user, 30)
    for connection_id in [hung, *others]:
        live.expire(connection_id)

    faults.reset()
    faults.set_mode("timeout", path_prefix=TOKEN_PATH, hold_seconds=20)
    with ThreadPoolExecutor(1) as pool:
        hung_call = pool.submit(live.token, hung)
        while faults.requests_to(TOKEN_PATH) == 0:  # the refresh reached the IdP and hangs
            assert not hung_call.done(), hung_call.result().text
            time.sleep(0.01)
        prefix = uuid.uuid4().hex[:6]
        requests: list[Request] = [
            *(("GET", url, None) for url in callbacks),
            *(("GET", f"/api/v1/connections/{others[i % 10]}/token", None) for i in range(30)),
            *(
                (
                    "POST",
                    "/api/v1/profiles",
                    {
                        "name": f"{prefix}-{i}",
                        "auth_type": "oauth2_client_credentials",
                        "identity_provider": "Other IdP",
                        "client_id": "c",
                        "client_secret": "s",
                        "token_url": idp.token_url,
                    },
                )
                for i in range(40)
            ),
        ]
        results = send_concurrently(
            live.url, requests, concurrency=20, headers=dict(live.http.headers)
        )
        # Everything else finished while the hung refresh was still waiting on its IdP.
        assert not hung_call.done()
        faults.stop()  # the IdP hangs up
        hung_answer = hung_call.result(timeout=60)

    assert_no_failures(results)
    assert tally(results) == {"200": 60, "201": 40}
    assert all("Connected" in r.text for r in results[:30] if isinstance(r, httpx.Response))
    assert hung_answer.status_code in (502, 504), hung_answer.text
    # The hung connection kept its refresh token and is free to be refreshed again.
    row = _stored(live, hung)
    assert row.refresh_token_enc is not None
    assert row.refresh_lease_owner is None and row.refresh_lease_until is None


def _hold_lease(live: Live, connection_id: str, until: datetime) -> None:
    """What a worker that claimed the refresh and then died leaves behind."""
    with live.services.db.session() as session:
        row = session.get(ConnectionRow, connection_id)
        assert row is not None
        row.refresh_lease_owner = "a-worker-that-died"
        row.refresh_lease_until = until


@pytest.mark.parametrize("lease_left", [0.0, 1.0], ids=["lapsed", "lapsing"])
def test_a_dead_claimants_lease_lapses_and_the_next_caller_refreshes(
    live: Live, idp: IdP, user: tuple[str, str], lease_left: float
) -> None:
    connection_id = password_connection(live, idp, user)
    before = live.services.connections.get(ADMIN, connection_id).tokens
    assert before is not None and before.refresh_token
    live.expire(connection_id)
    _hold_lease(live, connection_id, datetime.now(UTC) + timedelta(seconds=lease_left))
    idp.reset_counters()

    answer = live.token(connection_id)

    assert answer.status_code == 200, answer.text
    assert answer.json()["access_token"] != before.access_token
    assert idp.token_requests("refresh_token") == 1
    after = live.services.connections.get(ADMIN, connection_id).tokens
    assert after is not None and after.refresh_token not in (None, before.refresh_token)
    assert idp.is_active(answer.json()["access_token"])
    row = _stored(live, connection_id)
    assert row.refresh_lease_owner is None


def test_a_valid_token_is_served_while_another_worker_refreshes_it(
    live: Live, idp: IdP, user: tuple[str, str]
) -> None:
    connection_id = password_connection(live, idp, user)
    before = live.services.connections.get(ADMIN, connection_id).tokens
    assert before is not None
    # Due for refresh (inside the skew) but still valid, and another worker holds the lease.
    live.set_expires_at(connection_id, datetime.now(UTC) + timedelta(seconds=30))
    _hold_lease(live, connection_id, datetime.now(UTC) + timedelta(seconds=300))
    idp.reset_counters()

    answer = live.token(connection_id)

    assert answer.status_code == 200, answer.text
    assert answer.json()["access_token"] == before.access_token
    assert idp.token_requests() == 0


def test_a_refresh_that_finds_a_newer_token_written_keeps_that_one(
    live: Live, idp: IdP, user: tuple[str, str]
) -> None:
    """The compare-and-swap: a claimant whose token was replaced meanwhile writes nothing."""
    connection_id = password_connection(live, idp, user)
    store = live.services.connection_store
    connection = live.services.connections.get(ADMIN, connection_id)
    assert connection.tokens is not None
    with live.services.db.session() as session:
        assert store.claim_refresh(
            session, connection_id, version=connection.version, owner="me", seconds=60
        )
    with live.services.db.session() as session:
        assert not store.claim_refresh(
            session, connection_id, version=connection.version, owner="you", seconds=60
        ), "a live lease is exclusive"
    newer = rfc6749_refresh.refresh(
        live.services.oauth, _settings(live, connection_id), connection.tokens.refresh_token or ""
    )
    with live.services.db.session() as session:
        row = session.get(ConnectionRow, connection_id)
        assert row is not None
        store.store_tokens(row, newer, requested=())
    stale = connection.tokens
    with live.services.db.session() as session:
        written = store.finish_refresh(
            session, connection_id, version=connection.version, tokens=stale, requested=()
        )
    assert not written
    kept = live.services.connections.get(ADMIN, connection_id).tokens
    assert kept is not None and kept.access_token == newer.access_token


def _settings(live: Live, connection_id: str):  # type: ignore[no-untyped-def]
    from authprofiles.services.oauth_settings import connection_settings

    connection, profile = live.services.credentials.read(None, connection_id)
    return connection_settings(profile, connection, live.services.settings.callback_url)
