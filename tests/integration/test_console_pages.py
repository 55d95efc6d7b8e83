"""The console's pages over HTTP (no browser): a 404 page for any other console address,
with the console's headers (and a plain 404 for a missing file), the sign-in redirect
with them too, no secret handed to a template, the audit log's profile filter beyond
the profiles it offers, and the profiles list a page at a time."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from authprofiles.app import create_app
from authprofiles.composition import Services
from authprofiles.web.console import admin
from authprofiles.web.console.base import CONSOLE_HEADERS

#: HTTP behaviour the database does not change (see tests/conftest.py).
SQLITE_ONLY = True

PASSWORD = "correct horse battery staple"
CLIENT_SECRET = "planted-client-secret-9f3a2c"


@pytest.fixture
def browser(services: Services) -> Iterator[TestClient]:
    """A signed-out browser on the app (cookies kept, redirects not followed)."""
    app = create_app(services=services, migrate=False, background_refresh=False)
    with TestClient(app, follow_redirects=False) as client:
        yield client


def _sign_in(browser: TestClient, services: Services, role: str = "admin") -> str:
    email = f"{role}@example.com"
    services.people.create_user(email=email, name="Ada", role=role, password=PASSWORD)
    form = browser.get("/signin")
    found = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert found is not None, form.text
    signed_in = browser.post(
        "/signin", data={"email": email, "password": PASSWORD, "csrf_token": found.group(1)}
    )
    assert signed_in.status_code == 303, signed_in.text
    return email


def _csrf(browser: TestClient) -> str:
    answer = browser.get("/signin/csrf")
    assert answer.status_code == 200, answer.text
    return str(answer.json()["csrf_token"])


def _profile(browser: TestClient, name: str) -> dict[str, Any]:
    created = browser.post(
        "/api/v1/profiles",
        headers={"X-CSRF-Token": _csrf(browser)},
        json={
            "name": name,
            "auth_type": "oauth2_client_credentials",
            "identity_provider": "Acme ID",
            "client_id": f"client-{name}",
            "client_secret": CLIENT_SECRET,
            "token_url": "https://idp.example.com/oauth/token",
        },
    )
    assert created.status_code == 201, created.text
    profile: dict[str, Any] = created.json()
    return profile


def _has_console_headers(response: httpx.Response) -> None:
    for name, value in CONSOLE_HEADERS.items():
        assert response.headers.get(name) == value, name


def test_an_unknown_console_address_is_a_404_page_with_the_console_headers(
    browser: TestClient, services: Services
) -> None:
    signed_out = browser.get("/console/no-such-page")
    assert signed_out.status_code == 303
    assert signed_out.headers["location"] == "/signin?next=/console/no-such-page"
    _has_console_headers(signed_out)

    _sign_in(browser, services)
    page = browser.get("/console/no-such-page/deeper")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "<h1>Page not found</h1>" in page.text
    assert "/console/no-such-page/deeper" in page.text
    _has_console_headers(page)
    # The pages themselves still answer, and /console/ is the console's start.
    assert browser.get("/console/profiles").status_code == 200
    assert browser.get("/console/").headers["location"] == "/console"
    posted = browser.post("/console/no-such-page")
    assert posted.status_code == 404
    _has_console_headers(posted)


def test_the_console_files_say_their_type_and_a_missing_one_is_a_plain_404(
    browser: TestClient,
) -> None:
    script = browser.get("/console/static/console.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert script.headers["x-content-type-options"] == "nosniff"

    missing = browser.get("/console/static/no-such-file.js")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/plain")
    _has_console_headers(missing)


def test_no_template_gets_the_services_or_a_profile_with_its_secrets(
    browser: TestClient, services: Services
) -> None:
    _sign_in(browser, services)
    profile = _profile(browser, "billing")

    page = browser.get(f"/console/profiles/{profile['id']}")
    assert page.status_code == 200, page.text
    context = page.context  # type: ignore[attr-defined]
    assert "page" not in context
    assert not any(isinstance(value, Services) for value in context.values())
    shown = context["profile"]
    assert not hasattr(shown, "client_secret")
    assert CLIENT_SECRET not in repr({k: v for k, v in context.items() if k != "request"})
    assert CLIENT_SECRET not in page.text
    assert "Set" in page.text  # the secret is said to be set, no more

    for path in ("/console/profiles", f"/console/profiles/{profile['id']}/edit", "/console/users"):
        answer = browser.get(path)
        assert answer.status_code == 200, path
        assert "page" not in answer.context, path  # type: ignore[attr-defined]


def test_the_audit_filter_names_a_live_profile_beyond_the_choices_it_offers(
    browser: TestClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    _sign_in(browser, services)
    _profile(browser, "alpha")
    beyond = _profile(browser, "omega")
    monkeypatch.setattr(admin, "PROFILE_CHOICES", 1)

    page = browser.get("/console/audit", params={"profile_id": beyond["id"]})
    assert page.status_code == 200, page.text
    assert f'<option value="{beyond["id"]}" selected>omega</option>' in page.text
    assert "Deleted profile" not in page.text

    gone = "0b7c1a9e-0000-4000-8000-000000000000"
    page = browser.get("/console/audit", params={"profile_id": gone})
    assert f"Deleted profile ({gone[:8]})" in page.text


def test_the_users_page_shows_when_each_member_last_signed_in(
    browser: TestClient, services: Services
) -> None:
    email = _sign_in(browser, services)
    services.people.create_user(email="new@example.com", name="New", role="viewer")

    page = browser.get("/console/users")
    assert page.status_code == 200, page.text
    rows = {row.member.email: row for row in page.context["rows"]}  # type: ignore[attr-defined]
    assert rows[email].last_sign_in is not None
    assert rows["new@example.com"].last_sign_in is None


def test_the_profiles_list_comes_a_page_at_a_time_by_name(
    browser: TestClient, services: Services
) -> None:
    _sign_in(browser, services)
    for name in ("charlie", "alpha", "bravo"):
        _profile(browser, name)

    def names(answer: httpx.Response) -> list[str]:
        assert answer.status_code == 200, answer.text
        return re.findall(r'data-profile-row="([^"]+)"', answer.text)

    first = browser.get("/console/profiles", params={"limit": "2"})
    assert names(first) == ["alpha", "bravo"]
    assert "It has no connections" in first.text  # counted, for the delete confirmation
    next_url = first.context["next_url"]  # type: ignore[attr-defined]
    assert next_url and "limit=2" in next_url
    second = browser.get(next_url)
    assert names(second) == ["charlie"]
    assert second.context["next_url"] is None  # type: ignore[attr-defined]
    assert second.context["first_url"] == "/console/profiles?limit=2"  # type: ignore[attr-defined]

    # A search pages its matches, and says how many match of how many there are.
    searched = browser.get("/console/profiles", params={"q": "a", "limit": "1"})
    assert names(searched) == ["alpha"]
    assert "3 of 3 profiles match" in searched.text
    more = browser.get(searched.context["next_url"])  # type: ignore[attr-defined]
    assert names(more) == ["bravo"]
    assert "q=a" in more.context["first_url"]  # type: ignore[attr-defined]
