"""A canary token planted in connections appears nowhere an agent or an operator can see it.

One test plants a known access and refresh token in two connections (one whose API
answers, one whose API cannot be reached, the token also in its query string), then drives
every path an agent and an operator reach: calls through the proxy inside and outside a
grant, a held call and its approval, a spent budget, the token endpoint refused to the
agent, an unreachable upstream, the MCP face's tools (their results and their errors).
It collects every answer (bodies and headers), every log line, every span and the
metrics, and counts the canary in them: zero.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from authprofiles.core.connections import TokenSet
from tests.support.agents import agent_client, mint_grant
from tests.support.app import Live, oauth_profile
from tests.support.echo import EchoServer
from tests.support.idp import IdP
from tests.support.live import free_port
from tests.support.telemetry import SpanCollector, metrics_text

pytestmark = pytest.mark.idp
SQLITE_ONLY = True

CANARY = "canary-" + uuid.uuid4().hex
CANARY_REFRESH = "canary-refresh-" + uuid.uuid4().hex


def plant(live: Live, connection_id: str) -> None:
    """Store the canary as the connection's tokens, as a token response would."""
    services = live.services
    with services.db.session() as session:
        row = services.connection_store.locked_row(session, connection_id)
        assert row is not None
        services.connection_store.store_tokens(
            row,
            TokenSet(
                access_token=CANARY,
                token_type="Bearer",
                refresh_token=CANARY_REFRESH,
                expires_at=datetime.now(UTC) + timedelta(hours=1),
            ),
            requested=(),
        )
    services.token_issuing.forget(connection_id)


def seen(response: httpx.Response) -> str:
    """Everything a caller sees of an answer."""
    headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    return f"{response.status_code}\n{headers}\n{response.text}"


def test_a_canary_token_appears_nowhere(
    live: Live,
    idp: IdP,
    echo_server: EchoServer,
    collected_spans: SpanCollector,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    query_field = [{"type": "query", "key": "api_key", "value": "{{access_token}}"}]
    answering, _ = oauth_profile(
        live,
        idp,
        "client-credentials",
        api_base_url=echo_server.url + "/api",
        authorization_fields=query_field,
    )
    unreachable, _ = oauth_profile(
        live,
        idp,
        "client-credentials",
        api_base_url=f"http://127.0.0.1:{free_port()}/api",
        authorization_fields=query_field,
    )
    echo_id = str(live.connect(answering["id"])["connection_id"])
    dead_id = str(live.connect(unreachable["id"])["connection_id"])
    plant(live, echo_id)
    plant(live, dead_id)

    def mint(rules: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return mint_grant(live, [echo_id, dead_id], rules, agent="canary-agent", **extra)

    grant = mint(
        [
            {"methods": ["GET", "PUT"], "path": "/**"},
            {"methods": ["POST"], "path": "/send/**", "approval": True},
        ]
    )
    spent = mint([{"methods": ["GET"], "path": "/**"}], max_calls=1)
    answers: list[str] = []
    with agent_client(live, grant["token"]) as agent:
        echo = f"/api/v1/proxy/{echo_id}"
        echoed = agent.put(f"{echo}/echo?x=1", json={"hello": "world"})
        assert echoed.status_code == 200, echoed.text
        assert "[redacted]" in echoed.text  # the echo did give it back
        answers.append(seen(echoed))
        answers.append(seen(agent.get(f"{echo}/bytes/100000")))
        answers.append(seen(agent.delete(f"{echo}/outside")))
        answers.append(seen(agent.get(f"{echo}/%2e%2e/x")))
        held = agent.post(f"{echo}/send/1", json={"n": 1})
        assert held.status_code == 403
        answers.append(seen(held))
        answers.append(seen(live.http.get("/api/v1/approvals")))
        decided = live.http.post(f"/api/v1/approvals/{held.json()['approval_id']}/approve")
        answers.append(seen(decided))
        answers.append(seen(agent.post(f"{echo}/send/1", json={"n": 1})))
        answers.append(seen(agent.get(f"/api/v1/connections/{echo_id}/token")))
        answers.append(seen(agent.get(f"/api/v1/connections/{echo_id}")))
        unreachable_answer = agent.get(f"/api/v1/proxy/{dead_id}/x")
        assert unreachable_answer.status_code == 502, unreachable_answer.text
        answers.append(seen(unreachable_answer))
    with agent_client(live, spent["token"]) as budgeted:
        answers.append(seen(budgeted.get(f"/api/v1/proxy/{echo_id}/one")))
        over = budgeted.get(f"/api/v1/proxy/{echo_id}/two")
        assert over.status_code == 429
        answers.append(seen(over))

    answers += asyncio.run(mcp_answers(live.url, grant["token"], echo_id))

    live.services.agent_calls.flush()
    answers.append(seen(live.http.get("/api/v1/audit", params={"limit": 1000})))
    answers.append(seen(live.http.get("/api/v1/agent-grants")))
    answers.append(seen(live.http.get(f"/api/v1/connections/{echo_id}")))

    collected = {
        "answers": "\n".join(answers),
        "logs": caplog.text,
        "spans": collected_spans.text(),
        "metrics": metrics_text(live.url),
    }
    assert collected_spans.names(), "no span was recorded: the canary was looked for in nothing"
    leaks = {where: text.count(CANARY) for where, text in collected.items() if CANARY in text}
    assert leaks == {}, f"the canary token leaked: {leaks}"
    refresh_leaks = [where for where, text in collected.items() if CANARY_REFRESH in text]
    assert refresh_leaks == []


async def mcp_answers(base_url: str, token: str, connection_id: str) -> list[str]:
    """Every MCP tool's result, and a refused call's, as text."""
    texts = []
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx.AsyncClient(headers=headers, timeout=30, trust_env=False) as http,
        streamable_http_client(f"{base_url}/mcp", http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        for name, arguments in (
            ("list_connections", {}),
            ("http_request", {"connection_id": connection_id, "method": "GET", "path": "/echo"}),
            (
                "http_request",
                {"connection_id": connection_id, "method": "PUT", "path": "/echo", "body": "x"},
            ),
            ("http_request", {"connection_id": connection_id, "method": "DELETE", "path": "/x"}),
        ):
            result = await session.call_tool(name, arguments)
            texts.append(result.model_dump_json())
    # The echo gave the token back to the tool too, and the tool's result hides it.
    assert '"status":200' in texts[1], texts[1]
    assert "[redacted]" in texts[1], texts[1]
    assert texts[3].count('"isError":true') == 1, texts[3]
    return texts
