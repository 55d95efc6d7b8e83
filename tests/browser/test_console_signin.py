"""Signing in to the console in chromium: email and password (a wrong one first), the
account menu's sign-out, the workspace switcher, single sign-on through a real OpenID
Connect provider's own login page, and what protects the pages (security headers, the
CSRF token the API asks of a session)."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

from tests.support.console import Console, Sso

PROFILES = re.compile(r"/console/profiles$")
CONNECTIONS = re.compile(r"/console/connections$")
SIGNIN = re.compile(r"/signin(\?.*)?$")


def _fill_signin(page: Page, email: str, password: str) -> None:
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()


def _account_menu(page: Page, email: str) -> Locator:
    """The top bar's account menu's summary (its name: "Account menu for <email>: <name>")."""
    return page.locator("summary", has_text=f"Account menu for {email}")


def test_a_person_signs_in_with_a_password_and_signs_out_from_the_account_menu(
    console: Console,
) -> None:
    page = console.new_page()
    # A console page, signed out: the sign-in page, which comes back there after.
    response = page.goto("/console/connections")
    assert response is not None
    expect(page).to_have_url(re.compile(r"/signin\?next=/console/connections$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    expect(page.get_by_role("button", name=re.compile("^Sign in with"))).to_have_count(0)
    headers = response.all_headers()
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    console.check("signin", page)

    wrong = "not-the-password-" + console.password[:4]
    console.plant(wrong)
    _fill_signin(page, console.admin_email, wrong)
    error = page.locator("#signin-error")
    expect(error).to_be_visible()
    expect(error).to_have_attribute("role", "alert")
    expect(error).to_contain_text(re.compile("email or password", re.I))
    expect(page.get_by_label("Email")).to_have_value(console.admin_email)
    expect(page.get_by_label("Password", exact=True)).to_have_value("")
    console.check("signin-error", page)

    _fill_signin(page, console.admin_email, console.password)
    expect(page).to_have_url(CONNECTIONS)
    expect(page.get_by_test_id("signed-in-as")).to_have_text("Ada Admin")

    # Signed in, the sign-in page says who is, with the ways out.
    page.goto("/signin")
    expect(page.locator("#signed-in-as")).to_have_text(console.admin_email)
    console.check("signin-signed-in", page)
    page.go_back()

    _account_menu(page, console.admin_email).click()
    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page).to_have_url(SIGNIN)
    page.goto("/console/connections")
    expect(page).to_have_url(re.compile(r"/signin\?next="))
    # The admin's own page, in its own browser context, is still signed in.
    console.goto("/console/connections")
    expect(console.page).to_have_url(CONNECTIONS)

    # A new member's reset link: choose a password, and be signed in.
    newcomer = console.add_user("newcomer@example.com", "viewer", name="Nia Newcomer")
    link = console.live.services.signin.reset_link(newcomer).url
    page.goto(link)
    expect(page.get_by_role("heading", level=1)).to_have_text("Choose a password")
    expect(page.get_by_text("newcomer@example.com")).to_be_visible()
    console.check("signin-reset", page)
    chosen = "a-new-password-" + console.password[:6]
    console.plant(chosen)
    page.get_by_label("New password").fill(chosen)
    page.get_by_label("Repeat it").fill(chosen)
    page.get_by_role("button", name="Set password").click()
    expect(page).to_have_url(PROFILES)


def test_the_workspace_switcher_headers_and_csrf_of_a_signed_in_page(console: Console) -> None:
    page = console.page
    expect(page).to_have_url(PROFILES)  # where a sign-in lands by default
    expect(page.get_by_test_id("signed-in-as")).to_have_text("Ada Admin")
    second = console.add_workspace("Second workspace")
    response = console.goto("/console/connections")
    assert response is not None and response.status == 200, response
    headers = response.all_headers()
    policy = {
        directive.split()[0]: directive.split()[1:]
        for directive in headers["content-security-policy"].split(";")
        if directive.strip()
    }
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert "'unsafe-inline'" not in headers["content-security-policy"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-content-type-options"] == "nosniff"

    # The switcher: the same person, another workspace, another set of everything.
    switcher = page.get_by_test_id("workspace-switcher")
    workspace = switcher.get_by_label("Workspace")
    expect(workspace).to_have_value(re.compile(r"^(?!" + re.escape(second) + r"$)"))
    # WCAG 2.5.3 (label in name): the menu's name holds the name it shows.
    summary = _account_menu(page, console.admin_email)
    expect(summary).to_have_accessible_name(
        re.compile(f"Account menu for {re.escape(console.admin_email)}.*Ada Admin")
    )
    summary.click()
    expect(page.get_by_role("button", name="Sign out everywhere")).to_be_visible()
    console.check("account-menu")
    workspace.select_option(second)
    switcher.get_by_role("button", name="Switch").click()
    expect(page).to_have_url(PROFILES)
    console.goto("/console/connections")
    expect(page.get_by_test_id("workspace-switcher").get_by_label("Workspace")).to_have_value(
        second
    )
    me = page.request.get("/api/v1/me")
    assert me.status == 200, me.text()
    assert me.json()["workspace"]["id"] == second

    # The API with the session cookie: a change needs the page's CSRF token.
    refused = page.request.post("/api/v1/teams", data={"name": "Forged team", "members": []})
    assert refused.status == 403, refused.text()
    assert "X-CSRF-Token" in refused.text()
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    assert token
    wrong = page.request.post(
        "/api/v1/teams",
        data={"name": "Forged team", "members": []},
        headers={"X-CSRF-Token": token[::-1]},
    )
    assert wrong.status == 403, wrong.text()
    made = page.request.post(
        "/api/v1/teams", data={"name": "Real team", "members": []}, headers={"X-CSRF-Token": token}
    )
    assert made.status == 201, made.text()
    # A form of the console posted without the token does nothing either.
    assert page.request.post("/signout", form={"csrf_token": ""}).status == 403
    console.goto("/console/connections")
    expect(page).to_have_url(CONNECTIONS)


def test_single_sign_on_through_the_providers_own_login_page(
    console: Console, console_sso: Sso
) -> None:
    developer = console_sso.person(role="developer")
    page = console.new_page()
    page.goto("/console/connections")
    sso_button = page.get_by_role("button", name="Sign in with Test Provider")
    expect(sso_button).to_be_visible()
    console.check("signin-sso", page)

    sso_button.click()
    expect(page).to_have_url(re.compile("^" + re.escape(console_sso.provider.issuer)))
    console_sso.log_in_at_provider(page, developer)
    expect(page).to_have_url(re.compile(r"/console/connections$"))
    expect(page.get_by_test_id("signed-in-as")).to_have_text("Sam Sso")
    nav = page.get_by_role("navigation", name="Console")
    expect(nav.get_by_role("link", name="OAuth connections")).to_be_visible()
    expect(nav.get_by_role("link", name="Users")).to_have_count(0)  # a developer

    # Someone the provider knows but this workspace does not: refused, and told why.
    stranger = console_sso.person(role=None)
    other = console.new_page()
    other.goto("/signin")
    other.get_by_role("button", name="Sign in with Test Provider").click()
    console_sso.log_in_at_provider(other, stranger)
    expect(other.locator("#signin-error")).to_contain_text("no account")
    console.check("signin-sso-refused", other)
