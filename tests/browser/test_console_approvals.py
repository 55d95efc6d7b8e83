"""Agents in the console, in chromium, against the real IdP and the echo upstream: a call
an agent makes that a rule holds is opened from the link the agent was given, read
(method, URL, the body's redacted beginning) and approved, and then goes through exactly
once; another is denied; the list of held calls; someone who may not decide gets the 404
page. On the agents page a grant is minted (its token shown once, then working only as its
rules say), listed, and revoked, one and every one of an agent. No page ever holds the
connection's access token or a credential the server injects."""

from __future__ import annotations

import re
import secrets
import uuid

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.support.agents import agent_client, mint_grant
from tests.support.app import oauth_profile
from tests.support.console import Console
from tests.support.echo import EchoServer
from tests.support.idp import IdP

pytestmark = pytest.mark.idp

QUERY_SECRET = "query-secret-" + uuid.uuid4().hex


def _connection(console: Console, idp: IdP, echo_server: EchoServer) -> str:
    """A shared client-credentials connection of "Billing API" (the echo upstream behind
    it, a query credential injected), its access token, credentials planted."""
    live = console.live
    profile, client = oauth_profile(
        live,
        idp,
        "client-credentials",
        name="Billing API",
        api_base_url=echo_server.url + "/api",
        authorization_fields=[{"type": "query", "key": "api_key", "value": QUERY_SECRET}],
    )
    connection_id = str(live.connect(profile["id"])["connection_id"])
    token = live.token(connection_id)
    assert token.status_code == 200, token.text
    console.plant(token.json()["access_token"], QUERY_SECRET, client.client_secret)
    return connection_id


def _notice(page: Page, text: str) -> None:
    expect(page.get_by_test_id("notice")).to_contain_text(text)


def _confirm(page: Page, title: str, button: str) -> None:
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(title)
    dialog.get_by_role("button", name=button).click()


def test_an_admin_approves_a_held_call_from_its_link_and_it_goes_through_once(
    console: Console, idp: IdP, echo_server: EchoServer
) -> None:
    live, page = console.live, console.page
    connection_id = _connection(console, idp, echo_server)
    created = mint_grant(
        live,
        connection_id,
        [
            {"methods": ["GET"], "path": "/**"},
            {"methods": ["POST", "DELETE"], "path": "/invoices/**", "approval": True},
        ],
    )
    console.plant(created["token"])
    echo_server.clear_requests()
    url = f"/api/v1/proxy/{connection_id}/invoices/7/send"
    # The body holds markup: shown as text, never as markup.
    body = {"amount": 10, "note": "<b>ACME</b>"}

    with agent_client(live, created["token"]) as agent:
        held = agent.post(url, json=body)
        assert held.status_code == 403, held.text
        problem = held.json()
        assert problem["type"].endswith("/approval-required")
        link = problem["approval_url"]
        assert link == f"{live.url}/console/approvals/{problem['approval_id']}"
        assert echo_server.requests() == []

        # -- the page the agent's link opens ---------------------------------------------
        response = page.goto(link)
        assert response is not None and response.status == 200
        expect(page.get_by_role("heading", level=1)).to_have_text("POST call by billing-agent")
        expect(page.get_by_test_id("approval-agent")).to_have_text("billing-agent")
        expect(page.get_by_test_id("approval-connection")).to_have_text(
            "Billing API: shared connection"
        )
        expect(page.get_by_test_id("approval-method")).to_have_text("POST")
        expect(page.get_by_test_id("approval-url")).to_have_text(
            re.compile(re.escape(echo_server.url + "/api/invoices/7/send") + "$")
        )
        shown = page.get_by_test_id("approval-body")
        expect(shown).to_contain_text('"amount": 10')
        expect(shown).to_contain_text('"note": "<b>ACME</b>"')
        expect(shown.locator("b")).to_have_count(0)
        expect(page.get_by_test_id("approval-status")).to_have_text("Waiting for a decision")
        nav = page.get_by_role("navigation", name="Console")
        expect(nav.get_by_role("link", name="Approvals")).to_have_attribute("aria-current", "page")
        console.check("approval-pending")

        # -- approve: the success message and the new state, no buttons any more --------
        page.get_by_role("button", name="Approve the POST call by billing-agent").click()
        _notice(page, "Approved. The agent's next identical call goes through, once.")
        expect(page.get_by_test_id("approval-status")).to_have_text("Approved, not made yet")
        decision = page.get_by_test_id("approval-decision")
        expect(decision.get_by_role("button")).to_have_count(0)
        console.check("approval-approved")
        assert echo_server.requests() == []

        # -- the agent's same call goes through, once ------------------------------------
        sent = agent.post(url, json=body)
        assert sent.status_code == 200, sent.text
        assert len(echo_server.requests()) == 1
        replay = agent.post(url, json=body)
        assert replay.status_code == 403, replay.text
        again = replay.json()["approval_id"]
        assert again != problem["approval_id"]
        assert len(echo_server.requests()) == 1

    page.reload()
    expect(page.get_by_test_id("approval-status")).to_have_text("Approved and made")
    expect(page.get_by_test_id("approval-decision").get_by_role("button")).to_have_count(0)

    # -- the list: pending first, each linking to its page; the other states by filter ----
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Approvals").click()
    expect(page).to_have_url(re.compile(r"/console/approvals$"))
    rows = page.get_by_test_id("approval-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-id", again)
    expect(rows.first).to_contain_text("billing-agent")
    expect(rows.first).to_contain_text("Waiting for a decision")
    console.check("approvals-pending")
    page.get_by_role("navigation", name="Held calls by state").get_by_role(
        "link", name="Made"
    ).click()
    expect(page).to_have_url(re.compile(r"\?status=used$"))
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-id", problem["approval_id"])

    # -- deny the replay, from the list -------------------------------------------------
    page.get_by_role("link", name="Pending").click()
    rows.first.get_by_role("link").click()
    expect(page).to_have_url(re.compile(f"/console/approvals/{again}$"))
    page.get_by_role("button", name="Deny the POST call by billing-agent").click()
    _notice(page, "Denied. The call never reaches the upstream.")
    expect(page.get_by_test_id("approval-status")).to_have_text("Denied")
    expect(page.get_by_test_id("approval-decision").get_by_role("button")).to_have_count(0)
    console.check("approval-denied")
    page.goto("/console/approvals")
    expect(page.get_by_test_id("approvals-empty")).to_contain_text("No pending calls")
    console.check("approvals-empty")
    # Denied, it never went out; asked again, it waits for a new decision.
    with agent_client(live, created["token"]) as agent:
        asked_again = agent.post(url, json=body)
    assert asked_again.status_code == 403
    assert asked_again.json()["approval_id"] not in (again, problem["approval_id"])
    assert len(echo_server.requests()) == 1

    # -- unknown, or not this person's to decide: the 404 page ---------------------------
    missing = page.goto(f"/console/approvals/{uuid.uuid4()}")
    assert missing is not None and missing.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("No such held call")
    console.check("approval-missing")
    password = secrets.token_urlsafe(12)
    console.add_user("dev-approvals@example.com", "developer", password)
    developer = console.page_as("dev-approvals@example.com", password)
    refused = developer.goto(link)
    assert refused is not None and refused.status == 404
    expect(developer.get_by_test_id("approval-missing")).to_be_visible()
    assert console.leaked(developer) == []


def test_a_credential_in_a_held_calls_body_is_hidden_on_its_page(
    console: Console, idp: IdP, echo_server: EchoServer
) -> None:
    live, page = console.live, console.page
    connection_id = _connection(console, idp, echo_server)
    access_token = live.token(connection_id).json()["access_token"]
    created = mint_grant(
        live, connection_id, [{"methods": ["POST"], "path": "/**", "approval": True}]
    )
    with agent_client(live, created["token"]) as agent:
        held = agent.post(
            f"/api/v1/proxy/{connection_id}/notes",
            json={"query": QUERY_SECRET, "token": access_token},
        )
    assert held.status_code == 403, held.text
    page.goto(held.json()["approval_url"])
    expect(page.get_by_test_id("approval-body")).to_contain_text("[redacted]")
    assert console.leaked() == []


def _rule(form: Locator, index: int, methods: str, path: str, *, ask: bool = False) -> None:
    form.locator(f"#rule-methods-{index}").fill(methods)
    form.locator(f"#rule-path-{index}").fill(path)
    if ask:
        form.locator(f"#rule-approval-{index}").check()


def test_a_grant_made_in_the_console_shows_its_token_once_works_by_its_rules_and_is_revoked(
    console: Console, idp: IdP, echo_server: EchoServer
) -> None:
    live, page = console.live, console.page
    connection_id = _connection(console, idp, echo_server)
    console.goto("/console/agents")
    expect(page.get_by_role("heading", level=1)).to_have_text("Agents")
    expect(page.get_by_test_id("agent-grants-empty")).to_be_visible()
    console.check("agents-empty")

    # -- the form: problems beside their fields, all at once ----------------------------
    page.get_by_role("button", name="Give an agent access").first.click()
    form = page.get_by_test_id("agent-grant-form")
    expect(form.get_by_label("Billing API: shared connection")).to_be_checked()  # the one
    form.locator("#rule-methods-0").fill("")
    form.get_by_role("button", name="Make grant").click()
    expect(form.get_by_test_id("form-error")).to_contain_text("need attention")
    expect(form.get_by_label("Agent name")).to_have_attribute("aria-invalid", "true")
    console.check("agent-grant-form-errors")

    # -- mint: lower-case methods are fine, a second rule asks first ---------------------
    form.get_by_label("Agent name").fill("report-bot")
    _rule(form, 0, "get, head", "/reports/**")
    form.get_by_role("button", name="Add a rule").click()
    _rule(form, 1, "post", "/reports/*/send", ask=True)
    form.get_by_label("Calls in all (budget)").fill("100")
    form.get_by_label("Calls a minute, at most").fill("30")
    form.get_by_label("Works for").select_option(label="1 hour")
    form.get_by_role("button", name="Make grant").click()
    expect(page.locator("#shown-once-title")).to_have_text("Copy the agent's token")
    dialog = page.locator("#shown-once-dialog")
    expect(dialog.get_by_role("button", name="Copy")).to_be_visible()
    token = page.get_by_test_id("shown-once-value").input_value()
    assert token.startswith("apg_")
    console.check("agent-grant-shown-once")

    with agent_client(live, token) as agent:
        base = f"/api/v1/proxy/{connection_id}"
        echo_server.clear_requests()
        allowed = agent.get(base + "/reports/2025/q1")
        assert allowed.status_code == 200, allowed.text
        assert QUERY_SECRET not in allowed.text
        held = agent.post(base + "/reports/q1/send", json={})
        assert held.status_code == 403 and held.json()["type"].endswith("/approval-required")
        outside = agent.get(base + "/admin")
        assert outside.status_code == 403 and outside.json()["type"].endswith("/grant-rule")
        assert len(echo_server.requests()) == 1

    page.get_by_role("button", name="Done").click()
    _notice(page, "Agent grant made")
    console.plant(token)
    row = page.locator('[data-testid="agent-grant-row"][data-agent="report-bot"]')
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-state", "active")
    expect(row).to_contain_text("Billing API: shared connection")
    expect(row).to_contain_text("GET HEAD /reports/**")
    expect(row).to_contain_text("POST /reports/*/send ask first")
    expect(row).to_contain_text("1 of 100")
    expect(row).to_contain_text("at most 30 a minute")
    expect(row).to_contain_text("Active")
    assert token not in page.content()
    console.check("agents")

    # -- revoke it: the token stops working ---------------------------------------------
    grant_id = row.get_attribute("data-id") or ""
    row.get_by_role("button", name=f"Revoke grant {grant_id[:8]} of report-bot").click()
    _confirm(page, "Revoke this grant of report-bot?", "Revoke grant")
    _notice(page, "Agent grant revoked")
    expect(row).to_have_attribute("data-state", "revoked")
    expect(row).to_contain_text("Revoked")
    expect(row.get_by_role("button")).to_have_count(0)
    with agent_client(live, token) as agent:
        assert agent.get(f"/api/v1/proxy/{connection_id}/reports/x").status_code == 401

    # -- revoke every grant of an agent at once ------------------------------------------
    rules = [{"methods": ["GET"], "path": "/**"}]
    first = mint_grant(live, connection_id, rules, agent="sweeper bot")
    second = mint_grant(live, connection_id, rules, agent="sweeper bot")
    console.plant(first["token"], second["token"])
    page.reload()
    sweepers = page.locator('[data-testid="agent-grant-row"][data-agent="sweeper bot"]')
    expect(sweepers).to_have_count(2)
    sweepers.first.get_by_role("button", name="Revoke all grants of sweeper bot").click()
    _confirm(page, "Revoke every grant of sweeper bot?", "Revoke all")
    _notice(page, "Every grant of that agent is revoked")
    expect(page.locator('[data-agent="sweeper bot"][data-state="revoked"]')).to_have_count(2)
    for created in (first, second):
        with agent_client(live, created["token"]) as agent:
            assert agent.get(f"/api/v1/proxy/{connection_id}/x").status_code == 401
    console.check("agents-revoked")
