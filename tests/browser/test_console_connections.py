"""Seed 004 in chromium: an admin shares a profile (Invite roles, Save login credentials),
and a developer connects under My settings > OAuth connections through the real IdP's
login page and back, reconnects in place after ``needs_reauth``, and disconnects; the
device code screen; every screen checked (screenshots, axe-core, no planted secret)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from playwright.sync_api import Locator, Page, expect
from sqlalchemy import update

from authprofiles.store.models import AuthorizationRequestRow, ConnectionRow
from tests.support.app import oauth_profile
from tests.support.console import Console
from tests.support.idp import IdP

CONNECTIONS = re.compile(r"/console/connections(\?.*)?$")
#: For what waits on the IdP, or on a poll of it, under a loaded machine.
SLOW = 30_000


def _row(page: Page, profile_name: str) -> Locator:
    return page.get_by_test_id("connection-row").filter(
        has=page.get_by_text(profile_name, exact=True)
    )


def _log_in_at_idp(page: Page, username: str, password: str) -> None:
    """The IdP's own login form (django-oauth-toolkit's)."""
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.locator("form").first.evaluate("form => form.requestSubmit()")


def test_an_admin_shares_with_a_team_and_a_developer_connects_reconnects_and_disconnects(
    console: Console, idp: IdP, user: tuple[str, str]
) -> None:
    live = console.live
    profile, client = oauth_profile(
        live, idp, "authorization-code", name="Billing API", identity_provider="Acme ID"
    )
    console.plant(client.client_secret, user[1])
    dev_email, dev_password = "dana@example.com", secrets.token_urlsafe(12)
    dev_id = console.add_user(dev_email, "developer", dev_password, name="Dana Developer")
    console.add_user("vic@example.com", "viewer", name="Vic Viewer")
    team = live.http.post("/api/v1/teams", json={"name": "Payments", "members": [dev_id]})
    assert team.status_code == 201, team.text

    # The developer, before anything is shared with them: the empty state.
    dev = console.page_as(dev_email, dev_password, "/console/connections")
    expect(dev.get_by_role("heading", level=1)).to_have_text("OAuth connections")
    expect(dev.get_by_test_id("connections-empty")).to_contain_text("Nothing is shared with you")
    console.check("connections-empty", dev)

    # The admin invites the team (seed 004's Invite roles).
    admin = console.page
    console.goto(f"/console/profiles/{profile['id']}/sharing")
    expect(admin.get_by_role("heading", level=1)).to_have_text("Sharing: Billing API")
    expect(admin.locator('.sidenav a[aria-current="page"]')).to_have_text("Authorization profiles")
    invite = admin.get_by_test_id("invite-roles")
    invite.get_by_role("checkbox", name=re.compile(r"^Payments")).check()
    invite.get_by_role("button", name="Save invitations").click()
    expect(admin.get_by_test_id("notice")).to_have_text("Invitations saved.")
    expect(invite.get_by_role("checkbox", name=re.compile(r"^Payments"))).to_be_checked()
    who = admin.get_by_test_id("may-use-row")
    expect(who.filter(has_text="Dana Developer")).to_contain_text("Team Payments")
    expect(who.filter(has_text="Ada Admin")).to_contain_text("Admin")
    expect(who.filter(has_text="Vic Viewer")).to_have_count(0)
    assert live.http.get(f"/api/v1/profiles/{profile['id']}/access").json() == {
        "users": [],
        "teams": [team.json()["id"]],
    }
    console.check("sharing", admin)

    # The developer sees it, not connected, and connects at the IdP's own login page.
    dev.reload()
    row = _row(dev, "Billing API")
    expect(row.get_by_test_id("connection-status")).to_have_text("Not connected")
    expect(row.get_by_test_id("shared-status")).to_contain_text("None saved")
    row.get_by_role("button", name="Connect Billing API").click()
    expect(dev).to_have_url(re.compile("^" + re.escape(idp.base_url)), timeout=SLOW)
    _log_in_at_idp(dev, *user)
    expect(dev.get_by_test_id("callback-result")).to_have_attribute("data-ok", "true", timeout=SLOW)
    dev.get_by_role("link", name="Back to your OAuth connections").click()
    expect(dev).to_have_url(CONNECTIONS)
    row = _row(dev, "Billing API")
    expect(row.get_by_test_id("connection-status")).to_have_text("Active")
    connection_id = row.get_attribute("data-connection-id")
    assert connection_id
    expires = row.get_by_test_id("connection-expiry").locator("time")
    expect(expires).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d"))
    expect(row.get_by_test_id("connection-expiry")).to_contain_text("(in ")
    stored = live.http.get(f"/api/v1/connections/{connection_id}").json()
    assert stored["owner"] == dev_id and stored["status"] == "active"
    console.check("connections-active", dev)

    # The IdP refuses a refresh: the connection needs re-authorization.
    with live.services.db.session() as session:
        session.execute(
            update(ConnectionRow)
            .where(ConnectionRow.id == connection_id)
            .values(
                status="needs_reauth",
                last_error="invalid_grant: the refresh token was revoked",
                last_error_at=datetime.now(UTC),
            )
        )
    dev.reload()
    row = _row(dev, "Billing API")
    expect(row.get_by_test_id("connection-status")).to_have_text("Needs re-authorization")
    expect(row).to_contain_text("the refresh token was revoked")
    console.check("connections-needs-reauth", dev)

    # Reconnect in place: to the IdP (signed in there already) and back, same connection.
    row.get_by_role("button", name="Reconnect Billing API").click()
    expect(dev.get_by_test_id("callback-result")).to_have_attribute("data-ok", "true", timeout=SLOW)
    expect(dev.get_by_test_id("callback-result")).to_contain_text(connection_id)
    dev.get_by_role("link", name="Back to your OAuth connections").click()
    row = _row(dev, "Billing API")
    expect(row.get_by_test_id("connection-status")).to_have_text("Active")
    expect(row).to_have_attribute("data-connection-id", connection_id)
    assert live.http.get(f"/api/v1/connections/{connection_id}").json()["status"] == "active"

    # Disconnect, behind the confirmation.
    row.get_by_role("button", name="Disconnect Billing API").click()
    confirm = dev.locator("#confirm-dialog")
    expect(confirm).to_be_visible()
    expect(confirm).to_contain_text("Disconnect Billing API?")
    confirm.get_by_role("button", name="Disconnect").click()
    expect(dev.get_by_test_id("notice")).to_contain_text("Disconnected")
    expect(_row(dev, "Billing API").get_by_test_id("connection-status")).to_have_text(
        "Not connected"
    )
    assert live.http.get(f"/api/v1/connections/{connection_id}").status_code == 404


def test_an_admin_saves_login_credentials_and_connects_with_a_password_and_a_device_code(
    console: Console,
    idp: IdP,
    user: tuple[str, str],
    approve_device_in_idp: Callable[..., str],
) -> None:
    live = console.live
    admin = console.page
    shared, client = oauth_profile(
        live, idp, "client-credentials", name="Reports API", identity_provider="Acme ID"
    )
    console.plant(client.client_secret)

    # Save login credentials: one click for client credentials.
    console.goto(f"/console/profiles/{shared['id']}/sharing")
    save = admin.get_by_test_id("save-credentials")
    save.get_by_role("button", name="Test connection and save credentials").click()
    expect(admin.get_by_test_id("notice")).to_contain_text("Login credentials saved", timeout=SLOW)
    # Once shown, the notice leaves the address: a reload does not say it again.
    expect(admin).not_to_have_url(re.compile(r"notice="))
    panel = admin.get_by_test_id("shared-connection")
    expect(panel.get_by_test_id("connection-status")).to_have_text("Active")
    expect(panel.get_by_test_id("shared-expiry").locator("time")).to_have_count(1)
    listed = live.http.get("/api/v1/connections", params={"profile_id": shared["id"]}).json()
    assert [c["owner"] for c in listed] == ["shared"]
    console.check("sharing-shared-saved", admin)

    # On My connections the admin sees it as shared, with no connect of their own.
    console.goto("/console/connections")
    row = _row(admin, "Reports API")
    expect(row.get_by_test_id("uses-shared")).to_have_text("Uses the shared connection")
    expect(row.get_by_test_id("shared-status")).to_contain_text("Shared: active")

    # The password grant in user mode: a dialog asks for the User ID, Password and the
    # profile's form field (its key holds a dot: sent as it is, not nested); what is
    # missing is said beside each field, all at once.
    ledger, password_client = oauth_profile(
        live,
        idp,
        "password",
        name="Ledger API",
        identity_provider="Acme ID",
        form_fields=[
            {"title": "Region", "key": "org.region", "hint": "eu or us", "mandatory": True}
        ],
    )
    console.plant(password_client.client_secret, user[1])
    admin.reload()
    _row(admin, "Ledger API").get_by_role("button", name="Connect Ledger API").click()
    dialog = admin.get_by_role("dialog", name="Connect Ledger API")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Connect").click()
    expect(dialog.get_by_test_id("form-error")).to_contain_text("3 fields need attention")
    region, username, password = (
        dialog.get_by_label(re.compile(rf"^{label}\*?$"))
        for label in ("Region", "User ID", "Password")
    )
    for field in (region, username, password):
        expect(field).to_have_attribute("aria-invalid", "true")
    expect(username.locator("xpath=..")).to_contain_text("the password grant needs a username")
    console.check("connections-password-dialog", admin)
    region.fill("eu")
    username.fill(user[0])
    password.fill(user[1])
    dialog.get_by_role("button", name="Connect").click()
    expect(admin.get_by_test_id("notice")).to_contain_text("Connected", timeout=SLOW)
    expect(_row(admin, "Ledger API").get_by_test_id("connection-status")).to_have_text("Active")
    mine = live.http.get("/api/v1/connections", params={"profile_id": ledger["id"]}).json()
    assert [c["status"] for c in mine] == ["active"]

    # A device code profile: the code screen, approved at the IdP, polled until active.
    device_client = idp.register_client("device-code")
    console.plant(device_client.client_secret)
    live.create_profile(
        name="Fleet API",
        auth_type="oauth2_device_code",
        client_id=device_client.client_id,
        client_secret=device_client.client_secret,
        device_authorization_url=idp.device_authorization_url,
        token_url=idp.token_url,
    )
    admin.reload()
    expect(admin.get_by_test_id("notice")).to_have_count(0)  # said once, not again
    _row(admin, "Fleet API").get_by_role("button", name="Connect Fleet API").click()
    dialog = admin.get_by_test_id("device-dialog")
    expect(dialog).to_be_visible(timeout=SLOW)
    code = dialog.get_by_test_id("device-user-code")
    expect(code).not_to_have_value("")
    expect(dialog.get_by_test_id("device-link")).to_have_attribute(
        "href", re.compile("^" + re.escape(idp.device_verification_url))
    )
    expect(dialog.get_by_test_id("device-status")).to_contain_text("Waiting")
    console.check("connections-device-code", admin)
    approve_device_in_idp(code.input_value())
    # The server's poll of the IdP is due after the IdP's interval: make it due now. The
    # app's own poller (every 0.2 s) may well ask first: whoever asks, the connection
    # becomes active, and the device screen, polling it, goes on to the list.
    with live.services.db.session() as session:
        session.execute(
            update(AuthorizationRequestRow).values(
                next_poll_at=datetime.now(UTC) - timedelta(seconds=1)
            )
        )
    live.services.connections.poll_pending()
    expect(admin.get_by_test_id("notice")).to_contain_text("Connected", timeout=SLOW)
    expect(_row(admin, "Fleet API").get_by_test_id("connection-status")).to_have_text("Active")

    # A viewer uses no credential: the page says so rather than listing anything.
    viewer_password = secrets.token_urlsafe(12)
    console.add_user("val@example.com", "viewer", viewer_password, name="Val Viewer")
    viewer = console.page_as("val@example.com", viewer_password, "/console/connections")
    expect(viewer.get_by_test_id("connections-empty")).to_contain_text(
        "Viewers don't use connections"
    )
    expect(viewer.get_by_test_id("connection-row")).to_have_count(0)
