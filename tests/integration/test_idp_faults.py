"""Faults between the service and the IdP: the token stays usable, nothing is lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.support.app import Live
from tests.support.faults import FaultProxy
from tests.support.idp import IdP

TOKEN_PATH = "/o/token/"


def _connected(live: Live, idp: IdP, faults: FaultProxy, user: tuple[str, str]) -> str:
    client = idp.register_client("password")
    profile = live.create_profile(
        auth_type="oauth2_password",
        client_id=client.client_id,
        client_secret=client.client_secret,
        token_url=faults.url + TOKEN_PATH,
        authorization_mode="user",
        token_test_url=idp.base_url + "/o/userinfo/",
        token_test_method="GET",
        token_test_content_type="json",
    )
    return str(live.connect(profile["id"], username=user[0], password=user[1])["connection_id"])


def _stored(live: Live, connection_id: str):  # type: ignore[no-untyped-def]
    with live.services.db.read() as session:
        return live.services.connection_store.get(session, None, connection_id)


@pytest.mark.parametrize("mode", ["status_500", "timeout", "truncated", "bad_json"])
def test_a_failing_refresh_keeps_serving_the_valid_token_and_loses_nothing(
    live: Live, idp: IdP, faults: FaultProxy, user: tuple[str, str], mode: str
) -> None:
    live.services.oauth.retries = 1
    live.services.transports.timeout = httpx.Timeout(1.0)
    connection_id = _connected(live, idp, faults, user)
    before = _stored(live, connection_id).tokens
    # Inside the refresh skew (60 s) but not yet expired: a refresh is due, not required.
    live.set_expires_at(connection_id, datetime.now(UTC) + timedelta(seconds=30))

    faults.reset()
    faults.set_mode(mode, path_prefix=TOKEN_PATH, hold_seconds=3)
    served = live.token(connection_id)
    assert served.status_code == 200, served.text
    assert served.json()["access_token"] == before.access_token
    assert faults.requests_to(TOKEN_PATH) == 2  # the first try and one retry
    during = _stored(live, connection_id)
    assert during.status.value == "active"
    assert during.last_error
    assert during.tokens.refresh_token == before.refresh_token  # never discarded

    # Once the IdP answers again, the kept refresh token still works.
    faults.reset()
    idp.reset_counters()
    renewed = live.token(connection_id)
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["access_token"] != before.access_token
    assert idp.token_requests("refresh_token") == 1
    after = _stored(live, connection_id)
    assert after.last_error is None
    assert after.tokens.refresh_token not in (None, before.refresh_token)


def test_an_expired_token_with_the_idp_down_is_a_gateway_error_not_a_lost_grant(
    live: Live, idp: IdP, faults: FaultProxy, user: tuple[str, str]
) -> None:
    live.services.oauth.retries = 0
    connection_id = _connected(live, idp, faults, user)
    before = _stored(live, connection_id).tokens
    live.expire(connection_id)
    faults.set_mode("status_500", path_prefix=TOKEN_PATH)
    failed = live.token(connection_id)
    assert failed.status_code == 502
    assert failed.headers["content-type"].startswith("application/problem+json")
    assert "HTTP 500" in failed.json()["detail"]
    assert _stored(live, connection_id).tokens.refresh_token == before.refresh_token

    faults.reset()
    assert live.token(connection_id).status_code == 200
