"""What a caller is told when the identity provider is slow, unreachable or refuses the
client: one bounded wait, the host named, and a failed refresh never passed off as fine."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx

from tests.support.app import ADMIN, Live, oauth_profile, password_connection
from tests.support.faults import FaultProxy
from tests.support.idp import IdP
from tests.support.live import free_port

TOKEN_PATH = "/o/token/"


def test_a_hung_idp_costs_the_caller_one_deadline_retries_included(
    live: Live, idp: IdP, faults: FaultProxy, user: tuple[str, str]
) -> None:
    # Each attempt may wait 15 s and there are three; the deadline is what bounds them.
    live.services.oauth.retries = 2
    live.services.oauth.deadline_seconds = 1.5
    live.services.transports.timeout = httpx.Timeout(15.0)
    connection_id = password_connection(live, idp, user, token_url=faults.url + TOKEN_PATH)
    live.expire(connection_id)
    faults.reset()
    faults.set_mode("timeout", path_prefix=TOKEN_PATH, hold_seconds=60)

    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(live.token, connection_id)
        # Answered while the IdP still holds every request it was sent.
        answer = call.result(timeout=45)
        assert faults.mode == "timeout"

    assert answer.status_code == 504, answer.text
    problem = answer.json()
    assert problem["upstream_host"] == f"127.0.0.1:{faults.port}"
    assert f"127.0.0.1:{faults.port}" in problem["detail"]
    assert "timed out" in problem["detail"]


def test_an_unreachable_idp_is_a_502_naming_its_host_and_why(
    live: Live, idp: IdP, user: tuple[str, str]
) -> None:
    connection_id = password_connection(live, idp, user)
    closed = free_port()  # nobody listens there
    profile_id = live.services.connections.get(ADMIN, connection_id).profile_id
    patched = live.http.patch(
        f"/api/v1/profiles/{profile_id}",
        json={"token_url": f"http://127.0.0.1:{closed}/o/token/"},
    )
    assert patched.status_code == 200, patched.text
    live.expire(connection_id)

    answer = live.token(connection_id)

    assert answer.status_code == 502, answer.text
    problem = answer.json()
    assert problem["upstream_host"] == f"127.0.0.1:{closed}"
    assert f"refresh at 127.0.0.1:{closed}: could not connect" in problem["detail"]
    assert "refused" in problem["detail"].lower()


def test_a_forced_refresh_that_fails_says_so_instead_of_handing_back_the_token(
    live: Live, idp: IdP, faults: FaultProxy, user: tuple[str, str]
) -> None:
    live.services.oauth.retries = 0
    connection_id = password_connection(live, idp, user, token_url=faults.url + TOKEN_PATH)
    refused = live.token(connection_id).json()["access_token"]
    faults.set_mode("status_500", path_prefix=TOKEN_PATH)

    answer = live.http.post(f"/api/v1/connections/{connection_id}/token/refresh", json={})

    assert answer.status_code == 502, answer.text
    assert "HTTP 500" in answer.json()["detail"]
    assert refused not in answer.text


def test_a_due_refresh_that_fails_serves_the_valid_token_and_says_why(
    live: Live, idp: IdP, faults: FaultProxy, user: tuple[str, str]
) -> None:
    live.services.oauth.retries = 0
    connection_id = password_connection(live, idp, user, token_url=faults.url + TOKEN_PATH)
    current = live.token(connection_id).json()
    assert current["refresh_error"] is None
    # Inside the refresh skew, still valid: a refresh is due, not required.
    live.set_expires_at(connection_id, datetime.now(UTC) + timedelta(seconds=30))
    faults.set_mode("status_500", path_prefix=TOKEN_PATH)

    answer = live.token(connection_id)

    assert answer.status_code == 200, answer.text
    assert answer.json()["access_token"] == current["access_token"]
    assert "HTTP 500" in answer.json()["refresh_error"]


def test_a_refused_client_on_refresh_marks_the_profile_failing_until_a_refresh_works(
    live: Live, idp: IdP, user: tuple[str, str]
) -> None:
    profile, client = oauth_profile(live, idp, "password")
    connection_id = str(
        live.connect(profile["id"], username=user[0], password=user[1])["connection_id"]
    )
    path = f"/api/v1/profiles/{profile['id']}"
    assert live.http.patch(path, json={"client_secret": "not-the-secret"}).status_code == 200
    live.expire(connection_id)

    refused = live.token(connection_id)

    assert refused.status_code == 400, refused.text
    assert refused.json()["idp_error"] == "invalid_client"
    failing = live.http.get(path).json()
    assert failing["status"] == "failing"
    assert "invalid_client" in failing["failing_reason"]
    connection = live.http.get(f"/api/v1/connections/{connection_id}").json()
    assert connection["status"] == "active", "the grant itself was not refused"

    assert live.http.patch(path, json={"client_secret": client.client_secret}).status_code == 200
    renewed = live.token(connection_id)
    assert renewed.status_code == 200, renewed.text
    recovered = live.http.get(path).json()
    assert recovered["status"] == "configured"
    assert recovered["failing_reason"] is None
