"""RFC 8628 polling decisions of the device code grant, on httpx MockTransport (the real
authorization server's flow is in tests/integration/test_device_code.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from urllib.parse import parse_qs

import httpx
import pytest

from authprofiles.core.auth_types import AuthType
from authprofiles.oauth.errors import GrantRefused
from authprofiles.oauth.grants import GrantInput, PendingAuthorization, StillPending, grant_for
from authprofiles.oauth.grants.rfc8628_device_code import GRANT_TYPE
from tests.unit.test_oauth_engine import NOW, SETTINGS, engine_answering

DEVICE = replace(SETTINGS, device_authorization_url="https://idp.test/device")


def json_response(body: dict[str, object], status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=body)


def pending(interval: str = "5") -> PendingAuthorization:
    return PendingAuthorization(
        kind=AuthType.DEVICE_CODE.value,
        connection_id="c1",
        secrets={"device_code": "dev-123", "interval": interval},
        redirect_uri="",
        expires_at=NOW + timedelta(minutes=10),
    )


def test_the_device_authorization_answer_becomes_the_users_next_step() -> None:
    seen: list[httpx.Request] = []
    engine = engine_answering(
        json_response(
            {
                "device_code": "dev-123",
                "user_code": "WDJB-MJHT",
                "verification_uri": "https://idp.test/device",
                "verification_uri_complete": "https://idp.test/device?user_code=WDJB-MJHT",
                "expires_in": 600,
            }
        ),
        seen=seen,
    )
    started = grant_for(AuthType.DEVICE_CODE).start(engine, DEVICE, GrantInput(), NOW, 900)
    assert not hasattr(started, "tokens")
    step = started.next_step  # type: ignore[union-attr]
    assert step.user_code == "WDJB-MJHT"
    assert step.verification_uri == "https://idp.test/device"
    assert step.interval == 5  # section 3.2: "If no value is provided, clients MUST use 5"
    assert step.expires_at == NOW + timedelta(seconds=600)
    assert started.next_poll_at == NOW + timedelta(seconds=5)  # type: ignore[union-attr]
    assert started.secrets["device_code"] == "dev-123"  # type: ignore[union-attr]
    sent = parse_qs(seen[0].content.decode())
    assert seen[0].url == "https://idp.test/device"
    assert sent["client_id"] == ["client-1"] and sent["scope"] == ["read write"]
    assert seen[0].headers["authorization"].startswith("Basic ")


def test_authorization_pending_asks_again_after_the_interval() -> None:
    seen: list[httpx.Request] = []
    engine = engine_answering(json_response({"error": "authorization_pending"}, 400), seen=seen)
    outcome = grant_for(AuthType.DEVICE_CODE).complete(engine, DEVICE, pending("7"), {}, NOW)
    assert outcome == StillPending(NOW + timedelta(seconds=7))
    sent = parse_qs(seen[0].content.decode())
    assert sent["grant_type"] == [GRANT_TYPE] and sent["device_code"] == ["dev-123"]


def test_slow_down_lengthens_the_interval_for_this_and_every_later_poll() -> None:
    engine = engine_answering(json_response({"error": "slow_down"}, 400))
    outcome = grant_for(AuthType.DEVICE_CODE).complete(engine, DEVICE, pending("5"), {}, NOW)
    assert isinstance(outcome, StillPending)
    assert outcome.next_poll_at == NOW + timedelta(seconds=10)
    assert outcome.secrets is not None and outcome.secrets["interval"] == "10"


@pytest.mark.parametrize("error", ["access_denied", "expired_token"])
def test_denied_or_expired_ends_the_authorization(error: str) -> None:
    engine = engine_answering(json_response({"error": error}, 400))
    with pytest.raises(GrantRefused) as refused:
        grant_for(AuthType.DEVICE_CODE).complete(engine, DEVICE, pending(), {}, NOW)
    assert refused.value.error == error


def test_approval_brings_the_tokens() -> None:
    engine = engine_answering(
        json_response({"access_token": "at", "token_type": "Bearer", "refresh_token": "rt"})
    )
    tokens = grant_for(AuthType.DEVICE_CODE).complete(engine, DEVICE, pending(), {}, NOW)
    assert not isinstance(tokens, StillPending)
    assert tokens.access_token == "at" and tokens.refresh_token == "rt"


def test_credentials_are_refused_by_name() -> None:
    _, errors = grant_for(AuthType.DEVICE_CODE).check_input(
        None,  # type: ignore[arg-type]
        GrantInput(username="u", password="p"),
    )
    assert [e.field for e in errors] == ["username", "password"]
