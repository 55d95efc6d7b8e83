"""A person connects an account: the IdP's own login page in chromium, back to our callback."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.support.app import Live
from tests.support.idp import IdP


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    return f"sqlite:///{tmp_path / 'browser.db'}"


def _profile(live: Live, idp: IdP, consent: bool) -> dict:
    client = idp.register_client(
        "authorization-code",
        redirect_uris=[live.url + "/oauth/callback"],
        skip_authorization=not consent,
    )
    return live.create_profile(
        auth_type="oauth2_authorization_code",
        client_id=client.client_id,
        client_secret=client.client_secret,
        authorization_url=idp.authorization_url,
        token_url=idp.token_url,
        scopes=["read"],
        tenancy=False,
    )


def _log_in(page: Page, username: str, password: str) -> None:
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.locator("form").first.evaluate("form => form.requestSubmit()")


def test_a_person_authorizes_in_the_browser_and_sees_it_worked(
    page: Page, live: Live, idp: IdP, user: tuple[str, str]
) -> None:
    profile = _profile(live, idp, consent=True)
    started = live.connect(profile["id"], owner="alice")
    page.goto(started["authorization_url"])
    _log_in(page, *user)
    page.get_by_role("button", name="Authorize").or_(
        page.locator("input[name=allow]")
    ).first.click()

    result = page.get_by_test_id("callback-result")
    expect(result).to_have_attribute("data-ok", "true")
    expect(page.get_by_role("heading")).to_have_text("Connected")
    connection = live.http.get(f"/api/v1/connections/{started['connection_id']}").json()
    assert connection["status"] == "active"
    assert live.token(started["connection_id"]).status_code == 200

    # Going back and replaying the redirect does not connect anything twice.
    page.reload()
    expect(result).to_have_attribute("data-ok", "false")
    expect(result).to_contain_text("already used")


def test_a_person_who_declines_is_told_so(
    page: Page, live: Live, idp: IdP, user: tuple[str, str]
) -> None:
    profile = _profile(live, idp, consent=True)
    started = live.connect(profile["id"])
    page.goto(started["authorization_url"])
    _log_in(page, *user)
    page.locator("input[type=submit]:not([name=allow]), button:not([name=allow])").filter(
        has_text="Cancel"
    ).or_(page.get_by_role("button", name="Cancel")).first.click()
    result = page.get_by_test_id("callback-result")
    expect(result).to_have_attribute("data-ok", "false")
    expect(result).to_contain_text("access_denied")
