"""Odd but real token responses and failures, on httpx MockTransport (no sockets)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import httpx
import pytest

from authprofiles.oauth.errors import GrantRefused, IdPUnavailable
from authprofiles.oauth.grants import (
    ClientSettings,
    GrantInput,
    OAuthEngine,
    rfc6749_authorization_code,
    rfc6749_client_credentials,
    rfc6749_password,
    rfc6749_refresh,
)
from authprofiles.oauth.transport import Transports

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class FixedClock:
    def now(self) -> datetime:
        return NOW


class MockTransports(Transports):
    def __init__(self, handler: Callable[[httpx.Request], httpx.Response]) -> None:
        super().__init__(timeout=5)
        self.mock = httpx.MockTransport(handler)

    def sync(self, egress_proxy_url: str | None) -> httpx.HTTPTransport:
        return self.mock  # type: ignore[return-value]


SETTINGS = ClientSettings(
    client_id="client-1",
    client_secret="s3cret",
    auth_method="client_secret_basic",
    token_url="https://idp.test/token",
    refresh_url="https://idp.test/token",
    redirect_uri="https://app.test/oauth/callback",
    authorization_url="https://idp.test/authorize",
    revocation_url="https://idp.test/revoke",
    scopes=("read", "write"),
    extra_params={"audience": "api"},
)


def engine_answering(
    *responses: httpx.Response, seen: list[httpx.Request] | None = None
) -> OAuthEngine:
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        response = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(response, Exception):
            raise response
        return response

    return OAuthEngine(
        MockTransports(handler),
        retries=2,
        backoff_seconds=0,
        clock=FixedClock(),
        sleep=lambda _s: None,
    )


def json_response(body: dict, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=body)


def test_expires_in_as_a_string_is_understood() -> None:
    engine = engine_answering(
        json_response({"access_token": "a", "token_type": "bearer", "expires_in": "3600"})
    )
    tokens = rfc6749_client_credentials.request_token(engine, SETTINGS)
    assert tokens.expires_at == NOW + timedelta(seconds=3600)
    assert tokens.token_type == "Bearer"


def test_missing_expires_in_means_unknown_expiry() -> None:
    tokens = rfc6749_client_credentials.request_token(
        engine_answering(json_response({"access_token": "a", "token_type": "Bearer"})), SETTINGS
    )
    assert tokens.expires_at is None
    assert tokens.scopes is None  # RFC 6749 5.1: omitted means "as requested"


@pytest.mark.parametrize("token_type", ["BEARER", "bearer", "Bearer"])
def test_token_type_in_any_case_is_bearer(token_type: str) -> None:
    tokens = rfc6749_client_credentials.request_token(
        engine_answering(
            json_response({"access_token": "a", "token_type": token_type, "expires_in": 60})
        ),
        SETTINGS,
    )
    assert tokens.token_type == "Bearer"


def test_form_encoded_token_response_is_read() -> None:
    body = "access_token=abc&token_type=bearer&scope=repo%2Cgist&expires_in=28800&refresh_token=r1"
    engine = engine_answering(
        httpx.Response(
            200, text=body, headers={"content-type": "application/x-www-form-urlencoded"}
        )
    )
    tokens = rfc6749_client_credentials.request_token(engine, SETTINGS)
    assert (tokens.access_token, tokens.refresh_token) == ("abc", "r1")
    assert tokens.expires_at == NOW + timedelta(seconds=28800)


def test_extra_members_are_kept() -> None:
    tokens = rfc6749_client_credentials.request_token(
        engine_answering(
            json_response(
                {
                    "access_token": "a",
                    "token_type": "Bearer",
                    "instance_url": "https://eu1.salesforce.example",
                    "scope": "read write",
                }
            )
        ),
        SETTINGS,
    )
    assert tokens.extra == {"instance_url": "https://eu1.salesforce.example"}
    assert tokens.scopes == ("read", "write")


@pytest.mark.parametrize(
    "response",
    [
        json_response({"error": "invalid_grant", "error_description": "expired"}, 400),
        httpx.Response(
            400,
            text="error=invalid_grant&error_description=expired",
            headers={"content-type": "application/x-www-form-urlencoded"},
        ),
    ],
    ids=["json", "form"],
)
def test_errors_as_json_or_form_are_refusals(response: httpx.Response) -> None:
    with pytest.raises(GrantRefused) as caught:
        rfc6749_refresh.refresh(engine_answering(response), SETTINGS, "r")
    assert caught.value.error == "invalid_grant"
    assert "expired" in caught.value.detail


def test_a_200_carrying_an_error_is_a_refusal() -> None:
    # GitHub answers errors with 200 and an error member.
    with pytest.raises(GrantRefused):
        rfc6749_client_credentials.request_token(
            engine_answering(json_response({"error": "bad_verification_code"})), SETTINGS
        )


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(500, text="upstream down"),
        httpx.Response(503, json={"error": "temporarily_unavailable"}),
        httpx.Response(200, text="{not json", headers={"content-type": "application/json"}),
        httpx.Response(200, json={"token_type": "Bearer"}),  # no access_token
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("peer closed connection without sending complete message body"),
    ],
    ids=["500", "503", "bad-json", "no-access-token", "timeout", "truncated"],
)
def test_transient_failures_are_retried_then_reported(failure: object) -> None:
    seen: list[httpx.Request] = []
    engine = engine_answering(failure, seen=seen)  # type: ignore[arg-type]
    with pytest.raises(IdPUnavailable):
        rfc6749_refresh.refresh(engine, SETTINGS, "r")
    # A complete answer without an access token is not retried; the rest are, twice.
    malformed = isinstance(failure, httpx.Response) and failure.status_code == 200
    assert len(seen) == (1 if malformed and b"{not" not in failure.content else 3)


def test_a_transient_failure_then_success_returns_the_token() -> None:
    seen: list[httpx.Request] = []
    engine = engine_answering(
        httpx.Response(502),
        json_response({"access_token": "ok", "token_type": "Bearer"}),
        seen=seen,
    )
    assert rfc6749_refresh.refresh(engine, SETTINGS, "r").access_token == "ok"
    assert len(seen) == 2


def test_client_secret_basic_and_post_place_the_credentials() -> None:
    seen: list[httpx.Request] = []
    ok = json_response({"access_token": "a", "token_type": "Bearer"})
    rfc6749_client_credentials.request_token(engine_answering(ok, seen=seen), SETTINGS)
    basic = seen[-1]
    assert basic.headers["authorization"].startswith("Basic ")
    assert "client_secret" not in parse_qs(basic.content.decode())

    post = ClientSettings(**{**SETTINGS.__dict__, "auth_method": "client_secret_post"})
    rfc6749_client_credentials.request_token(engine_answering(ok, seen=seen), post)
    form = parse_qs(seen[-1].content.decode())
    assert form["client_id"] == ["client-1"] and form["client_secret"] == ["s3cret"]
    assert "authorization" not in seen[-1].headers
    assert form["grant_type"] == ["client_credentials"]
    assert form["audience"] == ["api"]  # additional fields ride along
    assert form["scope"] == ["read write"]


def test_refresh_sends_no_scope_and_keeps_the_old_refresh_token_when_none_is_returned() -> None:
    seen: list[httpx.Request] = []
    tokens = rfc6749_refresh.refresh(
        engine_answering(json_response({"access_token": "new", "token_type": "Bearer"}), seen=seen),
        SETTINGS,
        "old-refresh",
    )
    form = parse_qs(seen[-1].content.decode())
    assert form["grant_type"] == ["refresh_token"] and form["refresh_token"] == ["old-refresh"]
    assert "scope" not in form
    # authlib carries the old refresh token over; the store keeps it either way.
    assert tokens.refresh_token in (None, "old-refresh")


def test_authorization_url_has_pkce_state_and_additional_fields() -> None:
    engine = engine_answering(json_response({}))
    url = rfc6749_authorization_code.authorization_url(
        engine, SETTINGS, state="st", code_verifier="v" * 64
    )
    query = parse_qs(httpx.URL(url).query.decode())
    assert query["code_challenge_method"] == ["S256"]
    assert query["state"] == ["st"] and query["audience"] == ["api"]
    assert query["response_type"] == ["code"] and query["client_id"] == ["client-1"]


def test_revocation_posts_the_token_with_its_hint() -> None:
    seen: list[httpx.Request] = []
    engine_answering(httpx.Response(200), seen=seen).revoke(
        SETTINGS, token="t", hint="refresh_token"
    )
    form = parse_qs(seen[-1].content.decode())
    assert form == {"token": ["t"], "token_type_hint": ["refresh_token"]}
    assert seen[-1].url == "https://idp.test/revoke"


#: A client whose id and secret hold every character RFC 6749 Appendix B escapes.
AWKWARD = ClientSettings(
    **{**SETTINGS.__dict__, "client_id": "client id+1%:x", "client_secret": "p@ss:w0rd+/=%&? +%"}
)
#: base64 of "client+id%2B1%25%3Ax:p%40ss%3Aw0rd%2B%2F%3D%25%26%3F+%2B%25".
AWKWARD_BASIC = (
    "Basic Y2xpZW50K2lkJTJCMSUyNSUzQXg6cCU0MHNzJTNBdzByZCUyQiUyRiUzRCUyNSUyNiUzRislMkIlMjU="
)


def test_client_secret_basic_form_encodes_the_credentials_in_every_request() -> None:
    # RFC 6749 section 2.3.1 (and RFC 7009 section 2.1 for revocation, which uses the
    # same client authentication).
    seen: list[httpx.Request] = []
    ok = json_response({"access_token": "a", "token_type": "Bearer", "refresh_token": "r"})
    engine = engine_answering(ok, seen=seen)
    rfc6749_client_credentials.request_token(engine, AWKWARD)
    rfc6749_password.request_token(engine, AWKWARD, GrantInput(username="u", password="p"))
    rfc6749_authorization_code.exchange_code(engine, AWKWARD, code="c", code_verifier="v" * 64)
    rfc6749_refresh.refresh(engine, AWKWARD, "r")
    engine.revoke(AWKWARD, token="t", hint="refresh_token")
    grants = [parse_qs(r.content.decode()).get("grant_type", ["(revocation)"])[0] for r in seen]
    assert grants == [
        "client_credentials",
        "password",
        "authorization_code",
        "refresh_token",
        "(revocation)",
    ]
    assert [r.headers["authorization"] for r in seen] == [AWKWARD_BASIC] * 5
    assert all("client_secret" not in parse_qs(r.content.decode()) for r in seen)


def test_client_secret_basic_sends_a_secret_outside_latin_1() -> None:
    seen: list[httpx.Request] = []
    euro = ClientSettings(**{**SETTINGS.__dict__, "client_secret": "\u00a3\u20ac"})
    rfc6749_client_credentials.request_token(
        engine_answering(json_response({"access_token": "a", "token_type": "Bearer"}), seen=seen),
        euro,
    )
    # base64 of "client-1:%C2%A3%E2%82%AC"
    assert seen[-1].headers["authorization"] == "Basic Y2xpZW50LTE6JUMyJUEzJUUyJTgyJUFD"


def test_a_redirect_from_the_token_endpoint_is_not_followed() -> None:
    seen: list[httpx.Request] = []
    engine = engine_answering(
        httpx.Response(302, headers={"location": "https://elsewhere.test/token"}), seen=seen
    )
    with pytest.raises(GrantRefused) as caught:
        rfc6749_client_credentials.request_token(engine, SETTINGS)
    assert caught.value.status_code == 302
    assert [str(r.url) for r in seen] == ["https://idp.test/token"]
