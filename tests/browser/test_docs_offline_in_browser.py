"""Swagger UI and Redoc render in chromium with every request to another host refused, as
on a machine without the internet."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Request, Route, expect

from tests.support.app import Live

LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'browser.db'}"


@pytest.fixture
def offline_page(page: Page) -> tuple[Page, list[str]]:
    """The page, with every request off loopback refused and recorded, as is every request
    that failed. One kind of failure is left out: an image the page's Content-Security-
    Policy stopped, which the browser never asked for (Redoc's "powered by" logo, on a CDN;
    Redoc leaves it out when it does not load)."""
    refused: list[str] = []

    def only_loopback(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).scheme in ("data", "blob") or urlsplit(url).hostname in LOOPBACK:
            route.continue_()
        else:
            refused.append(url)
            route.abort()

    def failed(request: Request) -> None:
        blocked_by_policy = request.failure in ("csp", "net::ERR_BLOCKED_BY_CSP")
        if not (blocked_by_policy and request.resource_type == "image"):
            refused.append(f"{request.url} failed: {request.failure}")

    page.context.route("**/*", only_loopback)
    page.on("requestfailed", failed)
    return page, refused


def test_swagger_ui_renders_every_operation_offline(
    live: Live, offline_page: tuple[Page, list[str]]
) -> None:
    page, refused = offline_page
    page.goto(f"{live.url}/docs")
    expect(page.locator(".opblock").first).to_be_visible()
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/profiles").first).to_be_visible()
    # An operation with several tags shows once under each.
    shown = set(
        page.eval_on_selector_all(
            ".opblock-summary",
            """blocks => blocks.map(b =>
                b.querySelector('.opblock-summary-method').textContent + ' ' +
                b.querySelector('.opblock-summary-path').getAttribute('data-path'))""",
        )
    )
    paths = live.http.get("/openapi.json").json()["paths"]
    documented = {f"{method.upper()} {path}" for path, ops in paths.items() for method in ops}
    assert shown == documented
    assert refused == []


def test_redoc_renders_the_api_offline(live: Live, offline_page: tuple[Page, list[str]]) -> None:
    page, refused = offline_page
    page.goto(f"{live.url}/redoc")
    expect(page.locator("h1", has_text="authprofiles").first).to_be_visible()
    expect(page.get_by_text("/api/v1/profiles").first).to_be_attached()
    assert refused == []
