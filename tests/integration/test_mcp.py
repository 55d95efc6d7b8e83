"""The MCP face end to end, with the ``mcp`` SDK's own client: over streamable HTTP against
the live app, and over stdio through ``authprofiles mcp`` relaying to it; a real IdP and the
echo upstream behind.

The tools call through the proxy, so the grant's rules, approvals and redaction hold; a
refused call is an error result carrying the problem. ``/mcp`` is an OAuth-protected
resource: its 401 leads a client to the resource's metadata, then the authorization
server's, then a client-credentials token for ``/mcp``; a token for another resource, an
API key, an expired or revoked grant are refused.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx
import pytest
from mcp import types
from mcp.client.auth import TokenStorage
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

from authprofiles.store.models import AgentGrantRow, ConnectionRow
from tests.integration.test_openapi_descriptions import undescribed
from tests.support.agents import mint_grant
from tests.support.app import Live, oauth_profile
from tests.support.echo import EchoServer
from tests.support.idp import IdP

pytestmark = pytest.mark.idp
SQLITE_ONLY = True

QUERY_SECRET = "query-secret-" + uuid.uuid4().hex
T = TypeVar("T")


def run(main: Callable[[], Awaitable[T]]) -> T:
    return anyio.run(main)


@pytest.fixture
def connection_id(live: Live, idp: IdP, echo_server: EchoServer) -> str:
    """A client-credentials connection to the echo's /api, with a credential in the query
    (which an echoing API would hand back, were it not redacted)."""
    profile, _ = oauth_profile(
        live,
        idp,
        "client-credentials",
        name=f"billing-{uuid.uuid4().hex[:6]}",
        api_base_url=echo_server.url + "/api",
        authorization_fields=[{"type": "query", "key": "api_key", "value": QUERY_SECRET}],
    )
    return str(live.connect(profile["id"])["connection_id"])


def grant(live: Live, connection_ids: list[str], rules: list[dict[str, Any]]) -> dict[str, Any]:
    return mint_grant(live, connection_ids, rules, agent="mcp-agent")


@asynccontextmanager
async def mcp_client(
    url: str, token: str | None = None, auth: httpx.Auth | None = None
) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx.AsyncClient(headers=headers, auth=auth, timeout=30, trust_env=False) as http,
        streamable_http_client(url + "/mcp", http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def answer(result: types.CallToolResult) -> dict[str, Any]:
    """The tool's JSON answer: the structured content, the same as its text."""
    assert result.structuredContent is not None
    assert len(result.content) == 1 and isinstance(result.content[0], types.TextContent)
    assert json.loads(result.content[0].text) == result.structuredContent
    return result.structuredContent


def post_mcp(live: Live, token: str | None) -> httpx.Response:
    """An initialize request, as any MCP client opens with."""
    headers = {"Accept": "application/json, text/event-stream"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(
        live.url + "/mcp",
        headers=headers,
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": types.LATEST_PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "test", "version": "1"},
            },
        },
        timeout=30,
        trust_env=False,
    )


def test_the_tools_list_connections_call_through_the_proxy_and_refuse_what_the_grant_does_not_allow(
    live: Live, connection_id: str, echo_server: EchoServer
) -> None:
    created = grant(live, [connection_id], [{"methods": ["GET"], "path": "/items/**"}])
    echo_server.clear_requests()

    async def main() -> None:
        async with mcp_client(live.url, created["token"]) as mcp:
            tools = await mcp.list_tools()
            assert [t.name for t in tools.tools] == ["list_connections", "http_request", "connect"]

            listed = answer(await mcp.call_tool("list_connections", {}))
            assert listed["agent"] == "mcp-agent"
            assert listed["rules"] == [
                {"methods": ["GET"], "path": "/items/**", "host": None, "approval": False}
            ]
            (connection,) = listed["connections"]
            assert connection["id"] == connection_id
            assert connection["status"] == "active"
            assert connection["profile_name"].startswith("billing-")
            assert connection["expires_at"]
            assert "token" not in json.dumps(listed).replace("expires_at", "")

            called = await mcp.call_tool(
                "http_request",
                {
                    "connection_id": connection_id,
                    "method": "get",
                    "path": "/items/42",
                    "query": {"q": "a b", "tag": ["x", "y"]},
                    "headers": {"X-Trace": "t-1", "Authorization": "Bearer from-the-agent"},
                },
            )
            assert not called.isError, called
            got = answer(called)
            assert got["status"] == 200
            assert got["body_encoding"] == "text" and not got["truncated"]
            assert got["headers"]["content-type"] == "application/json"
            echoed = json.loads(got["body"])
            assert echoed["method"] == "GET"
            assert echoed["path"] == "/api/items/42"
            assert echoed["headers"]["x-trace"] == "t-1"
            assert "q=a%20b&tag=x&tag=y" in echoed["query"]
            # The injected credential reached the API, and never came back to the agent.
            assert "api_key=%5Bredacted%5D" in echoed["query"] or "[redacted]" in got["body"]
            assert QUERY_SECRET not in json.dumps(got)
            # Neither the agent's own token nor an Authorization it sends goes upstream.
            assert "from-the-agent" not in got["body"]
            assert created["token"] not in got["body"]
            assert "Bearer " not in json.dumps(got)

            refused = await mcp.call_tool(
                "http_request",
                {"connection_id": connection_id, "method": "POST", "path": "/items/42", "body": {}},
            )
            assert refused.isError
            problem = answer(refused)
            assert problem["status"] == 403
            assert problem["type"].endswith("/grant-rule")
            assert problem["failed_rules"]

            elsewhere = answer(
                await mcp.call_tool(
                    "http_request",
                    {"connection_id": str(uuid.uuid4()), "method": "GET", "path": "/items/1"},
                )
            )
            assert elsewhere["status"] == 403

            invalid = await mcp.call_tool("http_request", {"connection_id": connection_id})
            assert invalid.isError
            assert answer(invalid)["status"] == 422
            assert {e["field"] for e in answer(invalid)["errors"]} == {"method", "path"}

    run(main)
    requests = echo_server.requests()
    assert len(requests) == 1  # the refused calls reached nothing
    assert QUERY_SECRET in requests[0]["query"]


def test_a_held_call_is_an_error_result_with_its_approval_url_and_passes_once_approved(
    live: Live, connection_id: str
) -> None:
    created = grant(
        live, [connection_id], [{"methods": ["POST"], "path": "/pay", "approval": True}]
    )
    call = {
        "connection_id": connection_id,
        "method": "POST",
        "path": "/pay",
        "body": {"amount": 5},
    }

    async def held() -> dict[str, Any]:
        async with mcp_client(live.url, created["token"]) as mcp:
            result = await mcp.call_tool("http_request", call)
            assert result.isError
            return answer(result)

    problem = run(held)
    assert problem["status"] == 403
    assert problem["type"].endswith("/approval-required")
    assert problem["approval_url"].startswith(live.url)
    approved = live.http.post(f"/api/v1/approvals/{problem['approval_id']}/approve")
    assert approved.status_code == 200, approved.text

    async def again() -> dict[str, Any]:
        async with mcp_client(live.url, created["token"]) as mcp:
            result = await mcp.call_tool("http_request", call)
            assert not result.isError, result
            return answer(result)

    sent = run(again)
    assert sent["status"] == 200
    assert json.loads(sent["body"])["json"] == {"amount": 5}


def test_connect_hands_out_the_authorization_url_and_a_needs_reauth_call_asks_for_consent(
    live: Live, idp: IdP, echo_server: EchoServer, user: tuple[str, str]
) -> None:
    profile, _ = oauth_profile(
        live,
        idp,
        "authorization-code",
        name=f"crm-{uuid.uuid4().hex[:6]}",
        scopes=["read"],
        api_base_url=echo_server.url + "/crm",
    )
    pending = live.connect(profile["id"])["connection_id"]
    created = grant(live, [pending], [{"methods": ["GET"], "path": "/**"}])

    async def connect(reference: str) -> types.CallToolResult:
        async with mcp_client(live.url, created["token"]) as mcp:
            return await mcp.call_tool("connect", {"profile_id": reference})

    started = answer(run(lambda: connect(profile["name"])))
    assert started["connection_id"] == pending
    assert started["profile_id"] == profile["id"]
    assert started["authorization_url"].startswith(idp.authorization_url)
    # The person follows it; the connection then works for the agent.
    callback = idp.log_in_and_consent(started["authorization_url"], *user)
    page = httpx.get(callback, timeout=30, trust_env=False)
    assert 'data-ok="true"' in page.text, page.text

    unknown = run(lambda: connect("no-such-profile"))
    assert unknown.isError
    assert answer(unknown)["status"] == 404

    async def call() -> tuple[str, types.CallToolResult]:
        async with mcp_client(live.url, created["token"]) as mcp:
            listed = answer(await mcp.call_tool("list_connections", {}))
            return listed["connections"][0]["status"], await mcp.call_tool(
                "http_request", {"connection_id": pending, "method": "GET", "path": "/me"}
            )

    status, called = run(call)
    assert status == "active"
    assert answer(called)["status"] == 200

    # The identity provider stops taking the grant: the agent is told what its person does.
    with live.services.db.session() as session:
        row = session.get(ConnectionRow, pending)
        assert row is not None
        row.status = "needs_reauth"
    live.services.token_issuing.forget(pending)
    status, consent = run(call)
    assert status == "needs_reauth"
    assert consent.isError
    problem = answer(consent)
    assert problem["status"] == 409
    assert problem["type"] == "/problems/consent-required"
    assert problem["authorization_url"].startswith(idp.authorization_url)


def test_a_401_leads_a_standard_client_to_a_token_for_mcp(live: Live, connection_id: str) -> None:
    created = grant(live, [connection_id], [{"methods": ["GET"], "path": "/**"}])

    challenged = post_mcp(live, None)
    assert challenged.status_code == 401
    metadata_url = f"{live.url}/.well-known/oauth-protected-resource/mcp"
    challenge = challenged.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert f'resource_metadata="{metadata_url}"' in challenge
    assert "error=" not in challenge  # no credential came: no error code (RFC 6750 3.1)

    for where in (metadata_url, f"{live.url}/.well-known/oauth-protected-resource"):
        resource = httpx.get(where, trust_env=False).json()
        assert resource["resource"] == f"{live.url}/mcp"
        assert resource["authorization_servers"] == [live.url]
    server = httpx.get(f"{live.url}/.well-known/oauth-authorization-server", trust_env=False)
    assert server.status_code == 200
    assert server.json()["issuer"] == live.url
    assert server.json()["token_endpoint"] == f"{live.url}/oauth/token"
    assert server.json()["grant_types_supported"] == ["client_credentials"]

    # The SDK's own OAuth client: 401, both metadata documents, a token, the call again.
    storage = MemoryStorage()
    provider = ClientCredentialsOAuthProvider(
        server_url=f"{live.url}/mcp",
        storage=storage,
        client_id=created["id"],
        client_secret=created["token"],
        issuer=live.url,
    )

    async def main() -> dict[str, Any]:
        async with mcp_client(live.url, auth=provider) as mcp:
            return answer(await mcp.call_tool("list_connections", {}))

    listed = run(main)
    assert listed["connections"][0]["id"] == connection_id
    assert storage.tokens is not None
    assert storage.tokens.access_token.startswith("apt_")
    # The access token is for /mcp alone.
    proxied = httpx.get(
        f"{live.url}/api/v1/proxy/{connection_id}/x",
        headers={"Authorization": f"Bearer {storage.tokens.access_token}"},
        trust_env=False,
    )
    assert proxied.status_code == 401, proxied.text


def test_a_token_for_another_audience_or_an_api_key_is_refused_on_mcp(
    live: Live, connection_id: str
) -> None:
    created = grant(live, [connection_id], [{"methods": ["GET"], "path": "/**"}])
    token_url = f"{live.url}/oauth/token"
    proxy_resource = f"{live.url}/api/v1/proxy"
    issued = httpx.post(
        token_url,
        data={"grant_type": "client_credentials", "resource": proxy_resource},
        auth=(created["id"], created["token"]),
        trust_env=False,
    )
    assert issued.status_code == 200, issued.text
    assert issued.headers["Cache-Control"] == "no-store"
    for_proxy = issued.json()
    assert for_proxy["token_type"] == "Bearer"
    assert 0 < for_proxy["expires_in"] <= 3600

    refused = post_mcp(live, for_proxy["access_token"])
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert "resource_metadata=" in refused.headers["WWW-Authenticate"]
    assert "issued for" in refused.json()["detail"]
    # It is good where it was issued for.
    proxied = httpx.get(
        f"{live.url}/api/v1/proxy/{connection_id}/x",
        headers={"Authorization": f"Bearer {for_proxy['access_token']}"},
        trust_env=False,
    )
    assert proxied.status_code == 200, proxied.text

    # client_secret_post, for /mcp (the default resource): taken.
    for_mcp = httpx.post(
        token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": created["id"],
            "client_secret": created["token"],
        },
        trust_env=False,
    ).json()["access_token"]
    assert post_mcp(live, for_mcp).status_code == 200
    assert post_mcp(live, created["token"]).status_code == 200

    api_key = live.http.headers["authorization"].removeprefix("Bearer ")
    assert post_mcp(live, api_key).status_code == 401
    assert post_mcp(live, "apg_0000_unknown").status_code == 401

    def token_error(data: dict[str, str], auth: tuple[str, str] | None = None) -> tuple[int, str]:
        response = httpx.post(token_url, data=data, auth=auth, trust_env=False)
        assert response.headers["Cache-Control"] == "no-store"
        return response.status_code, response.json()["error"]

    cc = {"grant_type": "client_credentials"}
    assert token_error(cc, (created["id"], "apg_wrong_secret")) == (401, "invalid_client")
    assert token_error(cc, (str(uuid.uuid4()), created["token"])) == (401, "invalid_client")
    assert token_error(cc) == (401, "invalid_client")
    assert token_error(
        {**cc, "resource": "https://elsewhere.example/mcp"},
        (
            created["id"],
            created["token"],
        ),
    ) == (400, "invalid_target")
    assert token_error({"grant_type": "password"}, (created["id"], created["token"])) == (
        400,
        "unsupported_grant_type",
    )


def test_an_expired_or_revoked_grant_and_its_access_tokens_are_401_on_mcp(
    live: Live, connection_id: str
) -> None:
    expiring = grant(live, [connection_id], [{"methods": ["GET"], "path": "/**"}])
    revoked = grant(live, [connection_id], [{"methods": ["GET"], "path": "/**"}])
    issued = httpx.post(
        f"{live.url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(revoked["id"], revoked["token"]),
        trust_env=False,
    ).json()["access_token"]
    assert post_mcp(live, issued).status_code == 200
    with live.services.db.session() as session:
        row = session.get(AgentGrantRow, expiring["id"])
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    assert live.http.delete(f"/api/v1/agent-grants/{revoked['id']}").status_code == 204
    for token in (expiring["token"], revoked["token"], issued):
        response = post_mcp(live, token)
        assert response.status_code == 401, response.text
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_mcp_takes_only_posts_and_refuses_another_origin(live: Live, connection_id: str) -> None:
    created = grant(live, [connection_id], [{"methods": ["GET"], "path": "/**"}])
    headers = {"Authorization": f"Bearer {created['token']}"}
    got = httpx.get(live.url + "/mcp", headers=headers, trust_env=False)
    assert got.status_code == 405
    assert got.headers["Allow"] == "POST"
    foreign = httpx.post(
        live.url + "/mcp",
        headers={**headers, "Origin": "https://evil.example"},
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
        trust_env=False,
    )
    assert foreign.status_code == 403


def test_authprofiles_mcp_serves_the_tools_over_stdio_as_a_client_of_the_server(
    live: Live, connection_id: str, echo_server: EchoServer, tmp_path: Path
) -> None:
    created = grant(live, [connection_id], [{"methods": ["GET"], "path": "/**"}])
    script = Path(sys.executable).with_name("authprofiles")
    command, args = (
        (str(script), ["mcp"])
        if script.exists()
        else (sys.executable, ["-m", "authprofiles.cli.main", "mcp"])
    )
    parameters = StdioServerParameters(
        command=command,
        args=args,
        env={
            "AUTHPROFILES_URL": live.url,
            "AUTHPROFILES_AGENT_TOKEN": created["token"],
            "NO_PROXY": "127.0.0.1,localhost",
        },
        cwd=tmp_path,  # no database here: it needs none
    )
    stderr = tmp_path / "stderr.log"

    async def main() -> None:
        with stderr.open("w") as errlog:
            async with (
                stdio_client(parameters, errlog=errlog) as (read, write),
                ClientSession(read, write) as mcp,
            ):
                initialized = await mcp.initialize()
                assert initialized.serverInfo.name == "authprofiles"
                tools = await mcp.list_tools()
                assert {t.name for t in tools.tools} == {
                    "list_connections",
                    "http_request",
                    "connect",
                }
                listed = answer(await mcp.call_tool("list_connections", {}))
                assert [c["id"] for c in listed["connections"]] == [connection_id]
                called = await mcp.call_tool(
                    "http_request",
                    {"connection_id": connection_id, "method": "GET", "path": "/stdio"},
                )
                assert not called.isError, called
                assert json.loads(answer(called)["body"])["path"] == "/api/stdio"

                revoked = live.http.delete(f"/api/v1/agent-grants/{created['id']}")
                assert revoked.status_code == 204
                refused = await mcp.call_tool(
                    "http_request",
                    {"connection_id": connection_id, "method": "GET", "path": "/stdio"},
                )
                assert refused.isError
                assert answer(refused)["status"] == 401

    try:
        run(main)
    finally:
        print(stderr.read_text())
    assert created["token"] not in stderr.read_text()


def test_the_schema_describes_the_mcp_face(live: Live) -> None:
    schema = live.http.get("/openapi.json").json()
    assert {
        ("post", "/mcp"),
        ("post", "/oauth/token"),
        ("get", "/oauth/authorize"),
        ("get", "/.well-known/oauth-protected-resource/mcp"),
        ("get", "/.well-known/oauth-protected-resource"),
        ("get", "/.well-known/oauth-authorization-server"),
    } <= {(method, path) for path, item in schema["paths"].items() for method in item}
    assert "AgentBearer" in schema["components"]["securitySchemes"]
    ours = (
        "ProtectedResourceMetadata.",
        "AuthorizationServerMetadata.",
        "AccessTokenIssued.",
        "OAuthErrorAnswer.",
    )
    assert [lack for lack in undescribed(schema) if lack.startswith(ours)] == []


class MemoryStorage(TokenStorage):
    """The OAuth client's storage: in memory, for the test to look at."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info
