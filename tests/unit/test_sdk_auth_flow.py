"""The SDK's ``auth_flow`` against in-memory transports (no sockets): one generator for sync
and async clients, the authprofiles API's calls kept off the caller's client, the token
reused, and a refused one refreshed once."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from authprofiles.sdk import AuthProfilesClient, ConnectionAuth, InjectionError

SERVER = "http://authprofiles.test"
API = "https://api.example.com/v1"


@dataclass
class Server:
    """The authprofiles API's token endpoints: token ``t1`` first, ``t2`` after a refresh."""

    inject: dict[str, Any] = field(default_factory=dict)
    auth_error_status: int | None = 401
    calls: Counter[str] = field(default_factory=Counter)
    tokens: list[str] = field(default_factory=lambda: ["t1"])
    api_keys: set[str] = field(default_factory=set)
    refresh_bodies: list[Any] = field(default_factory=list)

    def token(self) -> dict[str, Any]:
        access = self.tokens[-1]
        headers = {"Authorization": f"Bearer {access}", **self.inject.get("headers", {})}
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_at": "2999-01-01T00:00:00Z",
            "inject": {**self.inject, "headers": headers},
        }
        if self.auth_error_status is not None:
            body["auth_error_status_code"] = self.auth_error_status
        return body

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/v1")
        self.calls[f"{request.method} {path}"] += 1
        self.api_keys.add(request.headers["authorization"])
        if path == "/connections/c1/token":
            return httpx.Response(200, json=self.token())
        if path == "/connections/c1/token/refresh":
            self.refresh_bodies.append(json.loads(request.content))
            self.tokens.append(f"t{len(self.tokens) + 1}")
            return httpx.Response(200, json=self.token())
        if path == "/connections/c1":
            return httpx.Response(200, json={"id": "c1", "profile_id": "p1"})
        if path == "/profiles/p1":
            return httpx.Response(200, json={"id": "p1", "auth_error_status_code": 403})
        return httpx.Response(404, json={"title": "Not found", "detail": path})


@dataclass
class Api:
    """The connection's API: refuses every token in ``refused`` with ``status``."""

    refused: set[str] = field(default_factory=lambda: {"Bearer t1"})
    status: int = 401
    seen: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if request.headers.get("authorization") in self.refused:
            return httpx.Response(self.status, json={"error": "invalid_token"})
        return httpx.Response(
            200,
            json={
                "url": str(request.url),
                "authorization": request.headers.get("authorization"),
                "body": request.content.decode(),
            },
        )


@pytest.fixture
def server() -> Server:
    return Server()


@pytest.fixture
def sdk(server: Server) -> Any:
    transport = httpx.MockTransport(server)
    with AuthProfilesClient(SERVER, "ap_key", transport=transport, async_transport=transport) as c:
        yield c


def _sync(auth: ConnectionAuth, api: Api, method: str = "GET", **kwargs: Any) -> httpx.Response:
    with httpx.Client(base_url=API, auth=auth, transport=httpx.MockTransport(api)) as client:
        return client.request(method, "/items", **kwargs)


def _async(auth: ConnectionAuth, api: Api, method: str = "GET", **kwargs: Any) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.MockTransport(api)
        async with httpx.AsyncClient(base_url=API, auth=auth, transport=transport) as client:
            return await client.request(method, "/items", **kwargs)

    return asyncio.run(call())


SEND = {"sync": _sync, "async": _async}


@pytest.mark.parametrize("flavour", SEND)
def test_a_refused_token_is_refreshed_once_and_the_request_sent_again(
    flavour: str, sdk: AuthProfilesClient, server: Server
) -> None:
    api = Api()
    response = SEND[flavour](sdk.auth("c1"), api, "POST", json={"item": "book"})
    assert response.status_code == 200
    assert response.json()["authorization"] == "Bearer t2"
    assert json.loads(response.json()["body"]) == {"item": "book"}  # the body went again
    assert [r.status_code for r in response.history] == [401]
    assert server.calls["GET /connections/c1/token"] == 1
    assert server.calls["POST /connections/c1/token/refresh"] == 1
    # The refresh names the refused token by its hash, never the token itself.
    assert server.refresh_bodies == [{"refused_token_sha256": hashlib.sha256(b"t1").hexdigest()}]


@pytest.mark.parametrize("flavour", SEND)
def test_a_fresh_token_refused_too_is_not_refreshed_a_second_time(
    flavour: str, sdk: AuthProfilesClient, server: Server
) -> None:
    api = Api(refused={"Bearer t1", "Bearer t2", "Bearer t3"})
    response = SEND[flavour](sdk.auth("c1"), api)
    assert response.status_code == 401
    assert server.calls["POST /connections/c1/token/refresh"] == 1
    assert [r.headers["authorization"] for r in api.seen] == ["Bearer t1", "Bearer t2"]


@pytest.mark.parametrize("flavour", SEND)
def test_the_authprofiles_calls_go_through_the_sdks_client_not_the_callers(
    flavour: str, sdk: AuthProfilesClient, server: Server
) -> None:
    api = Api()
    SEND[flavour](sdk.auth("c1"), api)
    assert all(r.url.host == "api.example.com" for r in api.seen)
    assert all("ap_key" not in r.headers.get("authorization", "") for r in api.seen)
    assert server.api_keys == {"Bearer ap_key"}


def test_the_token_is_reused_across_requests_and_clients(
    sdk: AuthProfilesClient, server: Server
) -> None:
    auth = sdk.auth("c1")
    api = Api(refused=set())
    for _ in range(3):
        assert _sync(auth, api).status_code == 200
    assert _async(auth, api).status_code == 200
    assert server.calls["GET /connections/c1/token"] == 1


@pytest.mark.parametrize("flavour", SEND)
def test_without_the_status_in_the_token_it_is_looked_up_only_on_an_error(
    flavour: str, sdk: AuthProfilesClient, server: Server
) -> None:
    server.auth_error_status = None  # an older server: the profile says 403
    assert SEND[flavour](sdk.auth("c1"), Api(refused=set())).status_code == 200
    assert server.calls["GET /profiles/p1"] == 0
    auth = sdk.auth("c1")
    response = SEND[flavour](auth, Api(status=401))
    assert response.status_code == 401  # not this profile's auth error status
    assert server.calls["GET /profiles/p1"] == 1
    assert server.calls["POST /connections/c1/token/refresh"] == 0
    assert SEND[flavour](auth, Api(status=403)).json()["authorization"] == "Bearer t2"
    assert server.calls["GET /profiles/p1"] == 1  # remembered


def test_every_field_location_is_filled_by_the_wire_rules(
    sdk: AuthProfilesClient, server: Server
) -> None:
    server.inject = {
        "headers": {"X-Tag": "tag"},
        "query": {"key": "s e"},
        "body": {"org": "o-1"},
        "path": {"ws": "ws 7"},
    }
    api = Api(refused=set())
    response = _sync(sdk.auth("c1", base_url=API), api, "POST", data={"name": "n"})
    assert response.json()["url"] == f"{API}/ws%207/items?key=s%20e"
    assert response.json()["body"] == "name=n&org=o-1"
    assert api.seen[0].headers["x-tag"] == "tag"


@pytest.mark.parametrize(
    "inject",
    [
        {"headers": {"X-Tag": "a\r\nX-Evil: 1"}},
        {"path": {"ws": "../admin"}},
        {"path": {"ws": "%2e%2e"}},
        {"body": {"org": "o"}},  # into a body that is not a JSON object
    ],
    ids=["header-line-break", "path-climb", "path-encoded-climb", "body-not-an-object"],
)
def test_hints_that_cannot_be_applied_raise_the_wire_error_before_anything_is_sent(
    sdk: AuthProfilesClient, server: Server, inject: dict[str, Any]
) -> None:
    server.inject = inject
    api = Api(refused=set())
    with pytest.raises(InjectionError):
        _sync(sdk.auth("c1", base_url=API), api, "POST", json=[1, 2])
    assert api.seen == []
