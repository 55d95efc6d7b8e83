"""The admin pages in chromium: users (invite, role, reset link, disable), teams, API
keys (shown once, then revoked: the key answers 401), webhooks (the secret shown once, a
signed test event), email (the SMTP settings without the password, a test email that
arrives, the admin's own email choices), and the audit log showing all of it, filtered
and paged; a developer gets the 403 page on the admin-only ones."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from authprofiles.services.notifications import SIGNATURE_HEADER, verify
from authprofiles.settings import Settings
from tests.support.console import Console
from tests.support.mail import SmtpServer, WebhookReceiver, mail_settings

SMTP_USER = "mailer"
SMTP_PASSWORD = "smtp-pw-planted-7c2d1e"
INVITED = "grace@example.com"


@pytest.fixture
def settings(make_settings: Callable[..., Settings], smtp_server: SmtpServer) -> Settings:
    return make_settings(
        public_url="http://127.0.0.1:8000",
        http_timeout_seconds=5,
        token_reuse_seconds=0,
        **mail_settings(smtp_server, SMTP_USER, SMTP_PASSWORD),
    )


def _notice(page: Page, text: str | re.Pattern[str]) -> None:
    expect(page.get_by_test_id("notice")).to_contain_text(text)


def _row(page: Page, testid: str, **attributes: str) -> Locator:
    selector = "".join(f'[data-{name}="{value}"]' for name, value in attributes.items())
    return page.locator(f'[data-testid="{testid}"]{selector}')


def _save_team(page: Page, form: Locator, name: str, member: str, button: str) -> Locator:
    """Names the team in its dialog's ``form``, adds ``member``, saves: the team's row."""
    form.get_by_label("Name").fill(name)
    form.get_by_label(member).check()
    form.get_by_role("button", name=button).click()
    return _row(page, "team-row", name=name)


def _shown_once(page: Page) -> str:
    """The value in the shown-once dialog (open now)."""
    dialog = page.locator("#shown-once-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Copy")).to_be_visible()
    value = page.get_by_test_id("shown-once-value").input_value()
    assert value
    return value


def _me(live_url: str, key: str) -> httpx.Response:
    return httpx.get(
        live_url + "/api/v1/me", headers={"Authorization": f"Bearer {key}"}, trust_env=False
    )


def test_an_admin_manages_people_keys_and_notifications_and_reads_it_in_the_audit_log(
    console: Console, smtp_server: SmtpServer, webhook_receiver: WebhookReceiver
) -> None:
    page = console.page
    console.plant(SMTP_PASSWORD)

    # -- users: invite, change the role, a reset link shown once -------------------------
    console.goto("/console/users")
    expect(page.get_by_role("heading", level=1)).to_have_text("Users")
    me = _row(page, "user-row", email=console.admin_email)
    expect(me).to_contain_text("you")
    expect(me.get_by_label("Role of Ada Admin")).to_have_value("admin")
    page.get_by_role("button", name="Invite user").click()
    invite = page.get_by_test_id("invite-form")
    invite.get_by_label("Email").fill("not an email")
    invite.get_by_role("button", name="Invite").click()
    expect(invite.get_by_test_id("form-error")).to_be_visible()
    expect(invite.get_by_label("Email")).to_have_attribute("aria-invalid", "true")
    invite.get_by_label("Email").fill(INVITED)
    invite.get_by_label("Name").fill("Grace Hopper")
    invite.get_by_label("Role").select_option("viewer")
    invite.get_by_role("button", name="Invite").click()
    _notice(page, "User invited")
    grace = _row(page, "user-row", email=INVITED)
    expect(grace).to_contain_text("Grace Hopper")
    expect(grace).to_contain_text("No password yet")
    expect(grace).to_contain_text("Never")
    role = grace.get_by_label("Role of Grace Hopper")
    expect(role).to_have_value("viewer")
    role.select_option("developer")
    grace.get_by_role("button", name="Save role of Grace Hopper").click()
    _notice(page, "Role saved")
    expect(role).to_have_value("developer")
    console.check("users")

    grace.get_by_label("More actions for Grace Hopper").click()
    grace.get_by_role("button", name="Create reset link").click()
    expect(page.locator("#shown-once-title")).to_have_text("Password reset link for Grace Hopper")
    link = _shown_once(page)
    assert link.startswith(console.live.url + "/"), link
    page.get_by_role("button", name="Done").click()
    _notice(page, "Reset link created")
    console.plant(link.rsplit("/", 1)[-1])

    # -- teams: create with a member, rename and add one ---------------------------------
    console.goto("/console/teams")
    expect(page.get_by_role("heading", name="No teams yet")).to_be_visible()
    page.get_by_role("button", name="Create team").first.click()
    create = page.get_by_test_id("team-create-form")
    team = _save_team(page, create, "payments", "Grace Hopper", "Create team")
    _notice(page, "Team created")
    expect(team).to_contain_text("Grace Hopper")
    expect(team).to_contain_text("1 member")
    team.get_by_role("button", name="Edit team payments").click()
    edit = page.get_by_test_id("team-edit-form")
    expect(edit.get_by_label("Name")).to_have_value("payments")
    expect(edit.get_by_label("Grace Hopper")).to_be_checked()
    team = _save_team(page, edit, "payments-eu", "Ada Admin", "Save team")
    _notice(page, "Team saved")
    expect(team).to_contain_text("2 members")
    expect(team).to_contain_text("Ada Admin")
    console.check("teams")

    # -- API keys: created (shown once, it works), listed without it, revoked (401) -----
    console.goto("/console/api-keys")
    page.get_by_role("button", name="Create API key").first.click()
    form = page.get_by_test_id("api-key-create-form")
    form.get_by_label("Name").fill("ci-deploy")
    form.get_by_label("Role").select_option("developer")
    form.get_by_role("button", name="Create key").click()
    expect(page.locator("#shown-once-title")).to_have_text("Copy your new API key")
    key = _shown_once(page)
    console.check("api-key-shown-once")
    # Only Done closes it: Escape, however often, leaves the key on screen.
    for _ in range(3):
        page.keyboard.press("Escape")
        expect(page.locator("#shown-once-dialog")).to_be_visible()
    expect(page.get_by_test_id("shown-once-value")).to_have_value(key)
    answer = _me(console.live.url, key)
    assert answer.status_code == 200, answer.text
    assert answer.json()["role"] == "developer"
    assert answer.json()["user"]["email"] == console.admin_email
    page.get_by_role("button", name="Done").click()
    _notice(page, "API key created")
    console.plant(key)
    row = _row(page, "api-key-row", name="ci-deploy")
    expect(row).to_contain_text("Active")
    expect(row).to_contain_text("_".join(key.split("_")[:2]) + "_…")
    console.check("api-keys")

    row.get_by_role("button", name="Revoke API key ci-deploy").click()
    confirm = page.locator("#confirm-dialog")
    expect(confirm).to_be_visible()
    expect(confirm).to_contain_text("Revoke API key ci-deploy?")
    confirm.get_by_role("button", name="Revoke key").click()
    _notice(page, "API key revoked")
    expect(row).to_contain_text("Revoked")
    expect(row.get_by_role("button", name=re.compile("^Revoke"))).to_have_count(0)
    assert _me(console.live.url, key).status_code == 401

    # -- webhooks: added (the secret shown once), a signed test event --------------------
    console.goto("/console/notifications")
    page.get_by_role("button", name="Add webhook").click()
    hook_form = page.get_by_test_id("webhook-create-form")
    hook_form.get_by_label("URL").fill(webhook_receiver.url)
    hook_form.get_by_label("Someone is invited to a profile").uncheck()
    hook_form.get_by_role("button", name="Add webhook").click()
    expect(page.locator("#shown-once-title")).to_have_text("Copy the webhook's signing secret")
    secret = _shown_once(page)
    page.get_by_role("button", name="Done").click()
    _notice(page, "Webhook added")
    console.plant(secret)
    hook = _row(page, "webhook-row", url=webhook_receiver.url)
    expect(hook).to_contain_text("profile.failing")
    expect(hook).not_to_contain_text("profile.access_granted")
    hook.get_by_role("button", name=re.compile("^Send test")).click()
    _notice(page, "accepted the signed test event (HTTP 200)")
    delivered = webhook_receiver.wait_for(1)[0]
    assert json.loads(delivered.body)["event"] == "webhook.test"
    assert verify(
        secret, delivered.body, delivered.headers[SIGNATURE_HEADER.lower()], now=int(time.time())
    )

    # -- email: the settings (never the password), a test email, my own choices ---------
    smtp = page.get_by_test_id("smtp-settings")
    expect(smtp).to_contain_text(f"127.0.0.1:{smtp_server.port}")
    expect(smtp).to_contain_text("alerts@authprofiles.example.com")
    expect(smtp).to_contain_text("Set")
    test_email = page.get_by_test_id("test-email-form")
    expect(test_email.get_by_label("Send to")).to_have_value(console.admin_email)
    test_email.get_by_label("Send to").fill("ops@example.com")
    test_email.get_by_role("button", name="Send test email").click()
    _notice(page, "Sent a test email to ops@example.com")
    sent = smtp_server.wait_for(1)[0]
    assert sent.envelope_to == ["ops@example.com"]  # type: ignore[attr-defined]
    assert "test email" in str(sent["Subject"])
    preferences = page.get_by_test_id("email-preferences-form")
    preferences.get_by_label("Someone is invited to a profile").uncheck()
    preferences.get_by_role("button", name="Save preferences").click()
    _notice(page, "email preferences are saved")
    # Saved: the page came back with the choice as made.
    expect(preferences.get_by_label("Someone is invited to a profile")).not_to_be_checked()
    expect(preferences.get_by_label("A profile starts")).to_be_checked()
    console.check("notifications")

    # -- the audit log: all of it, by action, a page at a time, exported -----------------
    console.goto("/console/audit")
    audit = page.get_by_test_id("audit-table")
    for action in (
        "api_key.created",
        "api_key.revoked",
        "user.created",
        "user.updated",
        "team.created",
        "webhook.created",
    ):
        expect(audit.locator(f'[data-audit-action="{action}"]').first).to_be_visible()
    newest = page.get_by_test_id("audit-row").first
    expect(newest).to_have_attribute("data-audit-action", "webhook.created")
    expect(newest).to_contain_text(console.admin_email)
    expect(newest.locator("time")).to_have_attribute("datetime", re.compile(r"^\d{4}-"))
    console.check("audit")

    page.get_by_label("Action").select_option("api_key.*")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"action=api_key\.\*"))
    rows = page.get_by_test_id("audit-row")
    # The live app's own key ("integration", made by the system) was the first.
    expect(rows).to_have_count(3)
    expect(rows.nth(2)).to_contain_text("integration")
    expect(rows.nth(0)).to_have_attribute("data-audit-action", "api_key.revoked")
    expect(rows.nth(1)).to_have_attribute("data-audit-action", "api_key.created")
    expect(rows.nth(1)).to_contain_text("ci-deploy")
    export = page.get_by_test_id("audit-export").get_attribute("href")
    assert export is not None and "action=api_key" in export
    exported = page.request.get(export)
    assert exported.status == 200
    lines = [json.loads(line) for line in exported.text().splitlines()]
    assert [line["action"] for line in lines] == ["api_key.created"] * 2 + ["api_key.revoked"]

    # Filters it cannot take are shown beside their fields, nothing else.
    console.goto("/console/audit?since=2030-01-01T00:00&until=2020-01-01T00:00")
    expect(page.get_by_label("Until (UTC)")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#until-error")).to_contain_text("later than since")
    expect(page.get_by_test_id("audit-row")).to_have_count(0)

    console.goto("/console/audit?limit=2")
    rows = page.get_by_test_id("audit-row")
    expect(rows).to_have_count(2)
    first_page = [rows.nth(i).get_attribute("data-audit-action") for i in range(2)]
    first_ids = rows.nth(0).inner_text(), rows.nth(1).inner_text()
    page.get_by_role("link", name="Next page").click()
    expect(page).to_have_url(re.compile(r"cursor="))
    expect(rows).to_have_count(2)
    assert (rows.nth(0).inner_text(), rows.nth(1).inner_text()) != first_ids
    assert first_page[0] == "webhook.created"
    expect(page.get_by_role("link", name="First page")).to_be_visible()
    console.check("audit-page-2")


def test_a_developer_manages_only_their_own_keys_and_not_the_admin_pages(
    console: Console,
) -> None:
    password = "developer-password-4f1c"
    console.add_user("dev@example.com", "developer", password=password, name="Dev Eloper")
    console.live.services.api_keys.create(name="admin-robot", role="admin")
    page = console.page_as("dev@example.com", password, "/console/api-keys")

    expect(page.get_by_role("heading", name="No API keys yet")).to_be_visible()
    expect(page.get_by_role("link", name="Users")).to_have_count(0)
    page.get_by_role("button", name="Create API key").first.click()
    roles = page.get_by_test_id("api-key-create-form").get_by_label("Role")
    expect(roles.locator("option")).to_have_count(2)
    expect(roles).to_have_value("developer")

    response = page.goto("/console/users")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("Not available to your role")
    console.check("users-forbidden", page)
    for path in ("/console/teams", "/console/notifications", "/console/audit"):
        response = page.goto(path)
        assert response is not None and response.status == 403, path
    # An address the console has no page at: its 404 page, in the layout.
    response = page.goto("/console/no-such-page")
    assert response is not None and response.status == 404
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")
    console.check("not-found", page)

    # The console's own JSON endpoints: an admin's, with the session's CSRF token.
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert token
    refused = page.request.post(
        console.live.url + "/console/notifications/test-email",
        data={"to": "x@example.com"},
        headers={"X-CSRF-Token": token},
    )
    assert refused.status == 403
    assert "admin" in refused.json()["detail"]
    admin = console.page
    console.goto("/console/notifications")
    no_token = admin.request.post(
        console.live.url + "/console/notifications/test-email", data={"to": "x@example.com"}
    )
    assert no_token.status == 403
    assert "CSRF" in no_token.json()["detail"]
