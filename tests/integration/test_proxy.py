"""The proxy, end to end: the real app over HTTP, a real IdP, the echo upstream.

Every authorization field location arrives exactly where the profile puts it, for every
grant; escape attempts are refused; a refused token is refreshed once and the call
retried; both bodies stream.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse

from authprofiles.settings import Settings
from tests.support.app import Live, oauth_profile
from tests.support.echo import EchoServer, expected_sha256
from tests.support.idp import IdP
from tests.support.live import ThreadServer, free_port
from tests.support.tls import HttpsUpstream, issue_certificates

pytestmark = pytest.mark.idp

AUTHORIZATION_FIELDS = [
    {"type": "header", "key": "X-Client-Tag", "value": "tag-{{account}}"},
    {"type": "query", "key": "api_key", "value": "query-secret-123"},
    {"type": "payload", "key": "org_id", "value": "org-42"},
    {"type": "path", "key": "workspace", "value": "ws-7"},
]
#: For the echo's special routes (/status, /bytes, /delay), which a path field would shift.
NO_PATH_FIELDS = [f for f in AUTHORIZATION_FIELDS if f["type"] != "path"]
FORM_FIELDS = [{"title": "Account", "key": "account", "type": "textbox"}]


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'proxy.db'}"


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    # A short upstream timeout, so the 504 test does not wait long.
    return make_settings(public_url="http://127.0.0.1:8000", http_timeout_seconds=2)


@pytest.fixture
def api(live: Live, developer_headers: dict[str, str]) -> Iterator[httpx.Client]:
    """A developer's client of the live app."""
    with httpx.Client(
        base_url=live.url, headers=developer_headers, timeout=30, trust_env=False
    ) as client:
        yield client


def connect(
    live: Live,
    idp: IdP,
    grant: str,
    api_base_url: str,
    user: tuple[str, str] | None = None,
    **overrides: Any,
) -> tuple[dict[str, Any], str, Any]:
    """A profile of ``grant`` with every field location, and an active connection."""
    fields: dict[str, Any] = {
        "api_base_url": api_base_url,
        "authorization_fields": AUTHORIZATION_FIELDS,
        "form_fields": FORM_FIELDS,
        **overrides,
    }
    if grant == "client_credentials":
        profile, client = oauth_profile(live, idp, "client-credentials", **fields)
        started = live.connect(profile["id"], fields={"account": "acme"})
    elif grant == "password":
        assert user is not None
        profile, client = oauth_profile(live, idp, "password", **fields)
        started = live.connect(
            profile["id"], fields={"account": "acme"}, username=user[0], password=user[1]
        )
    else:
        assert user is not None
        profile, client = oauth_profile(live, idp, "authorization-code", scopes=["read"], **fields)
        started = live.connect(profile["id"], fields={"account": "acme"})
        callback = idp.log_in_and_consent(started["authorization_url"], *user)
        page = httpx.get(callback, timeout=30, trust_env=False)
        assert 'data-ok="true"' in page.text, page.text
    return profile, started["connection_id"], client


def introspected(
    live: Live, idp: IdP, echo_server: EchoServer, **overrides: Any
) -> tuple[str, Any]:
    """A client-credentials connection to the echo's /introspected, which asks the IdP
    whether each token is still active: (the connection id, its OAuth client)."""
    resource = idp.register_client("client-credentials")
    echo_server.use_introspection(idp.introspection_url, resource.client_id, resource.client_secret)
    _, connection_id, client = connect(
        live, idp, "client_credentials", echo_server.url + "/introspected", **overrides
    )
    return connection_id, client


def access_token(live: Live, connection_id: str) -> str:
    response = live.token(connection_id)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


GRANTS = ["client_credentials", "password", "authorization_code"]


@pytest.mark.parametrize("grant", GRANTS)
def test_every_field_location_arrives_where_configured(
    live: Live,
    api: httpx.Client,
    idp: IdP,
    echo_server: EchoServer,
    user: tuple[str, str],
    grant: str,
) -> None:
    _, connection_id, _ = connect(live, idp, grant, echo_server.url + "/base", user)
    token = access_token(live, connection_id)
    base = f"/api/v1/proxy/{connection_id}"

    got = api.get(f"{base}/items/1?x=1&api_key=from-caller", headers={"X-Custom": "kept"})
    assert got.status_code == 200, got.text
    echo = got.json()
    assert echo["method"] == "GET"
    assert echo["path"] == "/base/ws-7/items/1"  # path field right after the base path
    assert parse_qs(echo["query"]) == {"x": ["1"], "api_key": ["query-secret-123"]}
    assert echo["headers"]["authorization"] == f"Bearer {token}"
    assert echo["headers"]["x-client-tag"] == "tag-acme"  # {{account}} from the connection
    assert echo["headers"]["x-custom"] == "kept"
    assert echo["body"] == ""  # GET without a body: no payload fields

    as_json = api.post(f"{base}/items", json={"name": "n", "org_id": "from-caller"}).json()
    assert as_json["json"] == {"name": "n", "org_id": "org-42"}
    assert as_json["headers"]["content-type"] == "application/json"
    assert as_json["headers"]["authorization"] == f"Bearer {token}"

    as_form = api.put(f"{base}/items", data={"name": "n n"}).json()
    assert as_form["method"] == "PUT"
    assert as_form["form"] == {"name": "n n", "org_id": "org-42"}
    assert parse_qs(as_form["query"])["api_key"] == ["query-secret-123"]

    empty = api.patch(f"{base}/items").json()
    assert empty["json"] == {"org_id": "org-42"}  # a bodiless PATCH gets a JSON body


def test_path_field_fills_its_placeholder_in_the_base_url(
    live: Live, api: httpx.Client, idp: IdP, echo_server: EchoServer
) -> None:
    _, connection_id, _ = connect(
        live, idp, "client_credentials", echo_server.url + "/t/{{workspace}}/v1"
    )
    echo = api.get(f"/api/v1/proxy/{connection_id}/items/").json()
    assert echo["path"] == "/t/ws-7/v1/items/"  # trailing slash kept


def test_caller_path_placeholder_and_encoding_are_kept(
    live: Live, api: httpx.Client, idp: IdP, echo_server: EchoServer
) -> None:
    _, connection_id, _ = connect(live, idp, "client_credentials", echo_server.url + "/base")
    echo = api.get(f"/api/v1/proxy/{connection_id}/users/{{{{workspace}}}}/a%20b").json()
    # The field fills the caller's placeholder, so it is not added after the base path.
    assert echo["raw_path"] == "/base/users/ws-7/a%20b"


def test_hop_by_hop_headers_and_the_callers_api_key_are_not_forwarded(
    live: Live, api: httpx.Client, idp: IdP, echo_server: EchoServer
) -> None:
    _, connection_id, _ = connect(live, idp, "client_credentials", echo_server.url)
    token = access_token(live, connection_id)
    response = api.get(
        f"/api/v1/proxy/{connection_id}/h",
        headers={
            "Connection": "keep-alive, X-Per-Hop",
            "X-Per-Hop": "1",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
            "Proxy-Authorization": "Basic c2VjcmV0",
            "X-End-To-End": "2",
        },
    )
    headers = response.json()["headers"]
    for name in ("x-per-hop", "keep-alive", "te", "proxy-authorization"):
        assert name not in headers
    assert headers["x-end-to-end"] == "2"
    assert headers["authorization"] == f"Bearer {token}"  # not the caller's API key
    assert headers["host"] == urlsplit(echo_server.url).netloc
    # The upstream's own hop-by-hop headers do not come back either.
    assert (
        "transfer-encoding" not in response.headers
        or response.headers["transfer-encoding"] == "chunked"
    )
    assert response.headers["content-type"] == "application/json"


def test_status_and_empty_bodies_pass_through(
    live: Live, api: httpx.Client, idp: IdP, echo_server: EchoServer
) -> None:
    _, connection_id, _ = connect(
        live, idp, "client_credentials", echo_server.url, authorization_fields=NO_PATH_FIELDS
    )
    base = f"/api/v1/proxy/{connection_id}"
    assert api.get(f"{base}/status/418").status_code == 418
    no_content = api.delete(f"{base}/status/204")
    assert no_content.status_code == 204
    assert no_content.content == b""
    head = api.head(f"{base}/bytes/1000")
    assert head.status_code == 200
    assert head.headers["content-length"] == "1000"
    assert head.content == b""


ESCAPES = [
    "..",
    "../secret",
    "a/../../secret",
    "./a",
    "%2e%2e/secret",
    "%2E%2E",
    "a%2Fb",
    "a%2f..%2fb",
    "%252e%252e/secret",
    "%252F",
    "a%5Cb",
    "a\\b",
    "..;/secret",
    "a%00b",
    "//evil.example/x",
    "http://evil.example/x",
]


@pytest.mark.parametrize("path", ESCAPES)
@pytest.mark.parametrize("prefix", ["/api/v1/proxy", "/api/v1/%70roxy"])
def test_path_escape_attempts_are_refused_with_400(
    live: Live,
    developer_headers: dict[str, str],
    idp: IdP,
    echo_server: EchoServer,
    path: str,
    prefix: str,
) -> None:
    """Also when the proxy's own prefix is percent-encoded: the raw path cannot be cut at
    it then, and the decoded one would turn ``a%2Fb`` into ``a/b``; the call is refused."""
    _, connection_id, _ = connect(live, idp, "client_credentials", echo_server.url + "/base")
    echo_server.clear_requests()
    # http.client sends the path byte for byte (httpx would remove dot segments first).
    host, port = urlsplit(live.url).hostname, urlsplit(live.url).port
    conn = http.client.HTTPConnection(str(host), port, timeout=30)
    try:
        conn.request("GET", f"{prefix}/{connection_id}/{path}", headers=developer_headers)
        response = conn.getresponse()
        body = json.loads(response.read())
    finally:
        conn.close()
    assert response.status == 400, body
    assert response.getheader("content-type") == "application/problem+json"
    assert body["title"] == "Path not allowed"
    assert echo_server.requests() == []  # nothing reached the upstream


def test_a_refused_token_is_refreshed_once_and_the_call_retried(
    live: Live, api: httpx.Client, idp: IdP, echo_server: EchoServer
) -> None:
    connection_id, client = introspected(live, idp, echo_server)
    first_token = access_token(live, connection_id)
    base = f"/api/v1/proxy/{connection_id}"
    assert api.get(f"{base}/ok").status_code == 200

    idp.revoke_all_tokens(client.client_id)  # the API now refuses the stored token
    idp.reset_counters()
    echo_server.clear_requests()
    retried = api.post(f"{base}/orders", json={"item": "book"})
    assert retried.status_code == 200, retried.text
    assert retried.json()["json"] == {"item": "book", "org_id": "org-42"}  # body replayed
    assert idp.token_requests("client_credentials") == 1
    attempts = [r["headers"]["authorization"] for r in echo_server.requests()]
    second_token = access_token(live, connection_id)
    assert second_token != first_token
    assert attempts == [f"Bearer {first_token}", f"Bearer {second_token}"]


def test_the_profiles_own_auth_error_status_triggers_one_refresh_not_a_loop(
    live: Live, api: httpx.Client, idp: IdP, echo_server: EchoServer
) -> None:
    _, connection_id, _ = connect(
        live,
        idp,
        "client_credentials",
        echo_server.url,
        auth_error_status_code=403,
        authorization_fields=NO_PATH_FIELDS,
    )
    first_token = access_token(live, connection_id)
    idp.reset_counters()
    echo_server.clear_requests()
    refused = api.get(f"/api/v1/proxy/{connection_id}/status/403")
    assert refused.status_code == 403  # still refused after one retry: the answer stands
    assert idp.token_requests("client_credentials") == 1
    assert len(echo_server.requests()) == 2
    assert access_token(live, connection_id) != first_token
    # A 401 is not this profile's auth error: no refresh.
    idp.reset_counters()
    assert api.get(f"/api/v1/proxy/{connection_id}/status/401").status_code == 401
    assert idp.token_requests() == 0


def test_a_large_streamed_upload_is_not_replayed_but_the_token_is_refreshed(
    live: Live, api: httpx.Client, idp: IdP, echo_server: EchoServer
) -> None:
    connection_id, client = introspected(live, idp, echo_server, authorization_fields=[])
    idp.revoke_all_tokens(client.client_id)
    big = b"x" * (2 * 1024 * 1024)
    base = f"/api/v1/proxy/{connection_id}"
    refused = api.post(f"{base}/upload", content=big, headers={"Content-Type": "text/plain"})
    assert refused.status_code == 401  # 2 MiB streamed through: it cannot be sent again
    accepted = api.post(f"{base}/upload", content=big, headers={"Content-Type": "text/plain"})
    assert accepted.status_code == 200
    assert accepted.json()["body_length"] == len(big)


def test_both_bodies_stream_through(
    live: Live, api: httpx.Client, idp: IdP, echo_server: EchoServer
) -> None:
    _, connection_id, _ = connect(
        live, idp, "client_credentials", echo_server.url, authorization_fields=[]
    )
    base = f"/api/v1/proxy/{connection_id}"
    size = 16 * 1024 * 1024 + 7
    digest = hashlib.sha256()
    with api.stream("GET", f"{base}/bytes/{size}") as response:
        assert response.status_code == 200
        assert response.headers["content-length"] == str(size)
        for chunk in response.iter_raw():
            digest.update(chunk)
    assert digest.hexdigest() == expected_sha256(size)

    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"y" * 65536

    uploaded = api.post(
        f"{base}/upload", content=chunks(), headers={"Content-Type": "application/octet-stream"}
    )
    assert uploaded.status_code == 200
    assert uploaded.json()["body_length"] == 40 * 65536


def test_payload_fields_need_a_json_object_or_form_body(
    live: Live, api: httpx.Client, idp: IdP, echo_server: EchoServer
) -> None:
    _, connection_id, _ = connect(live, idp, "client_credentials", echo_server.url)
    base = f"/api/v1/proxy/{connection_id}"
    text = api.post(f"{base}/x", content=b"hello", headers={"Content-Type": "text/plain"})
    assert text.status_code == 415
    assert text.headers["content-type"] == "application/problem+json"
    array = api.post(f"{base}/x", json=[1, 2])
    assert array.status_code == 400
    assert "JSON object" in array.json()["detail"]


def test_unreachable_upstream_is_a_502_naming_the_host(
    live: Live, api: httpx.Client, idp: IdP
) -> None:
    port = free_port()
    _, connection_id, _ = connect(live, idp, "client_credentials", f"http://127.0.0.1:{port}")
    response = api.get(f"/api/v1/proxy/{connection_id}/x")
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["upstream_host"] == "127.0.0.1"
    assert "could not connect to 127.0.0.1" in problem["detail"]


def test_a_slow_upstream_is_a_504_naming_the_host(
    live: Live, api: httpx.Client, idp: IdP, echo_server: EchoServer
) -> None:
    _, connection_id, _ = connect(
        live, idp, "client_credentials", echo_server.url, authorization_fields=NO_PATH_FIELDS
    )
    response = api.get(f"/api/v1/proxy/{connection_id}/delay/4")  # the timeout is 2 s
    assert response.status_code == 504
    assert response.json()["upstream_host"] == "127.0.0.1"
    assert "did not answer in time" in response.json()["detail"]


def test_proxy_needs_the_developer_role_and_an_api_base_url(
    live: Live,
    idp: IdP,
    echo_server: EchoServer,
    viewer_headers: dict[str, str],
    api: httpx.Client,
) -> None:
    _, connection_id, _ = connect(live, idp, "client_credentials", echo_server.url)
    viewer = httpx.get(
        f"{live.url}/api/v1/proxy/{connection_id}/x", headers=viewer_headers, trust_env=False
    )
    assert viewer.status_code == 403
    anonymous = httpx.get(f"{live.url}/api/v1/proxy/{connection_id}/x", trust_env=False)
    assert anonymous.status_code == 401
    missing = api.get(f"/api/v1/proxy/{uuid.uuid4()}/x")
    assert missing.status_code == 404

    profile, _ = oauth_profile(live, idp, "client-credentials")
    no_base = live.connect(profile["id"])["connection_id"]
    response = api.get(f"/api/v1/proxy/{no_base}/x")
    assert response.status_code == 409
    assert "api_base_url" in response.json()["detail"]


def test_the_proxy_answers_its_own_errors_as_problems(
    live: Live, idp: IdP, echo_server: EchoServer, api: httpx.Client
) -> None:
    _, connection_id, _ = connect(live, idp, "client_credentials", echo_server.url)
    anonymous = httpx.get(f"{live.url}/api/v1/proxy/{connection_id}/x", trust_env=False)
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert anonymous.headers["www-authenticate"].startswith("Bearer")

    trace = api.request("TRACE", f"/api/v1/proxy/{connection_id}/x")
    assert trace.status_code == 405
    assert trace.headers["content-type"] == "application/problem+json"
    assert "GET" in trace.headers["allow"]

    no_id = api.get("/api/v1/proxy/")
    assert no_id.status_code == 404
    assert no_id.headers["content-type"] == "application/problem+json"

    # The connection's root: the api_base_url itself (plus the path field's segment).
    root = api.get(f"/api/v1/proxy/{connection_id}")
    assert root.status_code == 200, root.text
    assert root.json()["path"] == "/ws-7"


def test_the_proxy_adds_no_encoding_or_type_the_caller_did_not_ask_for(
    live: Live, idp: IdP, echo_server: EchoServer, api: httpx.Client
) -> None:
    _, connection_id, _ = connect(
        live, idp, "client_credentials", echo_server.url, authorization_fields=[]
    )
    raw = http.client.HTTPConnection(urlsplit(live.url).netloc, timeout=30)
    raw.putrequest("PUT", f"/api/v1/proxy/{connection_id}/upload", skip_accept_encoding=True)
    raw.putheader("Authorization", api.headers["authorization"])
    raw.putheader("Content-Length", "5")
    raw.endheaders(b"hello")
    echoed = json.loads(raw.getresponse().read())
    raw.close()
    assert echoed["body"] == "hello"
    assert "accept-encoding" not in echoed["headers"]
    assert "content-type" not in echoed["headers"]


def test_an_https_api_is_reached_over_verified_tls(
    live: Live, idp: IdP, api: httpx.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    certificates = issue_certificates(tmp_path)
    # The CAs the proxy trusts are the OAuth calls' ones: certifi, or SSL_CERT_FILE.
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates.ca))
    with HttpsUpstream(certificates) as upstream:
        _, connection_id, _ = connect(
            live, idp, "client_credentials", upstream.url, authorization_fields=[]
        )
        answer = api.get(f"/api/v1/proxy/{connection_id}/me")
        assert answer.status_code == 200, answer.text
        assert answer.json()["tls"] is True
        assert answer.json()["auth"] == f"Bearer {access_token(live, connection_id)}"

        # The certificate names 127.0.0.1 only: reached by another name, it is refused.
        _, by_name, _ = connect(
            live,
            idp,
            "client_credentials",
            f"https://localhost:{upstream.port}",
            authorization_fields=[],
        )
        refused = api.get(f"/api/v1/proxy/{by_name}/me")
        assert refused.status_code == 502, refused.text
        assert refused.json()["upstream_host"] == "localhost"
        assert "certificate" in refused.json()["detail"].lower(), refused.json()


def test_the_proxy_is_in_the_openapi_schema(live: Live) -> None:
    schema = live.http.get("/openapi.json").json()
    operations = schema["paths"]["/api/v1/proxy/{connection_id}/{path}"]
    assert {"get", "post", "put", "patch", "delete"} <= set(operations)
    ids = [op["operationId"] for op in operations.values()]
    assert len(ids) == len(set(ids))
    assert "502" in operations["get"]["responses"]


def test_a_cookie_one_upstream_sets_never_rides_along_on_another_call(
    live: Live, api: httpx.Client, idp: IdP
) -> None:
    upstream = FastAPI()

    @upstream.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @upstream.get("/login")
    def login(response: Response) -> dict[str, str]:
        response.set_cookie("session", "alice-session-cookie")
        return {"ok": "yes"}

    @upstream.get("/whoami")
    def whoami(request: Request) -> dict[str, str | None]:
        return {"cookie": request.headers.get("cookie")}

    server = ThreadServer(upstream).start()
    try:
        _, alice, _ = connect(live, idp, "client_credentials", server.url, authorization_fields=[])
        _, bob, _ = connect(live, idp, "client_credentials", server.url, authorization_fields=[])

        def call(connection_id: str, path: str) -> httpx.Response:
            # A client without a cookie jar: only the proxy could carry the cookie along.
            return httpx.get(
                f"{live.url}/api/v1/proxy/{connection_id}/{path}",
                headers={"Authorization": api.headers["Authorization"]},
                trust_env=False,
            )

        logged_in = call(alice, "login")
        assert "alice-session-cookie" in logged_in.headers["set-cookie"]  # for the caller
        assert call(bob, "whoami").json() == {"cookie": None}
        assert call(alice, "whoami").json() == {"cookie": None}
    finally:
        server.stop()


def test_a_connection_the_api_closed_while_idle_is_not_reused(
    live: Live, api: httpx.Client, idp: IdP
) -> None:
    """APIs close idle keep-alive connections (uvicorn after 5 s, here 1 s); a POST, which
    may not be sent twice, must then go out on a fresh connection, not fail on the old."""
    upstream = FastAPI()

    @upstream.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @upstream.post("/orders")
    async def orders(request: Request) -> dict[str, str]:
        return {"got": (await request.body()).decode()}

    server = ThreadServer(upstream, timeout_keep_alive=1).start()
    try:
        _, connection_id, _ = connect(
            live, idp, "client_credentials", server.url, authorization_fields=[]
        )
        url = f"/api/v1/proxy/{connection_id}/orders"
        assert api.post(url, content=b"first").json() == {"got": "first"}
        time.sleep(2.5)  # the API has closed the proxy's idle connection by now
        again = api.post(url, content=b"second")
        assert again.status_code == 200, again.text
        assert again.json() == {"got": "second"}
    finally:
        server.stop()


def test_an_answer_that_breaks_off_is_a_502_or_a_cut_connection_never_a_whole_one(
    live: Live, api: httpx.Client, idp: IdP, echo_server: EchoServer, make_fault_proxy: Any
) -> None:
    relay = make_fault_proxy(echo_server.url)
    relay.set_mode("truncated")  # promises 1000 bytes more than it sends, then hangs up
    _, small, _ = connect(live, idp, "client_credentials", relay.url, authorization_fields=[])
    response = api.get(f"/api/v1/proxy/{small}/x")
    assert response.status_code == 502
    assert response.json()["upstream_host"] == "127.0.0.1"
    assert "broke off" in response.json()["detail"]

    upstream = FastAPI()

    @upstream.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @upstream.get("/big")
    def big() -> StreamingResponse:
        def chunks() -> Iterator[bytes]:
            for _ in range(4):
                yield b"z" * 65536
            raise RuntimeError("the upstream fails mid-body")

        return StreamingResponse(chunks(), headers={"Content-Length": str(1024 * 1024)})

    server = ThreadServer(upstream).start()
    try:
        _, large, _ = connect(live, idp, "client_credentials", server.url, authorization_fields=[])
        with pytest.raises(httpx.RemoteProtocolError):
            api.get(f"/api/v1/proxy/{large}/big")
    finally:
        server.stop()


def test_a_changed_profile_or_a_deleted_connection_takes_effect_within_the_reuse_window(
    live: Live, api: httpx.Client, idp: IdP, echo_server: EchoServer
) -> None:
    window = live.services.settings.token_reuse_seconds = 1.0  # as shipped
    profile, connection_id, _ = connect(
        live, idp, "client_credentials", echo_server.url + "/one", authorization_fields=[]
    )
    assert api.get(f"/api/v1/proxy/{connection_id}/x").json()["path"] == "/one/x"
    patched = live.http.patch(
        f"/api/v1/profiles/{profile['id']}", json={"api_base_url": echo_server.url + "/two"}
    )
    assert patched.status_code == 200, patched.text
    time.sleep(window + 0.1)
    assert api.get(f"/api/v1/proxy/{connection_id}/x").json()["path"] == "/two/x"

    assert live.http.delete(f"/api/v1/connections/{connection_id}").status_code == 200
    time.sleep(window + 0.1)
    assert api.get(f"/api/v1/proxy/{connection_id}/x").status_code == 404


def test_an_upstream_redirect_goes_back_to_the_caller_unfollowed(
    live: Live, api: httpx.Client, idp: IdP, echo_server: EchoServer
) -> None:
    # The call carries the token and the authorization fields: the proxy must not take
    # them to wherever a Location points (here another origin: another port).
    elsewhere = f"{echo_server.url}/landing?from=upstream"
    upstream = FastAPI()
    received: list[dict[str, str]] = []

    @upstream.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @upstream.get("/moved")
    def moved(request: Request) -> Response:
        received.append(dict(request.headers))
        return Response(status_code=302, headers={"location": elsewhere, "x-upstream": "yes"})

    server = ThreadServer(upstream).start()
    try:
        _, connection_id, _ = connect(
            live, idp, "client_credentials", server.url, authorization_fields=NO_PATH_FIELDS
        )
        response = api.get(f"/api/v1/proxy/{connection_id}/moved", follow_redirects=False)
    finally:
        server.stop()
    assert response.status_code == 302
    assert response.headers["location"] == elsewhere
    assert response.headers["x-upstream"] == "yes"
    assert len(received) == 1 and received[0]["authorization"].startswith("Bearer ")
    assert received[0]["x-client-tag"] == "tag-acme"
    assert echo_server.requests() == []
