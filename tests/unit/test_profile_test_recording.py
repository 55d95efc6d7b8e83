"""The recording HTTP client (httpx event hooks) and the profile test run on it, with the
real OAuth engine, over httpx's MockTransport: no sockets."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from authprofiles.core.auth_types import AuthType
from authprofiles.core.callers import Principal, Role
from authprofiles.core.exchanges import MAX_BODY_CHARS, ExchangeFailed
from authprofiles.core.profiles import Profile
from authprofiles.oauth.errors import IdPUnavailable
from authprofiles.oauth.grants import ClientSettings, OAuthEngine
from authprofiles.oauth.grants.rfc6749_client_credentials import request_token
from authprofiles.oauth.recording import RecordingHttpClient
from authprofiles.services.access import RolePolicy
from authprofiles.services.profile_test import ProfileTestRequest, ProfileTestService

Handler = Callable[[httpx.Request], httpx.Response]
NOW = datetime(2030, 1, 2, tzinfo=UTC)
SECRET = "client-secret-8642"
CALLBACK = "https://authprofiles.test/callback"


class SharedPools:
    """Stands in for ``Transports``: one shared transport, which must never be closed."""

    def __init__(self, handler: Handler) -> None:
        self.transport = ClosingMock(handler)
        self.timeout = httpx.Timeout(5.0)
        self.routes: list[str | None] = []

    def sync(self, egress_proxy_url: str | None) -> httpx.BaseTransport:
        self.routes.append(egress_proxy_url)
        return self.transport


class ClosingMock(httpx.MockTransport):
    closed = False

    def close(self) -> None:
        self.closed = True


def settings(**overrides: Any) -> ClientSettings:
    values: dict[str, Any] = {
        "client_id": "client-1",
        "client_secret": SECRET,
        "auth_method": "client_secret_basic",
        "token_url": "https://idp.test/token",
        "refresh_url": "https://idp.test/token",
        "redirect_uri": CALLBACK,
    }
    values.update(overrides)
    return ClientSettings(**values)


def engine_on(pools: SharedPools, recorder: RecordingHttpClient) -> OAuthEngine:
    return OAuthEngine(pools, retries=0, event_hooks=recorder.event_hooks)  # type: ignore[arg-type]


def test_the_engines_token_request_is_recorded_with_its_credentials_and_answer() -> None:
    def idp(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"access_token": "at-1", "token_type": "Bearer"})

    pools = SharedPools(idp)
    recorder = RecordingHttpClient(pools)  # type: ignore[arg-type]
    tokens = request_token(engine_on(pools, recorder), settings())

    assert tokens.access_token == "at-1"  # the caller still gets the body the hook read
    [exchange] = recorder.exchanges
    assert exchange.request.method == "POST"
    assert exchange.request.url == "https://idp.test/token"
    assert exchange.request.headers["authorization"].startswith("Basic ")
    assert exchange.request.body == "grant_type=client_credentials"
    assert exchange.response is not None
    assert exchange.response.status_code == 200
    assert json.loads(exchange.response.body)["access_token"] == "at-1"
    assert pools.transport.closed is False


def test_a_connection_failure_under_the_engine_is_recorded_when_told() -> None:
    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    pools = SharedPools(unreachable)
    recorder = RecordingHttpClient(pools)  # type: ignore[arg-type]
    with pytest.raises(IdPUnavailable) as failed:
        request_token(engine_on(pools, recorder), settings())
    [exchange] = recorder.exchanges
    assert exchange.response is None
    recorder.record_failure(failed.value)
    assert exchange.response is not None
    assert exchange.response.status_code is None
    assert exchange.response.error == "ConnectError: Connection refused"


def test_send_records_and_reports_a_timeout() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    recorder = RecordingHttpClient(SharedPools(slow))  # type: ignore[arg-type]
    with pytest.raises(ExchangeFailed) as failed:
        recorder.send("GET", "https://api.test/me", headers={"X-Key": "v"})
    assert failed.value.timeout is True
    assert failed.value.error_type == "ReadTimeout"
    [exchange] = recorder.exchanges
    assert exchange.request.headers["x-key"] == "v"
    assert exchange.response is not None and exchange.response.error == "ReadTimeout: timed out"


def test_send_follows_within_the_origin_only_when_asked() -> None:
    def api(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/me":
            return httpx.Response(301, headers={"location": "/me/"})
        return httpx.Response(200, json={"ok": True})

    pools = SharedPools(api)
    recorder = RecordingHttpClient(pools)  # type: ignore[arg-type]
    answer = recorder.send("GET", "https://api.test/me", follow_within_origin=True)
    assert answer.status_code == 200
    assert answer.url == "https://api.test/me/"
    assert [(r.location, r.followed) for r in answer.redirects] == [("https://api.test/me/", True)]
    assert [e.request.url for e in recorder.exchanges] == [
        "https://api.test/me",
        "https://api.test/me/",
    ]

    answer = recorder.send("GET", "https://api.test/me", egress_proxy_url="http://egress.test")
    assert answer.status_code == 301
    assert answer.location == "https://api.test/me/"
    assert answer.redirects == ()
    assert pools.routes[-1] == "http://egress.test"
    assert pools.transport.closed is False


def test_a_large_body_is_cut_and_a_binary_one_is_described() -> None:
    def api(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/big":
            return httpx.Response(200, text="x" * (MAX_BODY_CHARS + 5))
        return httpx.Response(200, content=b"\x89PNG", headers={"content-type": "image/png"})

    recorder = RecordingHttpClient(SharedPools(api))  # type: ignore[arg-type]
    recorder.send("GET", "https://api.test/big")
    recorder.send("GET", "https://api.test/logo")
    big, logo = (e.response for e in recorder.exchanges)
    assert big is not None and logo is not None
    assert big.body.endswith("\n<cut: 5 more characters>")
    assert logo.body == "<4 bytes of image/png>"


# -- a whole run on the real engine and recorder -------------------------------------------


def make_profile(**overrides: Any) -> Profile:
    data: dict[str, Any] = {
        "id": "p1",
        "workspace_id": "w1",
        "created_at": NOW,
        "updated_at": NOW,
        "name": "crm",
        "auth_type": AuthType.AUTHORIZATION_CODE,
        "identity_provider": "Test IdP",
        "client_id": "client-1",
        "client_secret": SECRET,
        "authorization_url": "https://idp.test/authorize",
        "tenancy": False,
        "token_url": "https://idp.test/token",
    }
    data.update(overrides)
    return Profile.model_validate(data)


class OneProfile:
    def __init__(self, profile: Profile) -> None:
        self.profile = profile

    def get_configured(self, principal: Principal, profile_id: str) -> Profile:
        return self.profile


class FixedClock:
    def now(self) -> datetime:
        return NOW


def service_on(handler: Handler, profile: Profile) -> ProfileTestService:
    pools = SharedPools(handler)

    def engine_for(hooks: Mapping[str, list[Callable[..., Any]]]) -> OAuthEngine:
        return OAuthEngine(pools, retries=0, event_hooks=hooks)  # type: ignore[arg-type]

    return ProfileTestService(
        profiles=OneProfile(profile),
        policy=RolePolicy(),
        clock=FixedClock(),
        engine_for=engine_for,
        recording_client=lambda: RecordingHttpClient(pools),  # type: ignore[arg-type]
        callback_url=CALLBACK,
    )


DEVELOPER = Principal(workspace_id="w1", role=Role.DEVELOPER)


def test_the_authorize_stage_probes_the_page_then_the_client_with_a_made_up_code() -> None:
    seen: list[httpx.Request] = []

    def idp(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/authorize":
            return httpx.Response(302, headers={"location": "https://idp.test/login?next=1"})
        return httpx.Response(400, json={"error": "invalid_grant"})

    result = service_on(idp, make_profile()).run(DEVELOPER, "p1", ProfileTestRequest())

    assert result.ok is True, result
    assert result.next == "authorize"
    assert [s.stage for s in result.steps] == ["authorization_url", "client_authentication"]
    assert result.steps[0].detail == (
        "the authorization URL (idp.test) answered HTTP 302, sending the browser on to "
        "idp.test/login"
    )
    authorize, token = seen
    query = parse_qs(urlsplit(str(authorize.url)).query)
    assert query["redirect_uri"] == [CALLBACK]
    assert query["code_challenge_method"] == ["S256"]
    form = parse_qs(token.content.decode())
    assert form["code"] == ["authprofiles-test-invalid-code"]
    verifier = form["code_verifier"][0]
    assert result.request is not None and result.request.body is not None
    assert verifier not in result.model_dump_json()
    assert result.request.headers["authorization"] == "Basic [redacted]"


def test_an_error_sent_back_to_the_redirect_uri_fails_the_authorize_stage() -> None:
    def idp(request: httpx.Request) -> httpx.Response:
        location = f"{CALLBACK}?error=invalid_scope&error_description=no+such+scope"
        return httpx.Response(302, headers={"location": location})

    result = service_on(idp, make_profile()).run(DEVELOPER, "p1", ProfileTestRequest())
    assert result.ok is False
    assert result.stage == "authorization_url"
    assert result.detail == (
        "the identity provider refused the authorization request (invalid_scope: no such scope)"
    )
    assert result.next is None


def test_an_unreachable_token_endpoint_shows_the_request_and_why_no_answer_came() -> None:
    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    profile = make_profile(auth_type=AuthType.CLIENT_CREDENTIALS, authorization_url=None)
    result = service_on(unreachable, profile).run(DEVELOPER, "p1", ProfileTestRequest())
    assert result.ok is False
    assert result.stage == "token"
    assert result.status_code is None
    assert result.detail == (
        "could not reach the token URL (idp.test): ConnectError: Connection refused"
    )
    assert result.response is not None
    assert result.response.error == "ConnectError: Connection refused"
    assert result.request is not None
    assert result.request.headers["authorization"] == "Basic [redacted]"
    assert SECRET not in result.model_dump_json()
