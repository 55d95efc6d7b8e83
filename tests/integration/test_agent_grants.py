"""Agent grants end to end: the real app over HTTP, a real IdP, the echo upstream.

A grant works only through the proxy; its rules are checked before any token is read, so
a refused call reaches nothing; its budget and rate answer 429; an expired or revoked one
401; path tricks never escape an allow rule; held calls wait for a person; and an echoing
upstream cannot hand the injected credentials back.
"""

from __future__ import annotations

import http.client
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from authprofiles.store.models import AgentGrantRow
from tests.support.agents import ASK_BEFORE_CHANGES, agent_client, mint_grant
from tests.support.app import Live, oauth_profile
from tests.support.echo import EchoServer
from tests.support.idp import IdP
from tests.support.telemetry import metric_value, metrics_text

pytestmark = pytest.mark.idp
SQLITE_ONLY = True

QUERY_SECRET = "query-secret-" + uuid.uuid4().hex


@pytest.fixture
def connection_id(live: Live, idp: IdP, echo_server: EchoServer) -> str:
    profile, _ = oauth_profile(
        live,
        idp,
        "client-credentials",
        api_base_url=echo_server.url + "/api",
        authorization_fields=[{"type": "query", "key": "api_key", "value": QUERY_SECRET}],
    )
    return str(live.connect(profile["id"])["connection_id"])


def raw_get(live: Live, token: str, path: str) -> tuple[int, dict[str, Any]]:
    """GET exactly ``path`` as written: no client normalises its dots or escapes."""
    url = urlsplit(live.url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=30)
    try:
        connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        body = response.read()
        try:
            document = json.loads(body) if body else {}
        except ValueError:
            document = {"raw": body.decode("latin-1")}
        return response.status, document
    finally:
        connection.close()


def test_a_call_outside_the_grant_is_refused_and_reaches_nothing(
    live: Live, connection_id: str, echo_server: EchoServer
) -> None:
    created = mint_grant(live, connection_id, [{"methods": ["GET"], "path": "/repos/**"}])
    echo_server.clear_requests()
    with agent_client(live, created["token"]) as client:
        base = f"/api/v1/proxy/{connection_id}"
        for method, path in (("POST", "/repos/a"), ("GET", "/admin"), ("DELETE", "/repos/a/b")):
            refused = client.request(method, base + path, json={"x": 1})
            assert refused.status_code == 403, refused.text
            problem = refused.json()
            assert problem["type"].endswith("/grant-rule")
            assert "rule 1 (GET /repos/**)" in problem["detail"]
            assert problem["failed_rules"]
        assert echo_server.requests() == []

        allowed = client.get(base + "/repos/acme/issues")
        assert allowed.status_code == 200, allowed.text
        assert allowed.json()["path"] == "/api/repos/acme/issues"
        assert len(echo_server.requests()) == 1

        # A connection the grant does not name is refused the same way.
        other = client.get(f"/api/v1/proxy/{uuid.uuid4()}/repos/x")
        assert other.status_code == 403
        assert len(echo_server.requests()) == 1


def test_the_eleventh_call_of_a_ten_call_budget_is_429(
    live: Live, connection_id: str, echo_server: EchoServer
) -> None:
    created = mint_grant(live, connection_id, [{"methods": ["GET"], "path": "/**"}], max_calls=10)
    echo_server.clear_requests()
    with agent_client(live, created["token"]) as client:
        base = f"/api/v1/proxy/{connection_id}"
        # Refused calls do not count against the budget.
        assert client.post(base + "/x").status_code == 403
        for n in range(10):
            response = client.get(f"{base}/call/{n}")
            assert response.status_code == 200, (n, response.text)
        eleventh = client.get(base + "/call/10")
        assert eleventh.status_code == 429, eleventh.text
        assert "budget of 10 calls" in eleventh.json()["detail"]
    assert len(echo_server.requests()) == 10
    listed = live.http.get("/api/v1/agent-grants").json()
    mine = next(g for g in listed if g["id"] == created["id"])
    assert mine["calls_made"] == 10
    assert "token" not in mine


def test_over_the_rate_is_429_with_retry_after(live: Live, connection_id: str) -> None:
    created = mint_grant(
        live, connection_id, [{"methods": ["GET"], "path": "/**"}], rate_per_minute=3
    )
    with agent_client(live, created["token"]) as client:
        statuses = []
        # A minute may turn between two calls: then a few more pass, never more than six.
        for _ in range(7):
            response = client.get(f"/api/v1/proxy/{connection_id}/r")
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert 1 <= int(response.headers["Retry-After"]) <= 60
                break
        assert statuses[-1] == 429, statuses
        assert statuses.count(200) <= 6


def test_an_expired_or_revoked_grant_is_401(live: Live, connection_id: str) -> None:
    expiring = mint_grant(live, connection_id, [{"methods": ["GET"], "path": "/**"}])
    revoked = mint_grant(live, connection_id, [{"methods": ["GET"], "path": "/**"}])
    with live.services.db.session() as session:
        row = session.get(AgentGrantRow, expiring["id"])
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    deleted = live.http.delete(f"/api/v1/agent-grants/{revoked['id']}")
    assert deleted.status_code == 204
    for created in (expiring, revoked):
        with agent_client(live, created["token"]) as client:
            response = client.get(f"/api/v1/proxy/{connection_id}/x")
            assert response.status_code == 401, response.text
    statuses = {g["id"]: g["status"] for g in live.http.get("/api/v1/agent-grants").json()}
    assert statuses[expiring["id"]] == "expired"
    assert statuses[revoked["id"]] == "revoked"


def test_revoking_an_agent_revokes_all_its_grants(live: Live, connection_id: str) -> None:
    first = mint_grant(live, connection_id, [{"methods": ["GET"], "path": "/**"}], agent="sweeper")
    second = mint_grant(live, connection_id, [{"methods": ["GET"], "path": "/**"}], agent="sweeper")
    response = live.http.delete("/api/v1/agent-grants", params={"agent": "sweeper"})
    assert response.status_code == 200, response.text
    assert set(response.json()["revoked"]) == {first["id"], second["id"]}
    with agent_client(live, second["token"]) as client:
        assert client.get(f"/api/v1/proxy/{connection_id}/x").status_code == 401


def test_the_grant_works_only_on_the_proxy(live: Live, connection_id: str) -> None:
    created = mint_grant(live, connection_id, [{"methods": ["GET", "POST"], "path": "/**"}])
    with agent_client(live, created["token"]) as client:
        for method, path in (
            ("GET", f"/api/v1/connections/{connection_id}/token"),
            ("POST", f"/api/v1/connections/{connection_id}/token/refresh"),
            ("GET", f"/api/v1/connections/{connection_id}"),
            ("GET", "/api/v1/profiles"),
            ("GET", "/api/v1/agent-grants"),
            ("POST", "/api/v1/api-keys"),
            ("GET", "/api/v1/approvals"),
        ):
            response = client.request(method, path, json={"name": "x", "role": "admin"})
            assert response.status_code == 403, (path, response.text)
            assert response.json()["type"].endswith("/agent-credential")
            assert "access_token" not in response.text


@pytest.mark.parametrize(
    "path",
    [
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public/%2E%2E/admin",
        "/public%2F..%2Fadmin",
        "/public/%2fadmin",
        "/public/%252e%252e/admin",
        "/public/%252fadmin",
        "/public/..;/admin",
        "/public/.%2e/admin",
        "/public/%5c..%5cadmin",
        "/public//admin",
        "/public/./x",
        "/PUBLIC/x",
        "/Public/x",
        "/public%00/x",
    ],
)
def test_path_tricks_never_escape_an_allow_rule(
    live: Live, connection_id: str, echo_server: EchoServer, path: str
) -> None:
    created = mint_grant(live, connection_id, [{"methods": ["GET"], "path": "/public/**"}])
    echo_server.clear_requests()
    status, problem = raw_get(live, created["token"], f"/api/v1/proxy/{connection_id}{path}")
    assert status in (400, 403), (status, problem)
    assert echo_server.requests() == []


def test_an_echoing_upstream_cannot_hand_the_credentials_back(
    live: Live, connection_id: str
) -> None:
    token = live.token(connection_id).json()["access_token"]
    created = mint_grant(live, connection_id, [{"methods": ["GET", "POST"], "path": "/**"}])
    with agent_client(live, created["token"]) as client:
        echoed = client.post(
            f"/api/v1/proxy/{connection_id}/echo?x=1",
            json={"note": "hello"},
            headers={"Accept-Encoding": "gzip"},
        )
    assert echoed.status_code == 200, echoed.text
    assert token not in echoed.text
    assert QUERY_SECRET not in echoed.text
    document = echoed.json()
    assert document["headers"]["authorization"] == "[redacted]"  # the whole injected value
    assert "[redacted]" in document["query"]
    assert document["headers"]["accept-encoding"] == "identity"
    assert int(echoed.headers["content-length"]) == len(echoed.content)
    for value in echoed.headers.values():
        assert token not in value


def test_every_agent_call_is_in_the_audit_log(live: Live, connection_id: str) -> None:
    created = mint_grant(
        live, connection_id, [{"methods": ["GET"], "path": "/**"}], agent="auditor-agent"
    )
    with agent_client(live, created["token"]) as client:
        assert client.get(f"/api/v1/proxy/{connection_id}/seen").status_code == 200
        assert client.delete(f"/api/v1/proxy/{connection_id}/seen").status_code == 403
    live.services.agent_calls.flush()
    entries = live.http.get("/api/v1/audit", params={"actor": created["id"]}).json()
    actions = {(e["action"], e["detail"].get("method")) for e in entries}
    assert ("agent.called", "GET") in actions
    assert ("agent.refused", "DELETE") in actions
    assert all(
        e["actor"] == {"type": "agent", "id": created["id"], "name": "auditor-agent"}
        for e in entries
    )


def test_a_held_call_waits_for_a_person_and_goes_through_once(
    live: Live, connection_id: str, echo_server: EchoServer
) -> None:
    created = mint_grant(
        live,
        connection_id,
        ASK_BEFORE_CHANGES,
    )
    echo_server.clear_requests()
    url = f"/api/v1/proxy/{connection_id}/invoices/7/send"
    with agent_client(live, created["token"]) as client:
        held = client.post(url, json={"amount": 10})
        assert held.status_code == 403, held.text
        problem = held.json()
        assert problem["type"].endswith("/approval-required")
        assert problem["approval_url"].endswith(f"/console/approvals/{problem['approval_id']}")
        assert echo_server.requests() == []

        # The same call again while it waits: the same approval, not a second one.
        again = client.post(url, json={"amount": 10}).json()
        assert again["approval_id"] == problem["approval_id"]
        # The agent may not decide.
        refused = client.post(f"/api/v1/approvals/{problem['approval_id']}/approve")
        assert refused.status_code == 403

        listed = live.http.get("/api/v1/approvals", params={"status": "pending"}).json()
        pending = next(a for a in listed if a["id"] == problem["approval_id"])
        assert pending["method"] == "POST"
        assert pending["url"].endswith("/api/invoices/7/send")
        assert QUERY_SECRET not in pending["url"]
        assert json.loads(pending["body_preview"]) == {"amount": 10}
        assert metric_value(metrics_text(live.url), "authprofiles_approvals_pending") >= 1

        approved = live.http.post(f"/api/v1/approvals/{problem['approval_id']}/approve")
        assert approved.status_code == 200, approved.text
        assert approved.json()["status"] == "approved"
        twice = live.http.post(f"/api/v1/approvals/{problem['approval_id']}/deny")
        assert twice.status_code == 409

        # A changed call is not the approved one.
        changed = client.post(url, json={"amount": 1000})
        assert changed.status_code == 403
        assert echo_server.requests() == []

        sent = client.post(url, json={"amount": 10})
        assert sent.status_code == 200, sent.text
        assert len(echo_server.requests()) == 1
        replay = client.post(url, json={"amount": 10})
        assert replay.status_code == 403
        assert replay.json()["approval_id"] != problem["approval_id"]
        assert len(echo_server.requests()) == 1

        used = live.http.get(f"/api/v1/approvals/{problem['approval_id']}").json()
        assert used["status"] == "used"

        # A denied call never reaches the upstream.
        deleted = client.delete(f"/api/v1/proxy/{connection_id}/invoices/7")
        denial = live.http.post(f"/api/v1/approvals/{deleted.json()['approval_id']}/deny")
        assert denial.json()["status"] == "denied"
        assert client.delete(f"/api/v1/proxy/{connection_id}/invoices/7").status_code == 403
        assert len(echo_server.requests()) == 1


def test_prefer_wait_holds_the_call_until_a_person_decides(
    live: Live, connection_id: str, echo_server: EchoServer
) -> None:
    created = mint_grant(
        live, connection_id, [{"methods": ["PUT"], "path": "/**", "approval": True}]
    )
    echo_server.clear_requests()
    url = f"/api/v1/proxy/{connection_id}/settings"
    answers: list[httpx.Response] = []

    def call() -> None:
        with agent_client(live, created["token"]) as client:
            answers.append(client.put(url, json={"mode": "on"}, headers={"Prefer": "wait=60"}))

    caller = threading.Thread(target=call)
    caller.start()
    pending: list[dict[str, Any]] = []
    deadline = datetime.now(UTC) + timedelta(seconds=60)
    while not pending and datetime.now(UTC) < deadline:
        pending = live.http.get("/api/v1/approvals", params={"status": "pending"}).json()
        pending = [a for a in pending if a["grant_id"] == created["id"]]
    assert pending, "the held call never showed up"
    assert live.http.post(f"/api/v1/approvals/{pending[0]['id']}/approve").status_code == 200
    caller.join(timeout=90)
    assert answers and answers[0].status_code == 200, answers
    assert len(echo_server.requests()) == 1


def test_an_agent_gets_the_link_its_person_follows(
    live: Live, idp: IdP, echo_server: EchoServer, user: tuple[str, str]
) -> None:
    profile, _ = oauth_profile(
        live, idp, "authorization-code", scopes=["read"], api_base_url=echo_server.url
    )
    started = live.connect(profile["id"])  # pending: nobody has logged in yet
    connection_id = started["connection_id"]
    created = mint_grant(live, connection_id, [{"methods": ["GET"], "path": "/**"}])
    with agent_client(live, created["token"]) as client:
        consent = client.get(f"/api/v1/proxy/{connection_id}/me")
        assert consent.status_code == 409, consent.text
        problem = consent.json()
        assert problem["type"].endswith("/consent-required")
        callback = idp.log_in_and_consent(problem["authorization_url"], *user)
        page = httpx.get(callback, timeout=30, trust_env=False)
        assert 'data-ok="true"' in page.text, page.text
        after = client.get(f"/api/v1/proxy/{connection_id}/me")
        assert after.status_code == 200, after.text


def test_grant_input_is_checked_field_by_field(live: Live, connection_id: str) -> None:
    response = live.http.post(
        "/api/v1/agent-grants",
        json={
            "agent": "x",
            "connection_ids": [connection_id, "nope"],
            "rules": [{"methods": ["get"], "path": "repos"}],
            "ttl_seconds": 0,
        },
    )
    assert response.status_code == 422, response.text
    fields = {e["field"] for e in response.json()["errors"]}
    assert "ttl_seconds" in " ".join(fields)


def test_an_approved_call_that_is_not_made_keeps_its_approval(
    live: Live, connection_id: str, echo_server: EchoServer
) -> None:
    created = mint_grant(
        live,
        connection_id,
        [
            {"methods": ["GET"], "path": "/**"},
            {"methods": ["POST"], "path": "/**", "approval": True},
        ],
        max_calls=1,
    )
    url = f"/api/v1/proxy/{connection_id}/orders"
    with agent_client(live, created["token"]) as client:
        held = client.post(url, json={"n": 1}).json()
        assert live.http.post(f"/api/v1/approvals/{held['approval_id']}/approve").is_success
        assert client.get(f"/api/v1/proxy/{connection_id}/spend").status_code == 200
        echo_server.clear_requests()
        over = client.post(url, json={"n": 1})
        assert over.status_code == 429, over.text
        assert echo_server.requests() == []
    standing = live.http.get(f"/api/v1/approvals/{held['approval_id']}").json()
    assert standing["status"] == "approved"
