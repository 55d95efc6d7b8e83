"""The profile test's use case, built from fakes of its ports: a profile reader, a policy,
a clock, an OAuth engine and a recording HTTP client that answer with canned exchanges.
No sockets, no database."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from authprofiles.core.auth_types import AUTH_TYPES, AuthType, TestStage, spec_for
from authprofiles.core.callers import CredentialRequest, Principal, Purpose, Role
from authprofiles.core.connections import TokenSet
from authprofiles.core.errors import Conflict, Forbidden, ValidationFailed
from authprofiles.core.exchanges import (
    Answer,
    Exchange,
    RecordedRequest,
    RecordedResponse,
    Redirect,
)
from authprofiles.core.profiles import Profile
from authprofiles.oauth.errors import GrantRefused
from authprofiles.services.access import RolePolicy
from authprofiles.services.profile_test import (
    ProfileTestRequest,
    ProfileTestService,
    stages_for,
)
from authprofiles.services.profile_test import run as run_module

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
CLIENT_SECRET = "client-secret-2468"
HEADER_SECRET = "header-secret-1357"
ACCESS_TOKEN = "issued-access-token-9999"
TOKEN_URL = "https://idp.test/oauth2/token"
API_URL = "https://api.test/v1/me"
DEVELOPER = Principal(workspace_id="w1", role=Role.DEVELOPER, key_id="k1")


def make_profile(**overrides: Any) -> Profile:
    data: dict[str, Any] = {
        "id": "p1",
        "workspace_id": "w1",
        "created_at": NOW,
        "updated_at": NOW,
        "name": "billing",
        "auth_type": AuthType.CLIENT_CREDENTIALS,
        "identity_provider": "Test IdP",
        "client_id": "client-1",
        "client_secret": CLIENT_SECRET,
        "token_url": TOKEN_URL,
        "token_test_url": API_URL,
        "authorization_fields": [{"type": "header", "key": "X-Api-Key", "value": HEADER_SECRET}],
    }
    data.update(overrides)
    return Profile.model_validate(data)


class FakeProfiles:
    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.reads = 0

    def get_configured(self, principal: Principal, profile_id: str) -> Profile:
        self.reads += 1
        assert profile_id == self.profile.id
        return self.profile


class RecordingPolicy(RolePolicy):
    def __init__(self) -> None:
        self.asked: list[CredentialRequest] = []

    def authorize(self, principal: Principal, request: CredentialRequest) -> None:
        self.asked.append(request)
        super().authorize(principal, request)


class FixedClock:
    def now(self) -> datetime:
        return NOW


class FakeHttp:
    """A recording HTTP client whose answers are canned, by URL."""

    def __init__(self, answers: Mapping[str, RecordedResponse]) -> None:
        self.answers = answers
        self.exchanges: list[Exchange] = []
        self.failures: list[BaseException] = []
        self.event_hooks: dict[str, list[Callable[..., Any]]] = {"request": [], "response": []}

    def send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        egress_proxy_url: str | None = None,
        follow_within_origin: bool = False,
    ) -> Answer:
        response = self.answers[url]
        self.exchanges.append(
            Exchange(
                RecordedRequest(method, url, {k.lower(): v for k, v in (headers or {}).items()}),
                response,
            )
        )
        assert response.status_code is not None
        return Answer(url=url, status_code=response.status_code, headers=response.headers)

    def record_failure(self, error: BaseException) -> None:
        self.failures.append(error)


class FakeEngine:
    """Answers every token request with a canned exchange, recorded on the fake client
    as the engine's event hooks would."""

    def __init__(self, http: FakeHttp, answer: RecordedResponse, refusal: GrantRefused | None):
        self.http, self.answer, self.refusal = http, answer, refusal
        self.token_requests: list[dict[str, Any]] = []

    def fetch_token(self, settings: Any, what: str, **kwargs: Any) -> TokenSet:
        self.token_requests.append({"what": what, **kwargs})
        basic = base64.b64encode(f"{settings.client_id}:{CLIENT_SECRET}".encode()).decode()
        self.http.exchanges.append(
            Exchange(
                RecordedRequest(
                    "POST",
                    settings.token_url,
                    {"authorization": f"Basic {basic}"},
                    f"grant_type={kwargs['grant_type']}",
                ),
                self.answer,
            )
        )
        if self.refusal is not None:
            raise self.refusal
        document = json.loads(self.answer.body)
        return TokenSet(access_token=document["access_token"], token_type="Bearer")


def json_response(status: int, document: Any, **headers: str) -> RecordedResponse:
    return RecordedResponse(
        status, {"content-type": "application/json", **headers}, json.dumps(document)
    )


TOKEN_ISSUED = json_response(200, {"access_token": ACCESS_TOKEN, "token_type": "Bearer"})


def build(
    profile: Profile,
    *,
    api: RecordedResponse | None = None,
    token: RecordedResponse = TOKEN_ISSUED,
    refusal: GrantRefused | None = None,
) -> tuple[ProfileTestService, FakeHttp, RecordingPolicy, FakeProfiles, list[FakeEngine]]:
    http = FakeHttp({API_URL: api} if api else {})
    engines: list[FakeEngine] = []

    def engine_for(hooks: Mapping[str, list[Callable[..., Any]]]) -> Any:
        assert hooks is http.event_hooks  # the engine's requests are recorded too
        engines.append(FakeEngine(http, token, refusal))
        return engines[-1]

    policy, profiles = RecordingPolicy(), FakeProfiles(profile)
    service = ProfileTestService(
        profiles=profiles,
        policy=policy,
        clock=FixedClock(),
        engine_for=engine_for,
        recording_client=lambda: http,
        callback_url="https://authprofiles.test/callback",
    )
    return service, http, policy, profiles, engines


def test_a_passing_test_asks_the_policy_once_and_redacts_every_secret() -> None:
    api = json_response(200, {"seen_key": HEADER_SECRET, "seen_token": ACCESS_TOKEN})
    service, http, policy, _, _ = build(make_profile(), api=api)

    result = service.run(DEVELOPER, "p1", ProfileTestRequest())

    assert policy.asked == [
        CredentialRequest(
            connection_id="", connection_owner="shared", purpose=Purpose.TEST, profile_id="p1"
        )
    ]
    assert result.ok is True
    assert result.stage == "token_test"
    assert [s.stage for s in result.steps] == ["token", "token_test"]
    assert result.detail == "the token test URL (api.test) accepted the token: HTTP 200"
    token_step = result.steps[0]
    assert token_step.request is not None and token_step.response is not None
    assert token_step.request.headers == {"authorization": "Basic [redacted]"}
    assert json.loads(token_step.response.body)["access_token"] == "[redacted]"
    assert result.request is not None
    assert result.request.headers["authorization"] == "Bearer [redacted]"
    assert result.request.headers["x-api-key"] == "[redacted]"
    assert result.response is not None
    assert json.loads(result.response.body) == {
        "seen_key": "[redacted]",
        "seen_token": "[redacted]",
    }
    assert result.next is None
    # What was really sent carried the real values.
    assert http.exchanges[-1].request.headers["authorization"] == f"Bearer {ACCESS_TOKEN}"
    shown = result.model_dump_json()
    for secret in (CLIENT_SECRET, HEADER_SECRET, ACCESS_TOKEN):
        assert secret not in shown


def test_auth_test_failed_shows_the_headers_and_response_redacted() -> None:
    api = json_response(
        401,
        {"error": "invalid_token", "got": f"token {ACCESS_TOKEN}", "key": HEADER_SECRET},
        **{"www-authenticate": 'Bearer error="invalid_token"'},
    )
    service, _, _, _, _ = build(make_profile(), api=api)

    result = service.run(DEVELOPER, "p1", ProfileTestRequest())

    assert result.ok is False
    assert result.stage == "token_test"
    assert result.status_code == 401
    assert result.detail == (
        "the token test URL (api.test) refused the token (the profile's auth error status): "
        "HTTP 401"
    )
    assert result.steps[0].ok is True
    assert result.request is not None and result.response is not None
    assert result.request.headers["authorization"] == "Bearer [redacted]"
    assert result.request.headers["x-api-key"] == "[redacted]"
    assert result.response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert json.loads(result.response.body) == {
        "error": "invalid_token",
        "got": "token [redacted]",
        "key": "[redacted]",
    }
    shown = result.model_dump_json()
    for secret in (CLIENT_SECRET, HEADER_SECRET, ACCESS_TOKEN):
        assert secret not in shown


def test_a_refused_client_fails_at_the_token_stage_and_calls_nothing_else() -> None:
    refused = json_response(401, {"error": "invalid_client"})
    service, http, _, _, _ = build(
        make_profile(),
        token=refused,
        refusal=GrantRefused("invalid_client", None, 401),
    )

    result = service.run(DEVELOPER, "p1", ProfileTestRequest())

    assert result.ok is False
    assert result.stage == "token"
    assert result.status_code == 401
    assert result.detail == (
        "the token URL (idp.test) rejected the client: check client_id, client_secret and "
        "client_auth_method (invalid_client)"
    )
    assert [e.request.url for e in http.exchanges] == [TOKEN_URL]
    assert len(http.failures) == 1  # the recorder is told why, in case no answer came


def test_a_token_endpoint_redirect_is_named_and_not_followed() -> None:
    moved = RecordedResponse(307, {"location": "https://elsewhere.test/token"})
    service, _, _, _, _ = build(
        make_profile(), token=moved, refusal=GrantRefused("http_307", None, 307)
    )

    result = service.run(DEVELOPER, "p1", ProfileTestRequest())

    assert result.stage == "token"
    assert [r.model_dump() for r in result.redirects] == [
        {
            "url": TOKEN_URL,
            "status_code": 307,
            "location": "https://elsewhere.test/token",
            "followed": False,
        }
    ]
    assert "a redirect to https://elsewhere.test/token" in result.detail


def test_the_policy_says_no_before_the_profile_is_read() -> None:
    service, http, _, profiles, engines = build(make_profile())
    viewer = Principal(workspace_id="w1", role=Role.VIEWER)
    with pytest.raises(Forbidden):
        service.run(viewer, "p1", ProfileTestRequest())
    assert profiles.reads == 0
    assert engines == [] and http.exchanges == []


def test_the_password_grant_needs_a_user_before_anything_is_sent() -> None:
    profile = make_profile(auth_type=AuthType.PASSWORD, authorization_mode="user")
    service, http, _, _, engines = build(profile)
    with pytest.raises(ValidationFailed) as failed:
        service.run(DEVELOPER, "p1", ProfileTestRequest())
    assert {e.field for e in failed.value.errors} == {"username", "password"}
    assert engines == [] and http.exchanges == []


def test_the_password_grant_sends_the_users_password_and_hides_it() -> None:
    profile = make_profile(auth_type=AuthType.PASSWORD, authorization_mode="user")
    api = json_response(200, {"ok": True})
    service, _, _, _, engines = build(profile, api=api)

    result = service.run(
        DEVELOPER, "p1", ProfileTestRequest(username="alice", password="alices-password")
    )

    assert result.ok is True
    [sent] = engines[0].token_requests
    assert sent["grant_type"] == "password"
    assert sent["params"]["username"] == "alice"
    assert sent["params"]["password"] == "alices-password"
    assert "alices-password" not in result.model_dump_json()


# -- the stages come from the registry ---------------------------------------------------


def test_each_auth_type_runs_the_stages_it_registers() -> None:
    for spec in AUTH_TYPES:
        profile = make_profile(auth_type=spec.auth_type, authorization_mode="user")
        assert stages_for(profile) == spec.test_stages
    assert spec_for(AuthType.AUTHORIZATION_CODE).test_stages == (TestStage.AUTHORIZE,)
    assert spec_for(AuthType.CLIENT_CREDENTIALS).test_stages == (
        TestStage.TOKEN,
        TestStage.TOKEN_TEST,
    )


def test_every_test_stage_has_a_runner() -> None:
    service, *_ = build(make_profile())
    assert set(service._stages) == set(TestStage)


def test_a_type_registered_without_the_token_test_stage_does_not_call_the_api(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registered = spec_for(AuthType.CLIENT_CREDENTIALS)
    token_only = dataclasses.replace(registered, test_stages=(TestStage.TOKEN,))
    monkeypatch.setattr(run_module, "spec_for", lambda auth_type: token_only)
    service, http, _, _, _ = build(make_profile(), api=json_response(200, {}))

    result = service.run(DEVELOPER, "p1", ProfileTestRequest())

    assert [s.stage for s in result.steps] == ["token"]
    assert [e.request.url for e in http.exchanges] == [TOKEN_URL]


def test_without_a_token_test_url_the_token_stage_is_the_whole_test() -> None:
    service, http, _, _, _ = build(make_profile(token_test_url=None))
    result = service.run(DEVELOPER, "p1", ProfileTestRequest())
    assert result.ok is True
    assert result.stage == "token"
    assert len(http.exchanges) == 1


def test_a_redirect_to_another_origin_fails_the_token_test_and_is_named() -> None:
    service, http, _, _, _ = build(make_profile())

    def redirected(method: str, url: str, **kwargs: Any) -> Answer:
        http.exchanges.append(
            Exchange(
                RecordedRequest(method, url, {}),
                RecordedResponse(302, {"location": "https://evil.test/x"}),
            )
        )
        return Answer(
            url=url,
            status_code=302,
            headers={"location": "https://evil.test/x"},
            redirects=(Redirect(url, 302, "https://evil.test/x", followed=False),),
        )

    http.send = redirected  # type: ignore[method-assign]
    result = service.run(DEVELOPER, "p1", ProfileTestRequest())
    assert result.ok is False
    assert result.stage == "token_test"
    assert "a redirect to another origin (https://evil.test/x), not followed" in result.detail
    assert [r.followed for r in result.redirects] == [False]


def test_a_type_registered_with_no_test_stage_is_refused_before_anything_is_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registered = spec_for(AuthType.CLIENT_CREDENTIALS)
    untestable = dataclasses.replace(registered, test_stages=())
    monkeypatch.setattr(run_module, "spec_for", lambda auth_type: untestable)
    service, http, _, _, engines = build(make_profile())
    with pytest.raises(Conflict, match="registers no test stage"):
        service.run(DEVELOPER, "p1", ProfileTestRequest())
    assert engines == [] and http.exchanges == []
