"""The Authorization profiles screens in chromium (seeds 000-003): the empty state, the
New Authorization Mechanism form for each auth type (one prefilled by discovery), every
validation error at once, editing with the name and type locked and the secret kept,
testing (success, and Auth Test Failed with its Headers and Response tabs, secrets
redacted), the authorization code test through the IdP's own login page in a new window,
the activity page, and deleting behind a confirmation."""

from __future__ import annotations

import re
import uuid
from typing import Any

from playwright.sync_api import Locator, Page, expect

from authprofiles.core.auth_types import AuthType, spec_for
from authprofiles.core.validation import required_fields
from tests.support.app import oauth_profile
from tests.support.console import Console
from tests.support.idp import IdP


def _notice(page: Page, text: str | re.Pattern[str]) -> None:
    expect(page.get_by_test_id("notice")).to_contain_text(text)


def _error(page: Page, field: str) -> Locator:
    """The error slot beside a field of the profile form."""
    if field in ("name", "auth_type"):
        return page.locator(f".field:has(#f-{field}) > .field-error")
    return page.locator(f'[data-field="{field}"] > .field-error')


def _row(page: Page, name: str) -> Locator:
    return page.locator(f'tr[data-profile-row="{name}"]')


def _fields_with_errors(page: Page) -> set[str]:
    return set(
        page.locator("[data-field]:has(> .field-error:not(:empty))").evaluate_all(
            "els => els.map(e => e.dataset.field)"
        )
    )


def _save(page: Page) -> None:
    page.get_by_role("button", name="Save new Auth").click()


def _fill_client(page: Page, name: str, client_id: str, client_secret: str | None = None) -> None:
    """What every new profile here starts with: its name, the IdP's, and the client."""
    page.locator("#f-name").fill(name)
    page.locator("#f-identity_provider").fill("Test IdP")
    page.locator("#f-client_id").fill(client_id)
    if client_secret is not None:
        page.locator("#f-client_secret").fill(client_secret)


def test_an_admin_creates_a_profile_of_each_type_and_sees_every_error_at_once(
    console: Console, idp: IdP, user: tuple[str, str]
) -> None:
    page = console.page
    console.plant(user[1])

    # -- the empty state -----------------------------------------------------------------
    console.goto("/console/profiles")
    expect(page.get_by_role("heading", level=1)).to_have_text("Authorization profiles")
    expect(page.get_by_test_id("profiles-empty")).to_be_visible()
    console.check("profiles-empty")
    page.get_by_role("link", name="Create Authorization Profile").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("New Authorization Mechanism")
    expect(page.get_by_test_id("callback-url")).to_have_value(console.live.url + "/oauth/callback")

    # -- submitting it empty: every mandatory field of the type says so, all at once ------
    types = page.locator("#f-auth_type")
    for auth_type in AuthType:
        types.select_option(auth_type.value)
        _save(page)
        expect(page.get_by_test_id("form-error")).to_be_visible()
        expected = set(required_fields(auth_type, lambda _field: False))
        expect(_error(page, "name")).to_have_text("Name is required")
        for field in expected:
            expect(_error(page, field)).to_contain_text(
                f"{spec_for(auth_type).label_of(field)} is required"
            )
        assert _fields_with_errors(page) == expected
        console.check(f"profile-new-errors-{auth_type.value.removeprefix('oauth2_')}")

    # -- a bad URL, and a missing field key in an added row ------------------------------
    types.select_option(AuthType.CLIENT_CREDENTIALS.value)
    page.locator("#f-token_url").fill("ftp://idp.example.com/token")
    page.get_by_role("button", name="+ Add Additional Field").click()
    row = page.locator('[data-list="additional_fields"] [data-item]')
    row.get_by_label("Field Value").fill("2344567")
    _save(page)
    expect(_error(page, "token_url")).to_contain_text("is not a valid http or https URL")
    expect(row.get_by_label("Field Key")).to_have_attribute("aria-invalid", "true")
    expect(row.locator(".field:has([data-name=key]) .field-error")).to_have_text(
        "Field key is required"
    )
    row.get_by_role("button", name=re.compile("Remove")).click()

    # -- client credentials, prefilled by discovery --------------------------------------
    client = idp.register_client("client-credentials")
    console.plant(client.client_secret)
    _fill_client(page, "billing", client.client_id, client.client_secret)
    page.locator("#discovery-issuer").fill("http://127.0.0.1:1/nothing-here")
    page.get_by_role("button", name="Prefill from discovery").click()
    expect(page.get_by_test_id("discovery-error")).not_to_be_empty()
    page.locator("#discovery-issuer").fill(idp.issuer)
    page.get_by_role("button", name="Prefill from discovery").click()
    expect(page.get_by_test_id("discovery-status")).to_contain_text("Token Request URL")
    expect(page.locator("#f-token_url")).to_have_value(idp.token_url)
    expect(page.locator("#f-revocation_url")).to_have_value(idp.revocation_url)
    console.check("profile-new-client-credentials")
    _save(page)
    _notice(page, "The new auth profile is saved")
    # Said once: the notice's code leaves the address, so a reload does not repeat it.
    expect(page).to_have_url(re.compile(r"/console/profiles$"))
    page.reload()
    expect(page.get_by_test_id("notice")).to_have_count(0)
    expect(_row(page, "billing")).to_contain_text("OAuth 2.0 Client Credentials")

    # -- password grant, pre-authorized with a user of the IdP ---------------------------
    page.get_by_role("link", name="Add new auth").click()
    page.locator("#f-auth_type").select_option(AuthType.PASSWORD.value)
    client = idp.register_client("password")
    console.plant(client.client_secret)
    _fill_client(page, "billing-user", client.client_id, client.client_secret)
    page.locator("#f-token_url").fill(idp.token_url)
    expect(page.locator("#f-username")).to_be_hidden()
    page.get_by_label("Pre-authorize the integration (Recommended)").check()
    page.locator("#f-username").fill(user[0])
    page.locator("#f-password").fill(user[1])
    page.locator("#f-token_test_url").fill(idp.userinfo_url)
    page.locator("#f-token_test_method").select_option("GET")
    page.locator("#f-token_test_content_type").select_option("json")
    page.get_by_role("button", name="Add Form Fields").click()
    form_field = page.locator('[data-list="form_fields"] [data-item]')
    form_field.get_by_label("Title of Field").fill("Region")
    form_field.get_by_label("Field Key").fill("region")
    form_field.get_by_label("Help Hint").fill("eu or us")
    form_field.get_by_text("Advanced Options").click()
    form_field.get_by_label("Mandatory").check()
    form_field.get_by_label("Visibility").select_option("readonly")
    console.check("profile-new-password")
    _save(page)
    _notice(page, "The new auth profile is saved")
    stored = console.live.http.get("/api/v1/profiles", params={"name": "billing-user"}).json()[0]
    stored = console.live.http.get(f"/api/v1/profiles/{stored['id']}").json()
    assert stored["authorization_mode"] == "preauthorized"
    assert stored["password_set"] and stored["username"] == user[0]
    assert stored["form_fields"][0]["mandatory"] is True
    assert stored["form_fields"][0]["visibility"] == "readonly"

    # -- device code: a public client, the device endpoint found by discovery ------------
    page.get_by_role("link", name="Add new auth").click()
    page.locator("#f-auth_type").select_option(AuthType.DEVICE_CODE.value)
    client = idp.register_client("device-code", client_type="public")
    _fill_client(page, "cli-device", client.client_id)
    page.locator("#f-client_auth_method").select_option("none")
    expect(page.locator("#f-client_secret")).to_be_hidden()
    page.locator("#discovery-issuer").fill(idp.issuer)
    page.get_by_role("button", name="Prefill from discovery").click()
    expect(page.locator("#f-device_authorization_url")).to_have_value(idp.device_authorization_url)
    console.check("profile-new-device-code")
    _save(page)
    _notice(page, "The new auth profile is saved")

    # -- authorization code, with the tenancy choice -------------------------------------
    page.get_by_role("link", name="Add new auth").click()
    expect(page.locator("#f-auth_type")).to_have_value(AuthType.AUTHORIZATION_CODE.value)
    client = idp.register_client("authorization-code", [console.live.url + "/oauth/callback"])
    console.plant(client.client_secret)
    _fill_client(page, "crm", client.client_id, client.client_secret)
    page.locator("#f-authorization_url").fill(idp.authorization_url)
    page.locator("#f-token_url").fill(idp.token_url)
    page.get_by_label("No, this tool and all of its tasks do not have tenancy URLs.").check()
    page.locator("#f-scopes").fill("read write")
    page.get_by_role("button", name="+ Add Authorization Field").click()
    auth_field = page.locator('[data-list="authorization_fields"] [data-item]')
    auth_field.get_by_label("Field Type").select_option("header")
    auth_field.get_by_label("Field Key").fill("X-Api-Version")
    auth_field.get_by_label("Field Value").fill("2")
    page.locator("#connector-yes").check()  # access using a connector
    expect(page.locator("#f-egress_proxy_url")).to_be_visible()
    page.locator("#connector-no").check()
    expect(page.locator("#f-egress_proxy_url")).to_be_hidden()
    console.check("profile-new-authorization-code")
    _save(page)
    _notice(page, "The new auth profile is saved")

    # -- the list: four profiles, each configured, search and filter ---------------------
    for name in ("billing", "billing-user", "cli-device", "crm"):
        expect(_row(page, name).get_by_test_id("status-configured")).to_be_visible()
    console.check("profiles-list")
    page.get_by_label("Search by name").fill("billing")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("tr[data-profile-row]")).to_have_count(2)
    page.get_by_label("Status").select_option("failing")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_test_id("profiles-no-match")).to_be_visible()


def test_an_admin_edits_tests_and_deletes_profiles(
    console: Console, idp: IdP, user: tuple[str, str]
) -> None:
    page = console.page
    live = console.live
    profile, client = oauth_profile(
        live, idp, "client-credentials", name="billing", revocation_url=idp.revocation_url
    )
    console.plant(client.client_secret)
    live.connect(profile["id"])
    wrong_secret = f"planted-wrong-{uuid.uuid4().hex}"
    console.plant(wrong_secret)
    wrong, _ = oauth_profile(live, idp, "client-credentials", name="wrong-secret")
    shared = live.connect(wrong["id"])["id"]
    live.http.patch(f"/api/v1/profiles/{wrong['id']}", json={"client_secret": wrong_secret})
    # The shared connection's next token is refused: the profile fails (an incident).
    live.expire(shared)
    assert live.token(shared).status_code == 400
    incomplete = live.http.post(
        "/api/v1/profiles",
        params={"allow_incomplete": "true"},
        json={"name": "half-done", "auth_type": "oauth2_client_credentials"},
    ).json()

    # -- the list: the incomplete one cannot be tested, and says why ---------------------
    console.goto("/console/profiles")
    half = _row(page, "half-done")
    status = half.get_by_test_id("status-not_configured")
    status.focus()
    expect(status.get_by_role("tooltip")).to_be_visible()
    expect(status.get_by_role("tooltip")).to_contain_text("Client ID")
    expect(half.get_by_test_id("test-button")).to_have_attribute("aria-disabled", "true")
    assert incomplete["status"] == "not_configured"
    console.goto(f"/console/profiles/{incomplete['id']}/edit")
    expect(page.get_by_test_id("edit-status")).to_contain_text("Missing: Identity Provider Name")
    console.goto("/console/profiles")
    failing = _row(page, "wrong-secret").get_by_test_id("status-failing")
    failing.hover()
    expect(failing.get_by_role("tooltip")).to_contain_text("invalid_client")

    # -- edit: name and type locked, the secret set but hidden ---------------------------
    _row(page, "billing").get_by_label("Actions for billing").click()
    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Update authorization mechanism")
    expect(page.get_by_test_id("locked-name")).to_have_value("billing")
    expect(page.get_by_test_id("locked-name")).to_have_attribute("readonly", "")
    expect(page.get_by_test_id("locked-auth-type")).to_have_value("OAuth 2.0 Client Credentials")
    expect(
        page.locator('#profile-form [name="name"], #profile-form [name="auth_type"]')
    ).to_have_count(0)
    expect(page.get_by_test_id("secret-state-client_secret")).to_have_text("Set — hidden")
    expect(page.locator("#f-client_secret")).to_have_value("")
    expect(page.locator("#f-client_secret")).to_have_attribute("placeholder", "Leave blank to keep")
    console.check("profile-edit")
    page.locator("#f-description").fill("The billing API, read only")
    page.locator("#f-scopes").fill("read")
    page.get_by_role("button", name="Update new auth").click()
    _notice(page, "The auth profile is updated")
    changed = live.http.get(f"/api/v1/profiles/{profile['id']}").json()
    assert changed["description"] == "The billing API, read only"
    assert changed["scopes"] == ["read"] and changed["client_secret_set"]

    # -- test: the kept secret still works ------------------------------------------------
    _row(page, "billing").get_by_role("button", name="Test billing").click()
    dialog = page.locator("#test-dialog")
    expect(dialog.get_by_role("heading", name="Test Authorization")).to_be_visible()
    result = dialog.get_by_test_id("test-result")
    expect(result).to_have_attribute("data-ok", "true")
    expect(result).to_contain_text("Auth Test Succeeded")
    expect(dialog.get_by_test_id("test-headers")).to_contain_text("Basic [redacted]")
    console.check("profile-test-success")
    dialog.get_by_role("button", name="Close").click()

    # -- test: a wrong secret fails, with the Headers and Response tabs ------------------
    _row(page, "wrong-secret").get_by_role("button", name="Test wrong-secret").click()
    expect(result).to_have_attribute("data-ok", "false")
    expect(result).to_contain_text("Auth Test Failed")
    expect(result).to_contain_text("invalid_client")
    dialog.get_by_role("tab", name="Headers").click()
    expect(dialog.get_by_test_id("test-headers")).to_contain_text("authorization: Basic [redacted]")
    expect(dialog.get_by_test_id("test-headers")).to_contain_text("HTTP 401")
    dialog.get_by_role("tab", name="Response").click()
    expect(dialog.get_by_test_id("test-response")).to_be_visible()
    expect(dialog.get_by_test_id("test-response")).to_contain_text("invalid_client")
    expect(dialog.get_by_test_id("test-headers")).to_be_hidden()
    console.check("profile-test-failure")
    dialog.get_by_role("button", name="Close").click()

    # -- the activity page ---------------------------------------------------------------
    page.get_by_role("link", name="billing", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("billing")
    expect(page.get_by_test_id("profile-status")).to_have_text("Configured")
    expect(page.get_by_test_id("profile-settings")).to_contain_text("Set")
    expect(page.get_by_test_id("profile-audit")).to_contain_text("profile.tested")
    expect(page.get_by_test_id("profile-audit")).to_contain_text("profile.updated")
    expect(page.get_by_test_id("last-refresh")).not_to_have_text("No connection yet")
    console.check("profile-activity")

    # -- the failing one's activity: the open incident, the refused refresh --------------
    console.goto(f"/console/profiles/{wrong['id']}")
    expect(page.get_by_test_id("profile-status")).to_have_text("Failing")
    expect(page.get_by_test_id("open-incident")).to_contain_text("invalid_client")
    expect(page.get_by_test_id("recent-failures")).to_contain_text("invalid_client")
    console.check("profile-activity-failing")

    # -- delete, behind a confirmation that says what goes with it -----------------------
    console.goto("/console/profiles")
    _row(page, "billing").get_by_label("Actions for billing").click()
    _row(page, "billing").get_by_role("button", name="Delete").click()
    confirm = page.locator("#confirm-dialog")
    expect(confirm).to_be_visible()
    expect(confirm).to_contain_text("cannot be recovered")
    expect(confirm).to_contain_text("Its connection and that connection's tokens are deleted")
    expect(confirm).to_contain_text("revoked first at the identity provider")
    console.check("profile-delete-confirm")
    confirm.get_by_role("button", name="Delete").click()
    _notice(page, "The auth profile is deleted")
    expect(page).to_have_url(re.compile(r"/console/profiles$"))
    expect(_row(page, "billing")).to_have_count(0)
    assert live.http.get(f"/api/v1/profiles/{profile['id']}").status_code == 404

    # -- a viewer sees the list, and nothing that changes or uses a profile --------------
    console.add_user("vera@example.com", "viewer", password="viewer-password-1")
    viewer = console.page_as("vera@example.com", "viewer-password-1", "/console/profiles")
    expect(viewer.get_by_role("heading", level=1)).to_have_text("Authorization profiles")
    expect(viewer.get_by_role("link", name="Add new auth")).to_have_count(0)
    expect(viewer.locator("[data-test-profile]")).to_have_count(0)
    _row(viewer, "wrong-secret").get_by_label("Actions for wrong-secret").click()
    expect(_row(viewer, "wrong-secret").get_by_role("link", name="Edit")).to_have_count(0)
    expect(_row(viewer, "wrong-secret").get_by_role("button", name="Delete")).to_have_count(0)
    console.check("profiles-list-viewer", viewer)


def test_an_authorization_code_test_signs_in_at_the_idp_in_a_new_window(
    console: Console, idp: IdP, user: tuple[str, str]
) -> None:
    page = console.page
    live = console.live
    console.plant(user[1])
    # A form field whose key holds a dot: sent as the key it is, not as a nested object.
    profile, client = oauth_profile(
        live,
        idp,
        "authorization-code",
        name="crm",
        form_fields=[{"title": "Region", "key": "org.region", "mandatory": True}],
    )
    console.plant(client.client_secret)

    def own_connections() -> list[dict[str, Any]]:
        answer = live.http.get(
            "/api/v1/connections", params={"profile_id": profile["id"], "owner": console.admin_id}
        )
        assert answer.status_code == 200, answer.text
        listed: list[dict[str, Any]] = answer.json()
        return listed

    console.goto(f"/console/profiles/{profile['id']}")
    # The console's serialisation: a map's keys are sent as they are (dots, __proto__),
    # and no dotted name reaches a prototype.
    serialized = page.evaluate(
        """() => {
          const form = document.createElement("form");
          form.innerHTML = '<input name="__proto__.polluted" value="1">' +
            '<input name="constructor.prototype.polluted" value="1">' +
            '<input data-map="fields" data-key="__proto__" value="kept">' +
            '<input data-map="fields" data-key="org.region" value="eu">';
          const body = window.Console.serialize(form);
          return { body: JSON.stringify(body), clean: ({}).polluted === undefined };
        }"""
    )
    assert serialized == {
        "body": '{"fields":{"__proto__":"kept","org.region":"eu"}}',
        "clean": True,
    }
    page.get_by_role("button", name="Test crm").click()
    dialog = page.locator("#test-dialog")
    dialog.get_by_label("Region (mandatory)").fill("eu")
    dialog.get_by_role("button", name="Test", exact=True).click()
    result = dialog.get_by_test_id("test-result")
    expect(result).to_have_attribute("data-ok", "true")
    expect(result).to_contain_text("accepted the client")
    sign_in = dialog.get_by_role("button", name="Sign in at the identity provider")
    outcome = dialog.get_by_test_id("authorize-result")

    # Given up: the window closed before signing in, the connection it started goes.
    with page.context.expect_page() as opened:
        sign_in.click()
    opened.value.wait_for_url(re.compile(r"/accounts/login/"))
    assert [c["status"] for c in own_connections()] == ["pending"]
    opened.value.close()
    expect(outcome).to_have_attribute("data-status", "closed", timeout=30_000)
    expect(outcome).to_contain_text("The connection this test started was removed")
    assert own_connections() == []

    # Signed in at the IdP's own page: a connection of the tester's own, active.
    with page.context.expect_page() as opened:
        sign_in.click()
    idp_page = opened.value
    idp_page.wait_for_url(re.compile(r"/accounts/login/"))
    idp_page.fill("input[name=username]", user[0])
    idp_page.fill("input[name=password]", user[1])
    idp_page.locator("form").first.evaluate("form => form.requestSubmit()")
    expect(idp_page.get_by_role("heading")).to_have_text("Connected")
    expect(outcome).to_have_attribute("data-status", "active", timeout=30_000)
    expect(outcome).to_contain_text("Connected: the identity provider issued a token")
    console.check("profile-test-authorization-code")
    idp_page.close()
    connections = own_connections()
    assert [c["status"] for c in connections] == ["active"]

    # Tested again: the same connection, authorized again (no second one).
    dialog.get_by_role("button", name="Test again").click()
    expect(result).to_have_attribute("data-ok", "true")
    with page.context.expect_page() as opened:
        sign_in.click()
    expect(opened.value.get_by_role("heading")).to_have_text("Connected")
    expect(outcome).to_have_attribute("data-status", "active", timeout=30_000)
    opened.value.close()
    again = own_connections()
    assert [(c["id"], c["status"]) for c in again] == [(connections[0]["id"], "active")]
    assert again[0]["refreshed_at"] != connections[0]["refreshed_at"]
