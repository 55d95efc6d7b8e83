"""Playwright driving Debian's chromium (``playwright install`` cannot download browsers).

Fixtures here:
  browser      (module)   chromium, headless
  page         (function) a page in a fresh context of its own
  database_url (function) SQLite only: the browser tests run once, on a SQLite file
  console      (function) tests.support.console.Console: the live app with a page signed
                          in as the default workspace's admin, and the checks of a screen
  console_sso  (function) tests.support.console.Sso: the same console with single sign-on
                          at the suite's OpenID provider (oidc-provider)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support.app import Live
from tests.support.console import Console, Sso, axe_source, configure_sso, open_console
from tests.support.oidc_provider import OidcProvider

CHROMIUM = os.environ.get("AUTHPROFILES_CHROMIUM", "/usr/bin/chromium")
# The machine has no network beyond loopback: keep chromium from calling home.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
HERE = Path(__file__).resolve().parent

# Playwright's assertions wait 5 s by default: too short for a page that waits on the
# IdP (or on a poll of it) while the suite keeps two cores busy. A wait on such a real
# event says its own, longer, timeout; this is the floor for the rest.
expect.set_options(timeout=10_000)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test here drives chromium: mark it so (``-m "not browser"`` leaves them out)."""
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.browser)


# Module scope: the sync API keeps an event loop running in this thread while it is open,
# which would stop later tests from calling asyncio.run().
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        raise RuntimeError(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
    # Playwright gives every launch a fresh, empty profile directory of its own.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """The browser tests test pages, not databases: SQLite alone."""
    return f"sqlite:///{tmp_path / 'browser.db'}"


@pytest.fixture(scope="session")
def _axe() -> str:
    """axe-core's script, installed from the npm registry once per session."""
    return axe_source()


@pytest.fixture
def console(live: Live, browser: Browser, _axe: str) -> Iterator[Console]:
    console = open_console(live, browser)
    yield console
    console.close()


@pytest.fixture
def console_sso(console: Console, oidc_provider: OidcProvider) -> Sso:
    return configure_sso(console, oidc_provider)
