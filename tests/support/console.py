"""The console in chromium, for the browser tests: a signed-in admin's page, and the
checks every screen passes (screenshots at laptop and phone widths and in dark mode,
axe-core, no secret).

Used through the ``console`` and ``console_sso`` fixtures of tests/browser/conftest.py:

    def test_something(console: Console) -> None:
        console.goto("/console/profiles")            # signed in as the workspace admin
        console.plant(client_secret)                 # .check fails if it is ever on a page
        console.check("profiles-empty")              # screenshots + axe-core + secrets
        other = console.new_page()                   # signed out, its own cookies
        user_id = console.add_user("dev@example.com", "developer", password="...")
        console.sign_in(other, "dev@example.com", "...")

axe-core comes from the npm registry: ``tests/support/axe/package.json`` pins it and
``axe_source()`` runs ``npm ci`` there when ``node_modules`` does not hold the locked
version (once per session at most), then reads ``axe.min.js``. It is injected with
``page.evaluate`` (DevTools evaluation, which the page's Content-Security-Policy does not
govern), so the contexts keep enforcing the console's CSP: a violation of it (an inline
script or style) is reported by the browser and fails ``check``, as does an uncaught
script error.
"""

from __future__ import annotations

import fcntl
import functools
import html
import json
import re
import secrets
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, quote_plus

from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Response,
    ViewportSize,
    expect,
)
from playwright.sync_api import (
    Error as PlaywrightError,
)
from pydantic import SecretStr

from tests.support.app import Live
from tests.support.oidc_provider import Client, OidcProvider

REPO = Path(__file__).resolve().parents[2]
#: Where ``check`` saves its screenshots: ``<name>-1280.png``, ``<name>-390.png`` and
#: ``<name>-1280-dark.png``.
SCREENS = REPO / "test-artifacts" / "screens"
AXE_DIR = Path(__file__).resolve().parent / "axe"

#: The widths (and heights) of ``check``'s screenshots: a laptop and a phone.
LAPTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
#: The axe-core impacts that fail a screen.
FAILING_IMPACTS = ("serious", "critical")
#: The shortest value ``plant`` takes: a shorter one would be found by chance.
MIN_SECRET_LENGTH = 6

#: Where a sign-in lands: any console page.
_ON_CONSOLE = re.compile(r"^[^?#]*/console(/[^?#]*)?([?#].*)?$")


class AxeInstallError(RuntimeError):
    """npm could not install axe-core."""


# -- axe-core, from the npm registry -------------------------------------------------------


def _locked_version(directory: Path) -> str:
    lock = json.loads((directory / "package-lock.json").read_text())
    return str(lock["packages"]["node_modules/axe-core"]["version"])


def _installed_version(directory: Path) -> str | None:
    manifest = directory / "node_modules" / "axe-core" / "package.json"
    if not manifest.exists() or not (manifest.parent / "axe.min.js").exists():
        return None
    return str(json.loads(manifest.read_text()).get("version"))


def ensure_axe_installed(directory: Path = AXE_DIR, timeout: float = 300.0) -> Path:
    """``npm ci`` in ``directory`` unless its node_modules holds the locked axe-core
    already; the path of ``axe.min.js``. A file lock keeps two workers from installing
    at once."""
    script = directory / "node_modules" / "axe-core" / "axe.min.js"
    wanted = _locked_version(directory)
    if _installed_version(directory) == wanted:
        return script
    npm = shutil.which("npm")
    if npm is None:
        raise AxeInstallError("npm is needed to install axe-core for the browser tests")
    with (directory / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed_version(directory) == wanted:
            return script  # another worker installed it while we waited
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise AxeInstallError(
                f"npm ci failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
            )
    installed = _installed_version(directory)
    if installed != wanted:
        raise AxeInstallError(f"npm ci installed axe-core {installed}, the lock says {wanted}")
    return script


@functools.cache
def axe_source() -> str:
    """The text of axe.min.js (installed first if need be; read once per session)."""
    return ensure_axe_installed().read_text()


_RUN_AXE = """async () => {
  const results = await window.axe.run(document, { resultTypes: ["violations"] });
  return {
    engine: results.testEngine.name + " " + results.testEngine.version,
    passes: results.passes.length,
    violations: results.violations.map(v => ({
      id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
      nodes: v.nodes.map(n => ({ target: n.target.join(" "), summary: n.failureSummary,
                                 html: n.html.slice(0, 300) })),
    })),
  };
}"""


def run_axe(page: Page) -> dict[str, Any]:
    """axe-core's results on the page as it is: ``{engine, passes, violations}``."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(axe_source())
    results: dict[str, Any] = page.evaluate(_RUN_AXE)
    if not results["engine"].startswith("axe-core") or results["passes"] == 0:
        raise AssertionError(f"axe-core did not run on {page.url}: {results}")
    return results


def _describe(violation: dict[str, Any], where: str) -> str:
    nodes = "\n".join(
        f"    - {node['target']}\n      {node['html']}\n      "
        + (node["summary"] or "").strip().replace("\n", "\n      ")
        for node in violation["nodes"][:6]
    )
    more = len(violation["nodes"]) - 6
    return (
        f"  [{violation['impact']}] {violation['id']} at {where}: {violation['help']}"
        f" ({violation['helpUrl']})\n{nodes}" + (f"\n      … and {more} more" if more > 0 else "")
    )


# -- the console ---------------------------------------------------------------------------


@dataclass
class Console:
    """A browser on the live app, signed in as the default workspace's admin."""

    live: Live = field(repr=False)
    browser: Browser = field(repr=False)
    admin_email: str
    password: str = field(repr=False)
    admin_id: str
    page: Page = field(init=False, repr=False)
    #: Values no page may ever contain (``plant`` adds, ``check`` looks).
    planted: set[str] = field(default_factory=set, repr=False)
    #: Problems the browser reported on each page (CSP violations, uncaught errors),
    #: until a ``check`` reports them.
    _problems: dict[int, list[str]] = field(default_factory=dict, repr=False)
    _contexts: list[BrowserContext] = field(default_factory=list, repr=False)

    # -- pages ----------------------------------------------------------------------------
    def new_page(self, **context_options: Any) -> Page:
        """A fresh, signed-out page in a new browser context (cookies of its own), on the
        live app (relative URLs work), 1280x800, enforcing the pages' CSP.
        ``context_options`` add to or replace Playwright's ``new_context`` options
        (``color_scheme="dark"``, another ``viewport``, ...)."""
        options: dict[str, Any] = {
            "base_url": self.live.url,
            "viewport": dict(LAPTOP),
            "locale": "en-GB",
            "timezone_id": "UTC",
            **context_options,
        }
        context = self.browser.new_context(**options)
        context.set_default_timeout(15_000)
        self._contexts.append(context)
        page = context.new_page()
        self._watch(page)
        context.on("page", self._watch)  # windows the page opens (window.open)
        return page

    def _watch(self, page: Page) -> None:
        problems = self._problems.setdefault(id(page), [])

        def on_console(message: ConsoleMessage) -> None:
            text = message.text
            if message.type == "error" and "Content Security Policy" in text:
                problems.append(f"CSP violation: {text}")

        def on_error(error: Exception) -> None:
            problems.append(f"uncaught script error: {error}")

        page.on("console", on_console)
        page.on("pageerror", on_error)

    def goto(self, path: str, page: Page | None = None) -> Response | None:
        """Open ``path`` (relative to the live app) in the admin's page (or ``page``)."""
        return (page or self.page).goto(path)

    def sign_in(self, page: Page, email: str, password: str, next_path: str = "") -> None:
        """Sign in through the /signin form and wait until the page lands on the console
        (``next_path``: a console path to land on; by default the console's start)."""
        target = "/signin" + (f"?next={quote(next_path, safe='/')}" if next_path else "")
        page.goto(target)
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password", exact=True).fill(password)
        page.get_by_role("button", name="Sign in", exact=True).click()
        expect(page).to_have_url(_ON_CONSOLE)

    def page_as(self, email: str, password: str, next_path: str = "") -> Page:
        """A new page (its own context) signed in as ``email``."""
        page = self.new_page()
        self.sign_in(page, email, password, next_path)
        return page

    # -- people ---------------------------------------------------------------------------
    def add_user(
        self,
        email: str,
        role: str,
        password: str | None = None,
        *,
        name: str = "",
        workspace: str | None = None,
    ) -> str:
        """A member of the default workspace (or ``workspace``, by name or id) with
        ``role`` ("admin", "developer" or "viewer"); with ``password`` they can sign in
        (the password is planted). The user's id."""
        member = self.live.services.people.create_user(
            email=email, name=name, role=role, workspace=workspace, password=password
        )
        if password is not None:
            self.plant(password)
        return member.id

    def add_workspace(self, name: str, admin_email: str | None = None) -> str:
        """A new workspace whose admin is ``admin_email`` (the console's admin by
        default); its id."""
        return self.live.services.people.create_workspace(name, admin_email or self.admin_email).id

    # -- checks ---------------------------------------------------------------------------
    def plant(self, *values: str) -> None:
        """Values ``check`` must never find in a page (secrets, tokens, passwords)."""
        for value in values:
            if len(value) < MIN_SECRET_LENGTH:
                raise ValueError(f"a planted value needs {MIN_SECRET_LENGTH}+ characters")
            self.planted.add(value)

    def leaked(self, page: Page | None = None) -> list[str]:
        """The planted values the page's HTML holds (as they are, HTML-escaped or
        URL-encoded), each shortened for the report."""
        content = (page or self.page).content()
        found = []
        for value in sorted(self.planted):
            forms = {value, html.escape(value), html.escape(value, quote=False), quote_plus(value)}
            if any(form in content for form in forms):
                found.append(value[:4] + "…")
        return found

    def check(self, name: str, page: Page | None = None) -> None:
        """The checks of every screen, on the page as it is now (the admin's by default):
        screenshots (full page) at 1280 and 390 px wide, and at 1280 in the dark colour
        scheme, into ``test-artifacts/screens/<name>-1280.png`` / ``-390.png`` /
        ``-1280-dark.png``; axe-core in each of the three, failing on any serious or
        critical violation; no planted secret in the HTML; no CSP violation or uncaught
        script error reported by the page so far. The viewport and colour scheme are
        restored after."""
        page = page or self.page
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", name):
            raise ValueError(f"screen names are lower-case file names: {name!r}")
        failures: list[str] = []
        if leaked := self.leaked(page):
            failures.append(f"planted secrets in the page: {', '.join(leaked)}")
        viewport = page.viewport_size
        dark = bool(page.evaluate("() => matchMedia('(prefers-color-scheme: dark)').matches"))
        SCREENS.mkdir(parents=True, exist_ok=True)
        seen: set[tuple[str, str]] = set()
        shots: list[tuple[ViewportSize, Literal["light", "dark"], str]] = [
            (LAPTOP, "light", f"{name}-1280"),
            (PHONE, "light", f"{name}-390"),
            (LAPTOP, "dark", f"{name}-1280-dark"),
        ]
        # From the top: a full-page shot taken scrolled shows the sticky top bar mid-page.
        page.evaluate("() => window.scrollTo(0, 0)")
        try:
            for size, scheme, file_name in shots:
                page.set_viewport_size(size)
                page.emulate_media(color_scheme=scheme)
                _screenshot(page, SCREENS / f"{file_name}.png")
                for violation in run_axe(page)["violations"]:
                    key = (violation["id"], json.dumps([n["target"] for n in violation["nodes"]]))
                    if violation["impact"] in FAILING_IMPACTS and key not in seen:
                        seen.add(key)
                        failures.append(_describe(violation, f"{size['width']}px {scheme}"))
        finally:
            page.emulate_media(color_scheme="dark" if dark else "light")
            if viewport is not None:
                page.set_viewport_size(viewport)
        problems = self._problems.setdefault(id(page), [])
        failures.extend(problems)
        problems.clear()
        if failures:
            raise AssertionError(f"screen {name!r} at {page.url}:\n" + "\n".join(failures))

    def close(self) -> None:
        for context in self._contexts:
            context.close()
        self._contexts.clear()


def open_console(live: Live, browser: Browser) -> Console:
    """A console signed in as a new admin of the default workspace (through the form),
    with the admin's password, the API key of ``live.http`` and the master key planted."""
    email = f"admin-{uuid.uuid4().hex[:6]}@example.com"
    password = secrets.token_urlsafe(18)
    admin_id = live.services.people.create_user(
        email=email, name="Ada Admin", role="admin", password=password
    ).id
    console = Console(live, browser, email, password, admin_id)
    console.plant(password)
    api_key = str(live.http.headers.get("Authorization", "")).removeprefix("Bearer ")
    if api_key:
        console.plant(api_key)
    master_key = live.services.settings.master_key
    if master_key is not None:
        console.plant(master_key.get_secret_value())
    try:
        console.page = console.new_page()
        console.sign_in(console.page, email, password)
        session = console.page.context.cookies()
        console.plant(*(c["value"] for c in session if c["name"] == "authprofiles_session"))
    except BaseException:
        console.close()
        raise
    return console


# -- single sign-on ------------------------------------------------------------------------


@dataclass(frozen=True)
class SsoPerson:
    """An account at the OpenID provider (``username``, ``password``) whose verified
    email is ``email``."""

    username: str
    password: str
    email: str


@dataclass
class Sso:
    """Single sign-on of the live app at the suite's OpenID Connect provider (panva's
    oidc-provider), through a client registered for the test."""

    console: Console
    provider: OidcProvider
    name: str = "Test Provider"

    def person(self, *, role: str | None = "developer", email_verified: bool = True) -> SsoPerson:
        """A new account at the provider; with ``role``, also a member of the default
        workspace (without a password here: single sign-on only)."""
        username = f"sso-{uuid.uuid4().hex[:8]}"
        person = SsoPerson(username, secrets.token_urlsafe(12), f"{username}@example.com")
        self.provider.add_account(
            username,
            person.password,
            {"email": person.email, "email_verified": email_verified, "name": "Sam Sso"},
        )
        self.console.plant(person.password)
        if role is not None:
            self.console.add_user(person.email, role, name="Sam Sso")
        return person

    def log_in_at_provider(self, page: Page, person: SsoPerson) -> None:
        """On the provider's own sign-in page (where "Sign in with …" led): type the
        username and password, sign in, and allow the consent if asked."""
        login = page.locator("form#login")
        expect(login).to_be_visible()
        at_login = page.url
        login.locator("input[name=username]").fill(person.username)
        login.locator("input[name=password]").fill(person.password)
        login.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: url != at_login)
        if page.url.startswith(self.provider.issuer + "/interaction/"):
            if page.url.endswith("/login"):  # the provider refused the password
                raise AssertionError(f"the provider said: {page.locator('body').inner_text()}")
            page.get_by_role("button", name="Allow").click()

    def sign_in(self, page: Page, person: SsoPerson) -> None:
        """The whole way: /signin, "Sign in with <provider>", the provider's page, back
        on the console."""
        page.goto("/signin")
        page.get_by_role("button", name=f"Sign in with {self.name}").click()
        self.log_in_at_provider(page, person)
        expect(page).to_have_url(_ON_CONSOLE)


def use_sso(live: Live, provider: OidcProvider, name: str = "Test Provider") -> Client:
    """Set the live app's single sign-on (AUTHPROFILES_SSO_*) to ``provider``, through a
    client registered there for it: that client."""
    client = provider.register_client(
        "client_secret_basic",
        redirect_uris=[live.url + "/signin/sso/callback"],
        grant_types=("authorization_code",),
        scope="openid email profile",
    )
    settings = live.services.settings
    settings.sso_issuer = provider.issuer
    settings.sso_client_id = client.client_id
    settings.sso_client_secret = SecretStr(client.client_secret)
    settings.sso_provider_name = name
    return client


def configure_sso(console: Console, provider: OidcProvider, name: str = "Test Provider") -> Sso:
    """The console's app with single sign-on at ``provider`` (its client secret planted)."""
    client = use_sso(console.live, provider, name)
    console.plant(client.client_secret)
    return Sso(console, provider, name)


# -- email and webhooks -------------------------------------------------------------------


__all__ = [
    "FAILING_IMPACTS",
    "SCREENS",
    "Console",
    "Sso",
    "SsoPerson",
    "axe_source",
    "configure_sso",
    "ensure_axe_installed",
    "open_console",
    "run_axe",
    "use_sso",
]


def _screenshot(page: Page, path: Path) -> None:
    """A full-page shot. Headless Chromium under load sometimes answers "Unable to capture
    screenshot" right after a viewport or colour-scheme change, before it has painted:
    once it has drawn the next frames, the shot is taken again, once."""
    options: dict[str, Any] = {"full_page": True, "animations": "disabled", "caret": "hide"}
    try:
        page.screenshot(path=path, **options)
    except PlaywrightError as exc:
        if "Unable to capture screenshot" not in str(exc):
            raise
        page.evaluate(
            "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))"
        )
        page.screenshot(path=path, **options)
