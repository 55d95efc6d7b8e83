"""The proxy's planning, built from fakes of its ports: no sockets, no database.

The fake token issuer keeps the issuer's contract (it asks the policy before it reads a
token); the fake forwarder records every planned request and answers from a script.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest

from authprofiles.core.callers import CredentialRequest, Principal, Purpose, Role
from authprofiles.core.connections import Connection, ConnectionStatus, DerivedOnce, TokenSet
from authprofiles.core.errors import Forbidden, UpstreamError, UpstreamTimeout, ValidationFailed
from authprofiles.core.injection import CallerPath, Injection, PathEscape, build_injection
from authprofiles.core.ports import ForwardedResponse, OutboundRequest
from authprofiles.core.profiles import AuthorizationField, AuthType, FieldLocation, Profile
from authprofiles.services.oauth_settings import field_values
from authprofiles.services.proxy import (
    BodyTooLarge,
    IncomingRequest,
    ProxyService,
    UpstreamResponse,
)
from authprofiles.services.proxy.planning import Credentials

T = TypeVar("T")
NOW = datetime(2030, 1, 1, tzinfo=UTC)
CALLER = Principal(workspace_id="w1", role=Role.DEVELOPER, name="agent")


# -- fakes of the ports -----------------------------------------------------------------


def _profile(**changes: Any) -> Profile:
    values: dict[str, Any] = {
        "name": "api",
        "auth_type": AuthType.CLIENT_CREDENTIALS,
        "api_base_url": "https://{tenant}.api.example/v1/{{region}}",
        "id": "p1",
        "workspace_id": "w1",
        "created_at": NOW,
        "updated_at": NOW,
    }
    return Profile(**{**values, **changes})


def _connection(version: int = 1) -> Connection:
    return Connection(
        id="c1",
        workspace_id="w1",
        profile_id="p1",
        owner="shared",
        tenant="acme",
        fields={"region": "eu"},
        status=ConnectionStatus.ACTIVE,
        tokens=None,
        username=None,
        password=None,
        last_error=None,
        last_error_at=None,
        refreshed_at=None,
        version=version,
        created_at=NOW,
        updated_at=NOW,
    )


@dataclass(frozen=True)
class Issued:
    connection: Connection
    profile: Profile
    tokens: TokenSet
    derived: DerivedOnce = field(default_factory=DerivedOnce, compare=False)

    def injection(self) -> Injection:
        return build_injection(
            access_token=self.tokens.access_token,
            token_type=self.tokens.token_type,
            authorization_fields=self.profile.authorization_fields,
            field_values=field_values(self.profile, self.connection.fields),
        )


class Policy:
    """Records what it is asked; says no when told to."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.asked: list[CredentialRequest] = []

    def authorize(self, principal: Principal, request: CredentialRequest) -> None:
        self.asked.append(request)
        if self.refuse:
            raise Forbidden("not this one")


class Tokens:
    """The token issuer: ``token-1``, then ``token-2`` after a forced refresh, and so on."""

    def __init__(self, policy: Policy, profile: Profile) -> None:
        self.policy = policy
        self.profile = profile
        self.version = 1
        self.reads = 0
        self.refreshes = 0
        self.recent: Issued | None = None
        self.reuse = False

    def current(self) -> Issued:
        token = TokenSet(access_token=f"token-{self.version}", token_type="Bearer")
        return Issued(_connection(self.version), self.profile, token)

    def get_token(
        self,
        principal: Principal,
        connection_id: str,
        *,
        purpose: Purpose = Purpose.READ_TOKEN,
        method: str | None = None,
        host: str | None = None,
        path: str | None = None,
    ) -> Issued:
        self.policy.authorize(
            principal,
            CredentialRequest(connection_id, "shared", purpose, method, host, path),
        )
        self.reads += 1
        self.recent = self.current()
        return self.recent

    def reusable(self, principal: Principal, connection_id: str) -> Issued | None:
        return self.recent if self.reuse else None

    def last_issued(self, connection_id: str) -> Issued | None:
        return self.recent

    def force_refresh(self, principal: Principal, connection_id: str, seen_version: int) -> Issued:
        self.refreshes += 1
        if self.version == seen_version:
            self.version += 1
        self.recent = self.current()
        return self.recent

    def forget(self, connection_id: str) -> None:
        self.recent = None

    async def reuse_or_read(
        self,
        connection_id: str,
        from_memory: Callable[[], T | None],
        read: Callable[[], Awaitable[T]],
    ) -> T:
        found = from_memory()
        return found if found is not None else await read()


class Connections:
    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.reads = 0

    def read(self, workspace_id: str | None, connection_id: str) -> tuple[Connection, Profile]:
        self.reads += 1
        return _connection(), self.profile


@dataclass
class Answer:
    status: int
    raw_headers: Sequence[tuple[bytes, bytes]] = ()
    body: bytes = b""
    released: bool = False

    async def read(self) -> bytes:
        self.released = True
        return self.body

    async def iter_raw(self) -> AsyncIterator[bytes]:
        yield self.body

    async def release(self) -> None:
        self.released = True


class Forwarder:
    """Records each planned request (its body read whole) and answers the next status."""

    def __init__(self, *answers: Answer | Exception) -> None:
        self.answers = list(answers)
        self.sent: list[OutboundRequest] = []
        self.bodies: list[bytes | None] = []
        self.given: list[Answer] = []

    async def send(self, request: OutboundRequest) -> ForwardedResponse:
        self.sent.append(request)
        body = request.body
        if body is None or isinstance(body, bytes):
            self.bodies.append(body)
        else:
            self.bodies.append(b"".join([chunk async for chunk in body]))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        self.given.append(answer)
        return answer


@dataclass
class Proxy:
    service: ProxyService[Issued]
    tokens: Tokens
    connections: Connections
    policy: Policy
    forwarder: Forwarder


def _proxy(
    *answers: Answer | Exception,
    profile: Profile | None = None,
    refuse: bool = False,
    **limits: int,
) -> Proxy:
    profile = profile or _profile()
    policy = Policy(refuse)
    tokens = Tokens(policy, profile)
    connections = Connections(profile)
    forwarder = Forwarder(*(answers or (Answer(200),)))
    service = ProxyService(
        tokens=tokens, connections=connections, policy=policy, forwarder=forwarder, **limits
    )
    return Proxy(service, tokens, connections, policy, forwarder)


async def _chunks(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def _incoming(
    method: str = "GET",
    path: str = "items/42",
    query: str = "",
    headers: Sequence[tuple[str, str]] = (),
    body: Sequence[bytes] = (),
) -> IncomingRequest:
    return IncomingRequest(method, path, query, list(headers), _chunks(*body))


def _forward(proxy: Proxy, incoming: IncomingRequest) -> UpstreamResponse:
    return asyncio.run(proxy.service.forward(CALLER, "c1", incoming))


def _headers(request: OutboundRequest) -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers}


# -- where the call goes ----------------------------------------------------------------


def test_the_call_goes_to_the_rendered_api_base_url_with_the_token_in_its_header() -> None:
    proxy = _proxy()
    response = _forward(
        proxy,
        _incoming(
            query="a=1&b=x%20y",
            headers=[
                ("Authorization", "Bearer the-callers-api-key"),
                ("Connection", "keep-alive, X-Hop"),
                ("X-Hop", "dropped"),
                ("Keep-Alive", "timeout=5"),
                ("Host", "authprofiles.local"),
                ("Accept", "application/json"),
            ],
        ),
    )
    assert response.status_code == 200
    (sent,) = proxy.forwarder.sent
    assert sent.method == "GET"
    assert sent.url == "https://acme.api.example/v1/eu/items/42?a=1&b=x%20y"
    assert sent.host == "acme.api.example"
    # The caller's API key, hop-by-hop fields and those its Connection names stay here.
    assert _headers(sent) == {"accept": "application/json", "authorization": "Bearer token-1"}


def test_the_policy_is_asked_once_about_the_method_host_and_path_the_call_reaches() -> None:
    proxy = _proxy()
    _forward(proxy, _incoming(method="delete", path="items/42"))
    assert proxy.policy.asked == [
        CredentialRequest(
            connection_id="c1",
            connection_owner="shared",
            purpose=Purpose.PROXY,
            method="DELETE",
            host="acme.api.example",
            path="/v1/eu/items/42",
        )
    ]


def test_a_token_reused_from_memory_is_asked_about_too_and_read_no_more() -> None:
    proxy = _proxy(Answer(200), Answer(200))
    _forward(proxy, _incoming())
    proxy.tokens.reuse = True
    _forward(proxy, _incoming(method="POST", path="other"))
    assert proxy.tokens.reads == 1
    assert [(a.method, a.path) for a in proxy.policy.asked] == [
        ("GET", "/v1/eu/items/42"),
        ("POST", "/v1/eu/other"),
    ]
    assert proxy.forwarder.sent[1].url == "https://acme.api.example/v1/eu/other"


def test_query_path_and_payload_fields_are_placed_where_the_profile_says() -> None:
    profile = _profile(
        api_base_url="https://api.example/v2",
        authorization_fields=(
            AuthorizationField(type=FieldLocation.QUERY, key="api_key", value="{{access_token}}"),
            AuthorizationField(type=FieldLocation.PATH, key="account", value="acct-7"),
            AuthorizationField(type=FieldLocation.PAYLOAD, key="client", value="{{region}}"),
        ),
    )
    proxy = _proxy(profile=profile)
    _forward(
        proxy,
        _incoming(
            method="POST",
            path="orders",
            query="api_key=the-callers-own&page=2",
            headers=[("Content-Type", "application/json"), ("Content-Length", "12")],
            body=[b'{"qty": ', b"3}"],
        ),
    )
    (sent,) = proxy.forwarder.sent
    # An injected query parameter replaces the caller's one of the same name.
    assert sent.url == "https://api.example/v2/acct-7/orders?page=2&api_key=token-1"
    assert proxy.forwarder.bodies == [b'{"qty": 3, "client": "eu"}']
    assert _headers(sent)["content-type"] == "application/json"
    assert "content-length" not in _headers(sent)  # the body changed: the client counts it


def test_an_edited_profile_is_asked_about_again_before_its_token_is_used() -> None:
    proxy = _proxy()
    _forward(proxy, _incoming())
    # The profile moved to another host since the last call: the hint is stale.
    proxy.tokens.profile = _profile(api_base_url="https://new.example/api")
    proxy.forwarder.answers.append(Answer(200))
    _forward(proxy, _incoming())
    assert [a.host for a in proxy.policy.asked] == [
        "acme.api.example",
        "acme.api.example",
        "new.example",
    ]
    assert proxy.forwarder.sent[-1].url == "https://new.example/api/items/42"


def test_a_base_url_the_connection_cannot_fill_names_the_field_and_sends_nothing() -> None:
    proxy = _proxy(profile=_profile(api_base_url="https://api.example/{{zone}}"))
    with pytest.raises(ValidationFailed) as raised:
        _forward(proxy, _incoming())
    assert [e.field for e in raised.value.errors] == ["api_base_url"]
    assert "zone" in raised.value.errors[0].message
    assert proxy.forwarder.sent == []


# -- refusals before any token is used --------------------------------------------------


def test_a_refusing_policy_stops_the_call_before_any_token_is_read() -> None:
    proxy = _proxy(refuse=True)
    with pytest.raises(Forbidden):
        _forward(proxy, _incoming())
    assert len(proxy.policy.asked) == 1
    assert proxy.tokens.reads == 0
    assert proxy.forwarder.sent == []


def test_a_refusing_policy_stops_a_reused_token_before_it_is_applied() -> None:
    proxy = _proxy()
    _forward(proxy, _incoming())
    proxy.tokens.reuse = True
    proxy.policy.refuse = True
    reused = proxy.tokens.recent
    assert reused is not None
    object.__setattr__(reused, "derived", DerivedOnce())  # nothing worked out yet
    with pytest.raises(Forbidden):
        _forward(proxy, _incoming())
    assert Credentials not in reused.derived  # the token was not placed anywhere
    assert len(proxy.forwarder.sent) == 1


def test_a_path_that_escapes_is_refused_before_the_policy_or_the_token() -> None:
    proxy = _proxy()
    with pytest.raises(PathEscape):
        _forward(proxy, _incoming(path="../admin"))
    assert proxy.policy.asked == []
    assert proxy.tokens.reads == 0
    assert proxy.connections.reads == 0


def test_payload_fields_need_a_body_within_the_limit() -> None:
    profile = _profile(
        authorization_fields=(AuthorizationField(type=FieldLocation.PAYLOAD, key="k", value="v"),)
    )
    proxy = _proxy(profile=profile, payload_limit=8)
    with pytest.raises(BodyTooLarge):
        _forward(
            proxy,
            _incoming(
                method="POST",
                headers=[("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")],
                body=[b'{"a": ', b'"123456789"}'],
            ),
        )
    assert proxy.forwarder.sent == []


# -- refresh once on the auth error status ----------------------------------------------


def test_a_refused_token_is_refreshed_once_and_the_call_sent_again_once() -> None:
    proxy = _proxy(Answer(401), Answer(200))
    response = _forward(
        proxy,
        _incoming(method="PUT", headers=[("Content-Length", "4")], body=[b"da", b"ta"]),
    )
    assert response.status_code == 200
    assert response.retried
    assert proxy.tokens.refreshes == 1
    first, second = proxy.forwarder.sent
    assert _headers(first)["authorization"] == "Bearer token-1"
    assert _headers(second)["authorization"] == "Bearer token-2"
    assert proxy.forwarder.bodies == [b"data", b"data"]  # the same body, replayed
    assert proxy.forwarder.given[0].released  # the refused answer gave its connection back


def test_a_fresh_token_refused_again_is_answered_without_another_refresh() -> None:
    proxy = _proxy(Answer(401), Answer(401))
    response = _forward(proxy, _incoming())
    assert response.status_code == 401
    assert proxy.tokens.refreshes == 1
    assert len(proxy.forwarder.sent) == 2


def test_only_the_profiles_auth_error_status_causes_a_refresh() -> None:
    proxy = _proxy(Answer(401), profile=_profile(auth_error_status_code=403))
    assert _forward(proxy, _incoming()).status_code == 401
    assert proxy.tokens.refreshes == 0

    proxy = _proxy(Answer(403), Answer(204), profile=_profile(auth_error_status_code=403))
    assert _forward(proxy, _incoming()).status_code == 204
    assert proxy.tokens.refreshes == 1


def test_a_body_that_streamed_away_is_not_sent_again() -> None:
    proxy = _proxy(Answer(401), replay_limit=4)
    response = _forward(
        proxy,
        _incoming(method="POST", headers=[("Content-Length", "10")], body=[b"0123456789"]),
    )
    # The token is refreshed (the caller's own retry gets it), the call is not resent.
    assert response.status_code == 401
    assert not response.retried
    assert proxy.tokens.refreshes == 1
    assert len(proxy.forwarder.sent) == 1
    assert _headers(proxy.forwarder.sent[0])["content-length"] == "10"


# -- errors and answers -----------------------------------------------------------------


def test_an_upstream_error_carries_no_injected_value() -> None:
    profile = _profile(
        api_base_url="https://api.example/v1",
        authorization_fields=(
            AuthorizationField(type=FieldLocation.QUERY, key="key", value="query-secret/42"),
            AuthorizationField(type=FieldLocation.HEADER, key="X-Api-Key", value="hdr-secret"),
        ),
    )
    url = "https://api.example/v1/items/42?key=query-secret%2F42"
    # An HTTP library may quote the URL, or a value raw or in another encoding.
    leak = f"could not connect to api.example: {url} hdr-secret token-1 query-secret/42"
    proxy = _proxy(UpstreamError(leak, "api.example"), profile=profile)
    with pytest.raises(UpstreamError) as raised:
        _forward(proxy, _incoming())
    error = raised.value
    assert type(error) is UpstreamError
    assert error.host == "api.example"
    assert error.detail.startswith("could not connect to api.example: ")
    for secret in ("query-secret", "hdr-secret", "token-1", url):
        assert secret not in error.detail


def test_an_upstream_timeout_stays_a_timeout() -> None:
    proxy = _proxy(UpstreamTimeout("acme.api.example did not answer in time", "acme.api.example"))
    with pytest.raises(UpstreamTimeout) as raised:
        _forward(proxy, _incoming())
    assert raised.value.host == "acme.api.example"


def test_hop_by_hop_fields_of_the_answer_are_not_relayed() -> None:
    answer = Answer(
        200,
        raw_headers=[
            (b"Content-Type", b"text/plain"),
            (b"Connection", b"close, X-Private"),
            (b"X-Private", b"hop"),
            (b"Transfer-Encoding", b"chunked"),
            (b"Date", b"Tue, 01 Jan 2030 00:00:00 GMT"),
            (b"Content-Length", b"5"),
            (b"Set-Cookie", b"a=1"),
            (b"Set-Cookie", b"b=2"),
        ],
        body=b"hello",
    )
    proxy = _proxy(answer)
    response = _forward(proxy, _incoming())
    assert response.raw_headers == [
        (b"content-type", b"text/plain"),
        (b"content-length", b"5"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
    ]
    assert response.content_length == 5
    assert asyncio.run(response.read_raw()) == b"hello"


# -- the SDK's refresh of a refused token -----------------------------------------------


def test_the_sdk_refresh_refreshes_the_refused_token() -> None:
    proxy = _proxy()
    refused = hashlib.sha256(b"token-1").hexdigest()
    issued = proxy.service.refresh_refused(CALLER, "c1", refused.upper())
    assert issued.tokens.access_token == "token-2"
    assert proxy.tokens.refreshes == 1


def test_the_sdk_refresh_answers_a_token_already_replaced_without_refreshing() -> None:
    proxy = _proxy()
    proxy.tokens.version = 3  # another caller refreshed since token-1 was refused
    refused = hashlib.sha256(b"token-1").hexdigest()
    issued = proxy.service.refresh_refused(CALLER, "c1", refused)
    assert issued.tokens.access_token == "token-3"
    assert proxy.tokens.refreshes == 0


def test_a_plan_names_the_profiles_auth_error_status() -> None:
    proxy = _proxy(profile=_profile(auth_error_status_code=419))
    plan = proxy.service.plan(CALLER, "c1", "GET", CallerPath.of("x"), "")
    assert plan.auth_error_status == 419
    assert plan.url == "https://acme.api.example/v1/eu/x"
