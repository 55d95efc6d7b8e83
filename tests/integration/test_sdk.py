"""The SDK against the real app over HTTP, a real IdP and the echo upstream.

The same promises as the proxy, kept client side: every field location arrives where
the profile puts it (httpx sync and async, requests), the token is cached, and a
refused token is refreshed once and the call retried.
"""

from __future__ import annotations

import ast
import asyncio
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import requests

import authprofiles.sdk
import authprofiles.wire
from authprofiles.sdk import (
    AuthProfilesClient,
    AuthProfilesError,
    ConnectionAuth,
    InjectionError,
    RequestsConnectionAuth,
    Token,
)
from authprofiles.wire.injection import apply_to_url, carries_payload, fill_path, merge_body
from tests.integration.test_proxy import AUTHORIZATION_FIELDS, GRANTS, connect, introspected
from tests.support.app import Live
from tests.support.echo import EchoServer
from tests.support.idp import IdP

pytestmark = pytest.mark.idp

SDK_DIR = Path(authprofiles.sdk.__file__).parent
WIRE_DIR = Path(authprofiles.wire.__file__).parent


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sdk.db'}"


class CountingTransport(httpx.BaseTransport):
    """Counts the SDK's calls to the authprofiles API, by path."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.paths: Counter[str] = Counter()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths[request.url.path] += 1
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def counting() -> CountingTransport:
    return CountingTransport()


@pytest.fixture
def sdk(live: Live, developer_headers: dict[str, str], counting: CountingTransport) -> Any:
    key = developer_headers["Authorization"].removeprefix("Bearer ")
    with AuthProfilesClient(live.url, key, trust_env=False, transport=counting) as client:
        yield client


@pytest.fixture
def admin_sdk(live: Live, admin_headers: dict[str, str]) -> Any:
    key = admin_headers["Authorization"].removeprefix("Bearer ")
    with AuthProfilesClient(live.url, key, trust_env=False) as client:
        yield client


def check_echo(echo: dict[str, Any], token: str, *, body: dict[str, Any] | None) -> None:
    assert echo["path"] == "/base/ws-7/items"
    assert parse_qs(echo["query"])["api_key"] == ["query-secret-123"]
    assert echo["headers"]["authorization"] == f"Bearer {token}"
    assert echo["headers"]["x-client-tag"] == "tag-acme"
    if body is not None:
        assert (echo["json"] or echo["form"]) == body


@pytest.fixture(params=GRANTS)
def echo_connection(
    request: pytest.FixtureRequest,
    live: Live,
    sdk: AuthProfilesClient,
    idp: IdP,
    echo_server: EchoServer,
    user: tuple[str, str],
) -> tuple[str, str, str]:
    """A connection of each grant to the echo's /base: (that base URL, its id, its token)."""
    base = echo_server.url + "/base"
    _, connection_id, _ = connect(live, idp, request.param, base, user)
    return base, connection_id, sdk.get_token(connection_id).access_token


def test_httpx_auth_puts_every_field_where_configured(
    sdk: AuthProfilesClient, echo_connection: tuple[str, str, str]
) -> None:
    base, connection_id, token = echo_connection
    auth = sdk.auth(connection_id, base_url=base)
    with httpx.Client(base_url=base, auth=auth, trust_env=False) as api:
        got = api.get("/items", params={"api_key": "from-caller", "x": "1"}).json()
        check_echo(got, token, body=None)
        assert parse_qs(got["query"])["x"] == ["1"]
        posted = api.post("/items", json={"name": "n"}).json()
        check_echo(posted, token, body={"name": "n", "org_id": "org-42"})
        form = api.put("/items", data={"name": "n n"}).json()
        check_echo(form, token, body={"name": "n n", "org_id": "org-42"})


def test_async_httpx_auth_puts_every_field_where_configured(
    sdk: AuthProfilesClient, echo_connection: tuple[str, str, str]
) -> None:
    base, connection_id, token = echo_connection

    async def calls() -> list[dict[str, Any]]:
        auth = ConnectionAuth(sdk, connection_id, base_url=base)
        async with httpx.AsyncClient(base_url=base, auth=auth, trust_env=False) as api:
            got = await api.get("/items")
            posted = await api.post("/items", json={"name": "n"})
            form = await api.post("/items", data={"name": "n"})
            return [got.json(), posted.json(), form.json()]

    got, posted, form = asyncio.run(calls())
    check_echo(got, token, body=None)
    check_echo(posted, token, body={"name": "n", "org_id": "org-42"})
    check_echo(form, token, body={"name": "n", "org_id": "org-42"})


def test_requests_auth_puts_every_field_where_configured(
    sdk: AuthProfilesClient, echo_connection: tuple[str, str, str]
) -> None:
    base, connection_id, token = echo_connection
    auth = RequestsConnectionAuth(sdk, connection_id, base_url=base)
    with requests.Session() as session:
        session.trust_env = False
        got = session.get(base + "/items", params={"api_key": "x"}, auth=auth, timeout=30)
        check_echo(got.json(), token, body=None)
        posted = session.post(base + "/items", json={"name": "n"}, auth=auth, timeout=30)
        check_echo(posted.json(), token, body={"name": "n", "org_id": "org-42"})
        form = session.patch(base + "/items", data={"name": "n"}, auth=auth, timeout=30)
        check_echo(form.json(), token, body={"name": "n", "org_id": "org-42"})


def test_path_field_fills_a_placeholder_or_leads_the_path(
    live: Live, sdk: AuthProfilesClient, idp: IdP, echo_server: EchoServer
) -> None:
    _, connection_id, _ = connect(live, idp, "client_credentials", echo_server.url + "/base")
    auth = sdk.auth(connection_id)  # no base_url: a field without a placeholder leads
    with httpx.Client(auth=auth, trust_env=False) as api:
        assert api.get(echo_server.url + "/x/{{workspace}}/y").json()["path"] == "/x/ws-7/y"
        assert api.get(echo_server.url + "/x/y").json()["path"] == "/ws-7/x/y"
    assert fill_path("/a/b", {"workspace": "w s"}, "/a") == "/a/w%20s/b"
    with pytest.raises(InjectionError):
        fill_path("/a", {"workspace": ".."})


def test_token_is_cached_until_shortly_before_it_expires(
    live: Live,
    sdk: AuthProfilesClient,
    counting: CountingTransport,
    idp: IdP,
    echo_server: EchoServer,
) -> None:
    _, connection_id, _ = connect(
        live, idp, "client_credentials", echo_server.url, authorization_fields=[]
    )
    token_path = f"/api/v1/connections/{connection_id}/token"
    cached = sdk.auth(connection_id)
    with httpx.Client(auth=cached, trust_env=False) as api:
        for _ in range(3):
            assert api.get(echo_server.url + "/a").status_code == 200
    assert counting.paths[token_path] == 1
    # A token within the leeway of its expiry is fetched again each time.
    expiring = sdk.auth(connection_id, leeway=2 * 3600)
    with httpx.Client(auth=expiring, trust_env=False) as api:
        for _ in range(3):
            api.get(echo_server.url + "/a")
    assert counting.paths[token_path] == 4
    assert "access_token" not in repr(sdk.get_token(connection_id))


@pytest.mark.parametrize("flavour", ["httpx", "httpx-async", "requests"])
def test_a_refused_token_is_refreshed_once_and_the_call_retried(
    live: Live,
    sdk: AuthProfilesClient,
    idp: IdP,
    echo_server: EchoServer,
    flavour: str,
) -> None:
    connection_id, client = introspected(live, idp, echo_server, authorization_fields=[])
    first = sdk.get_token(connection_id).access_token
    url = echo_server.url + "/introspected/orders"
    auth = sdk.auth(connection_id)
    with httpx.Client(auth=auth, trust_env=False) as api:
        assert api.get(url).status_code == 200  # caches the first token

    idp.revoke_all_tokens(client.client_id)
    idp.reset_counters()
    echo_server.clear_requests()
    if flavour == "httpx":
        with httpx.Client(auth=auth, trust_env=False) as api:
            response = api.post(url, json={"item": "book"})
        status, echoed = response.status_code, response.json()
    elif flavour == "httpx-async":

        async def call() -> httpx.Response:
            async with httpx.AsyncClient(auth=auth, trust_env=False) as api:
                return await api.post(url, json={"item": "book"})

        response = asyncio.run(call())
        status, echoed = response.status_code, response.json()
    else:
        requests_auth = sdk.requests_auth(connection_id)
        requests_auth.source.get()  # cache the (now refused) token first
        with requests.Session() as session:
            session.trust_env = False
            answer = session.post(url, json={"item": "book"}, auth=requests_auth, timeout=30)
        status, echoed = answer.status_code, answer.json()
        assert [r.status_code for r in answer.history] == [401]
    assert status == 200, echoed
    assert echoed["json"] == {"item": "book"}  # the body went again
    assert idp.token_requests("client_credentials") == 1
    second = sdk.get_token(connection_id).access_token
    assert second != first
    attempts = [r["headers"]["authorization"] for r in echo_server.requests()]
    assert attempts == [f"Bearer {first}", f"Bearer {second}"]


def test_clients_refused_the_same_token_cause_one_refresh(
    live: Live, sdk: AuthProfilesClient, idp: IdP, echo_server: EchoServer
) -> None:
    connection_id, client = introspected(live, idp, echo_server, authorization_fields=[])
    url = echo_server.url + "/introspected/x"
    agents = [sdk.auth(connection_id), sdk.auth(connection_id)]
    for auth in agents:
        auth.source.get()
    idp.revoke_all_tokens(client.client_id)
    idp.reset_counters()
    for auth in agents:  # each its own cache, each refused the same token
        with httpx.Client(auth=auth, trust_env=False) as api:
            assert api.get(url).status_code == 200
    assert idp.token_requests("client_credentials") == 1


def test_the_auth_error_status_comes_from_the_profile(
    live: Live, sdk: AuthProfilesClient, idp: IdP, echo_server: EchoServer
) -> None:
    _, connection_id, _ = connect(
        live,
        idp,
        "client_credentials",
        echo_server.url,
        authorization_fields=[],
        auth_error_status_code=403,
    )
    assert sdk.auth_error_status_code(connection_id) == 403
    idp.reset_counters()
    with httpx.Client(auth=sdk.auth(connection_id), trust_env=False) as api:
        assert api.get(echo_server.url + "/status/401").status_code == 401  # not an auth error
        assert idp.token_requests() == 0
        assert api.get(echo_server.url + "/status/403").status_code == 403  # retried once
    assert idp.token_requests("client_credentials") == 1


def test_the_client_covers_profiles_connections_tokens_and_tests(
    admin_sdk: AuthProfilesClient, idp: IdP, echo_server: EchoServer
) -> None:
    registered = idp.register_client("client-credentials")
    profile = admin_sdk.create_profile(
        name="sdk-profile",
        auth_type="oauth2_client_credentials",
        identity_provider="Test IdP",
        client_id=registered.client_id,
        client_secret=registered.client_secret,
        token_url=idp.token_url,
        api_base_url=echo_server.url,
        authorization_fields=AUTHORIZATION_FIELDS[:1],
        form_fields=[{"title": "Account", "key": "account"}],
    )
    assert profile["client_secret_set"] is True
    assert [p["id"] for p in admin_sdk.list_profiles()] == [profile["id"]]
    changed = admin_sdk.update_profile(profile["id"], description="via the SDK")
    assert changed["description"] == "via the SDK"
    assert admin_sdk.get_profile(profile["id"])["description"] == "via the SDK"
    tested = admin_sdk.test_profile(profile["id"], fields={"account": "acme"})
    assert tested["ok"] is True and tested["stage"] == "token"

    started = admin_sdk.create_connection(profile["id"], fields={"account": "acme"})
    connection_id = started["connection_id"]
    assert admin_sdk.get_connection(connection_id)["status"] == "active"
    assert [c["id"] for c in admin_sdk.list_connections(profile["id"])] == [connection_id]
    token = admin_sdk.get_token(connection_id)
    assert isinstance(token, Token)
    assert token.inject.headers["X-Client-Tag"] == "tag-acme"
    assert token.seconds_left() is not None
    proxied = httpx.get(
        admin_sdk.proxy_url(connection_id, "/via/proxy"),
        headers={"Authorization": admin_sdk._headers["Authorization"]},
        trust_env=False,
    )
    assert proxied.json()["headers"]["authorization"] == f"Bearer {token.access_token}"

    with pytest.raises(AuthProfilesError) as refused:
        admin_sdk.create_profile(name="", auth_type="nope")
    assert refused.value.status_code == 422
    assert {e["field"] for e in refused.value.problem["errors"]} >= {"name", "auth_type"}
    admin_sdk.delete_connection(connection_id)
    assert admin_sdk.delete_profile(profile["id"])["deleted"] is True
    with pytest.raises(AuthProfilesError) as missing:
        admin_sdk.get_profile(profile["id"])
    assert missing.value.status_code == 404


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_the_sdk_depends_on_httpx_and_requests_only() -> None:
    """Of authprofiles, the SDK imports only itself and the wire rules, which import
    nothing but the standard library."""
    allowed = {"httpx", "requests", "authprofiles"} | set(sys.stdlib_module_names)
    for path in SDK_DIR.glob("*.py"):
        for name in _imports(path):
            assert name.split(".")[0] in allowed, f"{path.name} imports {name}"
            if name.startswith("authprofiles"):
                assert name.startswith(("authprofiles.sdk", "authprofiles.wire")), (
                    f"{path.name} imports {name}"
                )
    for path in WIRE_DIR.glob("*.py"):
        for name in _imports(path):
            assert name.split(".")[0] in sys.stdlib_module_names, f"{path.name} imports {name}"
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, authprofiles.sdk; print(sorted(m for m in sys.modules "
            "if m.startswith('authprofiles') and not m.startswith('authprofiles.sdk')))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == (
        "['authprofiles', 'authprofiles.wire', 'authprofiles.wire.injection', "
        "'authprofiles.wire.refresh_once']"
    )
    assert (SDK_DIR / "py.typed").exists()


def test_the_readme_example_runs(
    live: Live,
    idp: IdP,
    echo_server: EchoServer,
    developer_headers: dict[str, str],
    tmp_path: Path,
) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## The SDK", 1)[1]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    script = tmp_path / "example.py"
    script.write_text(example)
    base = echo_server.url + "/base"
    _, connection_id, _ = connect(live, idp, "client_credentials", base)
    ran = subprocess.run(
        [sys.executable, str(script)],
        env={
            "PATH": "/usr/bin:/bin",
            "AUTHPROFILES_URL": live.url,
            "AUTHPROFILES_KEY": developer_headers["Authorization"].removeprefix("Bearer "),
            "CONNECTION_ID": connection_id,
            "API_BASE_URL": base,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0].startswith("active Bearer ")
    assert lines[1:] == ["200", "200", "200"]
    assert [r["path"] for r in echo_server.requests()] == ["/base/ws-7/me"] * 3


@pytest.mark.parametrize(
    ("url", "query", "path", "base", "expected"),
    [
        ("https://h/v1/x?a=1&key=c", {"key": "s e"}, {}, None, "https://h/v1/x?a=1&key=s%20e"),
        ("https://h/v1/x", {}, {"ws": "w 7"}, "https://h/v1", "https://h/v1/w%207/x"),
        ("https://h/v1", {}, {"ws": "w"}, "https://h/v1/", "https://h/v1/w"),
        ("https://h/a/%7B%7Bws%7D%7D", {}, {"ws": "w"}, None, "https://h/a/w"),
        ("https://h/other/x", {}, {"ws": "w"}, "https://h/v1", "https://h/w/other/x"),
    ],
)
def test_inject_hints_on_urls(
    url: str, query: dict[str, str], path: dict[str, str], base: str | None, expected: str
) -> None:
    assert apply_to_url(url, query, path, base) == expected


def test_inject_hints_on_bodies() -> None:
    assert merge_body(b"", None, {"o": "1"}) == (b'{"o": "1"}', "application/json")
    assert merge_body(b'{"a": 1}', "application/json", {"o": "1"})[0] == b'{"a": 1, "o": "1"}'
    form = merge_body(b"a=1&o=x", "application/x-www-form-urlencoded", {"o": "1"})
    assert form == (b"a=1&o=1", "application/x-www-form-urlencoded")
    for body, media in ((b"[1]", "application/json"), (b"text", "text/plain")):
        with pytest.raises(InjectionError):
            merge_body(body, media, {"o": "1"})
    assert carries_payload("post", False) and not carries_payload("GET", False)
