"""People signing in with a password: the pages, the session cookie and what it may do,
throttling, timeouts (on an injected clock), sign-out, workspaces and reset links.
Each test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from authprofiles.app import create_app
from authprofiles.composition import Services
from authprofiles.services.passwords import hash_password
from authprofiles.settings import Settings
from authprofiles.store.models import DEFAULT_WORKSPACE_ID, UserRow
from authprofiles.store.people import UserStore

#: HTTP behaviour the database does not change runs on SQLite; what it changes is marked
#: ``both_databases`` (see tests/conftest.py).
SQLITE_ONLY = True

PASSWORD = "correct horse battery"
SESSION = "authprofiles_session"


class Clock:
    def __init__(self) -> None:
        self.at = datetime.now(UTC)

    def now(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


@dataclass
class App:
    services: Services
    client: TestClient
    clock: Clock

    def user(
        self,
        email: str | None = None,
        *,
        role: str = "developer",
        workspace_id: str = DEFAULT_WORKSPACE_ID,
        password: str | None = PASSWORD,
    ) -> tuple[str, str]:
        """A user made through the store (id, email)."""
        email = email or f"person-{uuid.uuid4().hex[:8]}@example.com"
        with self.services.db.session() as unit:
            store = UserStore()
            row = store.add(
                unit,
                user_id=str(uuid.uuid4()),
                email=email,
                name="A Person",
                password_hash=hash_password(password) if password else None,
            )
            store.set_membership(unit, workspace_id, row.id, role)
        return row.id, email

    def browser(self) -> Browser:
        return Browser(self.client)


@dataclass
class Browser:
    """One person's browser: its own cookies, sent by hand so that several browsers can
    share the one test client; a rotated session cookie replaces the old one."""

    client: TestClient
    cookies: dict[str, str] = field(default_factory=dict)
    last: httpx.Response | None = None

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        self.client.cookies.clear()
        headers = dict(kwargs.pop("headers", {}) or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        response = self.client.request(
            method, path, headers=headers, follow_redirects=False, **kwargs
        )
        for cookie in response.headers.get_list("set-cookie"):
            name, _, rest = cookie.partition("=")
            value = rest.split(";", 1)[0]
            if "Max-Age=0" in cookie:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        self.client.cookies.clear()
        self.last = response
        return response

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def signin_csrf(self) -> str:
        page = self.get("/signin")
        found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert found is not None, page.text
        return found.group(1)

    def sign_in(self, email: str, password: str = PASSWORD) -> httpx.Response:
        csrf = self.signin_csrf()
        return self.post("/signin", data={"email": email, "password": password, "csrf_token": csrf})

    @property
    def session(self) -> str | None:
        return self.cookies.get(SESSION)

    def csrf(self) -> str:
        response = self.get("/signin/csrf")
        assert response.status_code == 200, response.text
        return str(response.json()["csrf_token"])


def error_of(page: httpx.Response) -> str:
    found = re.search(r'id="signin-error"[^>]*>(.*?)</p>', page.text, re.S)
    assert found is not None, page.text
    return found.group(1)


@pytest.fixture
def make_app(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., App]]:
    made: list[tuple[Services, TestClient]] = []

    def make(**overrides: Any) -> App:
        clock = Clock()
        settings = make_settings(**{"public_url": "http://127.0.0.1:8000", **overrides})
        services = Services(settings, clock=clock)
        services.db.migrate()
        client = TestClient(create_app(services=services, migrate=False, background_refresh=False))
        client.__enter__()
        made.append((services, client))
        return App(services, client, clock)

    yield make
    for services, client in made:
        client.__exit__(None, None, None)
        services.close()


@pytest.fixture
def app(make_app: Callable[..., App]) -> App:
    return make_app()


# -- signing in ---------------------------------------------------------------------


def test_a_person_signs_in_and_the_session_cookie_works_wherever_an_api_key_does(
    app: App,
) -> None:
    user_id, email = app.user(role="admin")
    browser = app.browser()
    signed_in = browser.sign_in(email)
    assert signed_in.status_code == 303, signed_in.text
    assert signed_in.headers["location"] == "/"
    assert browser.session

    listed = browser.get("/api/v1/profiles")
    assert listed.status_code == 200, listed.text
    me = browser.get("/api/v1/me")
    if me.status_code != 404:  # the people API's own route
        assert me.status_code == 200, me.text
        assert me.json()["user"]["id"] == user_id
    page = browser.get("/signin")
    assert email in page.text
    assert f'<meta name="csrf-token" content="{browser.csrf()}">' in page.text


def test_the_session_cookie_is_http_only_same_site_lax_and_not_secure_over_http(
    app: App,
) -> None:
    _, email = app.user()
    cookie = next(
        c for c in app.browser().sign_in(email).headers.get_list("set-cookie") if SESSION in c
    )
    attributes = {part.strip().split("=")[0] for part in cookie.split(";")[1:]}
    assert {"HttpOnly", "SameSite", "Path"} <= attributes
    assert "SameSite=Lax" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in attributes


def test_the_session_cookie_is_secure_when_the_public_url_is_https(
    make_app: Callable[..., App],
) -> None:
    app = make_app(public_url="https://authprofiles.example")
    _, email = app.user()
    response = app.browser().sign_in(email)
    assert response.status_code == 303, response.text
    cookie = next(c for c in response.headers.get_list("set-cookie") if SESSION in c)
    assert "; Secure" in cookie
    assert "HttpOnly" in cookie


def test_a_wrong_password_and_an_unknown_email_get_the_same_answer(app: App) -> None:
    _, email = app.user()
    browser = app.browser()
    wrong = browser.sign_in(email, "not the password")
    unknown = browser.sign_in("nobody@example.com", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert error_of(wrong) == error_of(unknown) == "wrong email or password"
    assert browser.session is None
    assert "not the password" not in wrong.text


def test_the_sign_in_form_needs_its_csrf_token(app: App) -> None:
    _, email = app.user()
    browser = app.browser()
    browser.signin_csrf()  # the cookie is set, but the form does not carry it
    response = browser.post("/signin", data={"email": email, "password": PASSWORD})
    assert response.status_code == 403
    assert browser.session is None
    forged = browser.post(
        "/signin", data={"email": email, "password": PASSWORD, "csrf_token": "x" * 43}
    )
    assert forged.status_code == 403


@pytest.mark.both_databases
def test_a_disabled_user_cannot_sign_in_and_their_session_ends_at_once(app: App) -> None:
    user_id, email = app.user()
    browser = app.browser()
    assert browser.sign_in(email).status_code == 303
    assert browser.get("/api/v1/profiles").status_code == 200
    with app.services.db.session() as unit:
        row = unit.get(UserRow, user_id)
        assert row is not None
        row.disabled_at = datetime.now(UTC)
    assert browser.get("/api/v1/profiles").status_code == 401
    refused = app.browser().sign_in(email)
    assert refused.status_code == 401
    assert "disabled" in error_of(refused)


def test_a_bearer_key_wins_over_a_session_cookie(app: App) -> None:
    _, email = app.user(role="viewer")
    browser = app.browser()
    browser.sign_in(email)
    key = app.services.api_keys.create(name="k", role="admin").key
    # An unsafe call with a key needs no CSRF token, whatever cookie comes along.
    response = browser.post(
        "/api/v1/api-keys",
        json={"name": "made-with-key", "role": "viewer"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 201, response.text


# -- CSRF on the API ----------------------------------------------------------------


def test_an_unsafe_api_call_with_the_cookie_needs_the_csrf_header(app: App) -> None:
    _, email = app.user(role="admin")
    browser = app.browser()
    browser.sign_in(email)
    body = {"name": "made-by-session", "role": "viewer"}
    without = browser.post("/api/v1/api-keys", json=body)
    assert without.status_code == 403, without.text
    assert "X-CSRF-Token" in without.json()["detail"]
    wrong = browser.post("/api/v1/api-keys", json=body, headers={"X-CSRF-Token": "nope"})
    assert wrong.status_code == 403
    made = browser.post("/api/v1/api-keys", json=body, headers={"X-CSRF-Token": browser.csrf()})
    assert made.status_code == 201, made.text
    # Safe methods need none.
    assert browser.get("/api/v1/api-keys").status_code == 200


def test_the_csrf_token_endpoint_needs_a_session(app: App) -> None:
    assert app.browser().get("/signin/csrf").status_code == 401


# -- throttling ---------------------------------------------------------------------


@pytest.mark.both_databases
def test_five_failures_lock_the_account_and_the_page_says_until_when(app: App) -> None:
    _, email = app.user()
    browser = app.browser()
    for _ in range(4):
        assert browser.sign_in(email, "wrong password").status_code == 401
    locked = browser.sign_in(email, "wrong password")
    assert locked.status_code == 429
    until = datetime.fromisoformat(
        re.search(r'data-locked-until="([^"]+)"', locked.text).group(1)  # type: ignore[union-attr]
    )
    assert abs((until - app.clock.now()) - timedelta(minutes=15)) < timedelta(seconds=1)
    assert "try again after" in error_of(locked)
    assert until.strftime("%H:%M") in error_of(locked)
    assert int(locked.headers["Retry-After"]) == 15 * 60

    # Even the right password is refused while locked.
    assert browser.sign_in(email).status_code == 429
    app.clock.advance(minutes=15, seconds=1)
    assert browser.sign_in(email).status_code == 303


def test_a_successful_sign_in_resets_the_account_counter(app: App) -> None:
    _, email = app.user()
    browser = app.browser()
    for _ in range(4):
        assert browser.sign_in(email, "wrong password").status_code == 401
    assert browser.sign_in(email).status_code == 303
    for _ in range(4):
        assert app.browser().sign_in(email, "wrong password").status_code == 401


@pytest.mark.both_databases
def test_failures_from_one_address_lock_that_address_out(
    make_app: Callable[..., App],
) -> None:
    app = make_app(signin_max_failures_per_address=6, signin_max_failures_per_account=100)
    _, email = app.user()
    for _ in range(5):
        response = app.browser().sign_in(f"guess-{uuid.uuid4().hex[:6]}@example.com", "x" * 10)
        assert response.status_code == 401
    assert app.browser().sign_in("another-guess@example.com", "x" * 10).status_code == 429
    # Another account, right password, same address: still locked out.
    refused = app.browser().sign_in(email)
    assert refused.status_code == 429
    assert "try again after" in error_of(refused)


def test_sign_ins_are_in_the_audit_log_without_the_password(app: App) -> None:
    recorded: list[Any] = []

    class Trail:
        def record(self, entry: Any, unit: Any | None = None) -> None:
            recorded.append(entry)

    app.services.signin.audit = Trail()
    user_id, email = app.user()
    app.browser().sign_in(email, "wrong password, planted")
    app.browser().sign_in(email)
    actions = [(e.action, e.actor.id, e.address) for e in recorded]
    assert actions == [
        ("user.signin_failed", user_id, "testclient"),
        ("user.signed_in", user_id, "testclient"),
    ]
    assert "planted" not in repr(recorded)
    assert PASSWORD not in repr(recorded)


# -- timeouts and rotation ----------------------------------------------------------


def test_a_session_ends_after_the_idle_timeout_but_use_keeps_it_alive(app: App) -> None:
    _, email = app.user()
    browser = app.browser()
    browser.sign_in(email)
    for _ in range(3):
        app.clock.advance(minutes=55)
        assert browser.get("/api/v1/profiles").status_code == 200
    app.clock.advance(minutes=60)
    assert browser.get("/api/v1/profiles").status_code == 401


def test_a_session_ends_at_the_absolute_timeout_however_active(app: App) -> None:
    _, email = app.user()
    browser = app.browser()
    browser.sign_in(email)
    started = app.clock.now()
    while app.clock.now() - started < timedelta(hours=12) - timedelta(minutes=50):
        app.clock.advance(minutes=50)
        assert browser.get("/api/v1/profiles").status_code == 200
    app.clock.advance(minutes=50)
    assert app.clock.now() - started >= timedelta(hours=12)
    assert browser.get("/api/v1/profiles").status_code == 401


@pytest.mark.both_databases
def test_the_session_token_rotates_and_the_old_one_works_only_briefly(app: App) -> None:
    _, email = app.user()
    browser = app.browser()
    browser.sign_in(email)
    first = browser.session
    csrf = browser.csrf()
    app.clock.advance(minutes=11)
    rotated = browser.get("/api/v1/profiles")
    assert rotated.status_code == 200
    assert any(c.startswith(f"{SESSION}=") for c in rotated.headers.get_list("set-cookie"))
    second = browser.session
    assert second and second != first
    assert browser.csrf() == csrf  # the same session: its CSRF token stays

    old = Browser(app.client, {SESSION: first or ""})
    app.clock.advance(seconds=30)
    assert old.get("/api/v1/profiles").status_code == 200  # on its way when rotated
    app.clock.advance(minutes=2)
    assert old.get("/api/v1/profiles").status_code == 401
    assert browser.get("/api/v1/profiles").status_code == 200


def test_a_session_token_from_before_sign_in_is_never_kept(app: App) -> None:
    _, email = app.user()
    browser = app.browser()
    browser.cookies[SESSION] = "planted-by-someone-else"
    browser.sign_in(email)
    assert browser.session not in (None, "planted-by-someone-else")


# -- signing out, workspaces --------------------------------------------------------


def test_sign_out_ends_this_session_only(app: App) -> None:
    _, email = app.user()
    here, there = app.browser(), app.browser()
    here.sign_in(email)
    there.sign_in(email)
    token = here.session
    without_csrf = here.post("/signout", data={})
    assert without_csrf.status_code == 403
    done = here.post("/signout", data={"csrf_token": here.csrf()})
    assert done.status_code == 303
    assert here.session is None
    assert Browser(app.client, {SESSION: token or ""}).get("/api/v1/profiles").status_code == 401
    assert there.get("/api/v1/profiles").status_code == 200


def test_sign_out_everywhere_ends_every_session_of_the_person(app: App) -> None:
    _, email = app.user()
    _, other_email = app.user()
    here, there, someone_else = app.browser(), app.browser(), app.browser()
    here.sign_in(email)
    there.sign_in(email)
    someone_else.sign_in(other_email)
    done = here.post("/signout/everywhere", data={"csrf_token": here.csrf()})
    assert done.status_code == 303
    assert here.get("/api/v1/profiles").status_code == 401
    assert there.get("/api/v1/profiles").status_code == 401
    assert someone_else.get("/api/v1/profiles").status_code == 200
    assert app.browser().sign_in(email).status_code == 303  # and signing in again works


def test_a_person_switches_to_another_of_their_workspaces(app: App) -> None:
    user_id, email = app.user(role="viewer")
    with app.services.db.session() as unit:
        store = UserStore()
        store.add_workspace(unit, "ws-two", "Second")
        store.set_membership(unit, "ws-two", user_id, "admin")
        store.add_workspace(unit, "ws-three", "Not theirs")
    browser = app.browser()
    browser.sign_in(email)
    page = browser.get("/signin")
    assert "Second" in page.text and "Not theirs" not in page.text
    csrf = browser.csrf()
    refused = browser.post(
        "/signin/workspace", data={"workspace_id": "ws-three", "csrf_token": csrf}
    )
    assert refused.status_code == 403
    switched = browser.post(
        "/signin/workspace", data={"workspace_id": "ws-two", "csrf_token": csrf, "next": "/x"}
    )
    assert switched.status_code == 303
    assert switched.headers["location"] == "/x"
    active = app.services.sessions.resolve(browser.session)
    assert (active.principal.workspace_id, active.principal.role.value) == ("ws-two", "admin")


@pytest.mark.parametrize(
    ("given", "lands"),
    [
        ("/profiles?x=1", "/profiles?x=1"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
    ],
)
def test_after_sign_in_the_person_goes_only_to_a_local_path(
    app: App, given: str, lands: str
) -> None:
    _, email = app.user()
    browser = app.browser()
    csrf = browser.signin_csrf()
    response = browser.post(
        "/signin", data={"email": email, "password": PASSWORD, "csrf_token": csrf, "next": given}
    )
    assert response.status_code == 303
    assert response.headers["location"] == lands


# -- reset links --------------------------------------------------------------------


def test_a_reset_link_sets_a_password_once_and_ends_other_sessions(app: App) -> None:
    user_id, email = app.user()
    elsewhere = app.browser()
    elsewhere.sign_in(email)
    link = app.services.signin.reset_link(user_id)
    assert link.url.startswith("http://127.0.0.1:8000/reset/")
    path = link.url.removeprefix("http://127.0.0.1:8000")
    browser = app.browser()
    page = browser.get(path)
    assert page.status_code == 200
    assert email in page.text
    assert page.headers["Referrer-Policy"] == "no-referrer"
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    short = browser.post(path, data={"password": "short", "confirm": "short", "csrf_token": csrf})
    assert short.status_code == 400
    new = "a brand new passphrase"
    done = browser.post(path, data={"password": new, "confirm": new, "csrf_token": csrf})
    assert done.status_code == 303, done.text
    assert browser.get("/api/v1/profiles").status_code == 200
    assert elsewhere.get("/api/v1/profiles").status_code == 401
    again = browser.post(path, data={"password": new, "confirm": new, "csrf_token": csrf})
    assert again.status_code == 404
    assert app.browser().sign_in(email, new).status_code == 303
    assert app.browser().sign_in(email, PASSWORD).status_code == 401


def test_a_reset_link_expires(app: App) -> None:
    user_id, _ = app.user(password=None)
    path = app.services.signin.reset_link(user_id).url.removeprefix("http://127.0.0.1:8000")
    app.clock.advance(hours=24, seconds=1)
    assert app.browser().get(path).status_code == 404


# -- security review: login CSRF, logs, parallel guessing, old sessions and links -------


@pytest.mark.parametrize("path", ["/signin", "/signin/sso", "/reset/some-token"])
def test_a_cross_site_form_with_an_empty_token_and_no_cookie_is_refused(
    app: App, path: str
) -> None:
    """Login CSRF: another site posts the form with `csrf_token=` (empty) from a browser
    that has no double-submit cookie; "" equal to "" must not sign the victim in."""
    _, email = app.user()
    fields = {"email": email, "password": PASSWORD, "confirm": PASSWORD, "csrf_token": ""}
    response = app.browser().post(path, data=fields)
    assert response.status_code == 403, response.text
    assert not any(c.startswith(f"{SESSION}=") for c in response.headers.get_list("set-cookie"))


def test_the_double_submit_cookie_must_be_of_the_length_the_server_makes(app: App) -> None:
    _, email = app.user()
    for planted in ("short", "x" * 101):
        browser = app.browser()
        browser.cookies["authprofiles_signin_csrf"] = planted
        response = browser.post(
            "/signin", data={"email": email, "password": PASSWORD, "csrf_token": planted}
        )
        assert response.status_code == 403
        assert browser.session is None


def test_the_access_log_never_holds_a_reset_links_token(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    user_id, _ = app.user()
    path = app.services.signin.reset_link(user_id).url.removeprefix("http://127.0.0.1:8000")
    token = path.removeprefix("/reset/")
    browser = app.browser()
    with caplog.at_level(logging.INFO, logger="authprofiles.access"):
        assert browser.get(path).status_code == 200
        assert browser.get("/reset/unknown-token-1f2e").status_code == 404
        # The same route, its path percent-encoded.
        assert browser.get("/%72eset/" + token).status_code == 200
    lines = [r for r in caplog.records if r.name == "authprofiles.access"]
    assert len(lines) == 3
    for record in lines:
        assert record.getMessage().startswith("GET /reset/[redacted] ")
        assert record.path == "/reset/[redacted]"  # type: ignore[attr-defined]
    assert token not in caplog.text
    assert "unknown-token-1f2e" not in caplog.text


@pytest.mark.both_databases
def test_parallel_wrong_passwords_check_at_most_the_limit(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twenty guesses at once at one account: the attempt is counted (and the lock read)
    before argon2 runs, so no more passwords are checked than the limit allows."""
    from authprofiles.core.errors import TooManyAttempts
    from authprofiles.services.signin import SignInRefused
    from authprofiles.services.signin import service as signin_service

    _, email = app.user()
    limit = app.services.settings.signin_max_failures_per_account
    checked: list[str] = []
    lock = threading.Lock()
    real_verify = signin_service.verify_password

    def counting_verify(password_hash: str | None, password: str) -> bool:
        with lock:
            checked.append(password)
        return real_verify(password_hash, password)

    monkeypatch.setattr(signin_service, "verify_password", counting_verify)
    guesses = 20
    start = threading.Barrier(guesses)

    def guess(n: int) -> str:
        start.wait()
        try:
            app.services.signin.sign_in_with_password(email, f"guess {n}", "203.0.113.7")
        except TooManyAttempts:
            return "429"
        except SignInRefused:
            return "401"
        return "303"

    with ThreadPoolExecutor(guesses) as pool:
        answers = list(pool.map(guess, range(guesses)))
    assert len(checked) <= limit, answers
    assert answers.count("303") == 0
    assert answers.count("429") >= guesses - limit
    assert answers.count("401") < limit
    # Locked now, and the page says until when, even for the right password.
    locked = app.browser().sign_in(email)
    assert locked.status_code == 429
    assert "try again after" in error_of(locked)
    assert "Retry-After" in locked.headers


def test_right_passwords_from_one_address_do_not_lock_it(make_app: Callable[..., App]) -> None:
    """Attempts are counted before the password is checked; a right one is taken back
    from the address's count (an office behind one address signs in all morning)."""
    app = make_app(signin_max_failures_per_address=3, signin_max_failures_per_account=100)
    for _ in range(6):
        _, email = app.user()
        assert app.browser().sign_in(email).status_code == 303
    for _ in range(2):
        assert app.browser().sign_in("nobody@example.com", "x" * 10).status_code == 401
    assert app.browser().sign_in("nobody@example.com", "x" * 10).status_code == 429


def test_signing_in_again_ends_the_session_the_browser_held(app: App) -> None:
    _, email = app.user()
    _, other_email = app.user()
    browser = app.browser()
    browser.sign_in(email)
    first = browser.session

    def again(who: str) -> None:
        # Signed in, /signin shows who you are rather than the form; the form posted
        # from a tab opened before carries the double-submit cookie's value.
        fields = {"email": who, "password": PASSWORD}
        fields["csrf_token"] = browser.cookies["authprofiles_signin_csrf"]
        assert browser.post("/signin", data=fields).status_code == 303

    again(email)
    second = browser.session
    assert first and second and first != second
    assert Browser(app.client, {SESSION: first}).get("/api/v1/profiles").status_code == 401
    assert browser.get("/api/v1/profiles").status_code == 200
    # Someone else signing in in this browser ends the first person's session too.
    again(other_email)
    assert Browser(app.client, {SESSION: second}).get("/api/v1/profiles").status_code == 401
    assert browser.get("/api/v1/profiles").status_code == 200


def test_a_new_reset_link_voids_the_older_unused_ones(app: App) -> None:
    user_id, _ = app.user()
    other_id, _ = app.user()
    base = "http://127.0.0.1:8000"
    older = app.services.signin.reset_link(user_id).url.removeprefix(base)
    someone_elses = app.services.signin.reset_link(other_id).url.removeprefix(base)
    newer = app.services.signin.reset_link(user_id).url.removeprefix(base)
    browser = app.browser()
    assert browser.get(older).status_code == 404
    assert browser.get(newer).status_code == 200
    assert browser.get(someone_elses).status_code == 200


# -- memberships disabled in one workspace -----------------------------------------------


def _disable_membership(app: App, workspace_id: str, user_id: str) -> None:
    with app.services.db.session() as unit:
        row = UserStore().membership(unit, workspace_id, user_id)
        assert row is not None
        row.disabled_at = datetime.now(UTC)


def _two_workspaces(app: App, role: str = "developer") -> tuple[str, str]:
    user_id, email = app.user(role=role)
    with app.services.db.session() as unit:
        store = UserStore()
        store.add_workspace(unit, f"ws-{user_id[:8]}", "Second")
        store.set_membership(unit, f"ws-{user_id[:8]}", user_id, "admin")
    return user_id, email


def test_a_session_ends_at_once_when_its_membership_is_disabled(app: App) -> None:
    user_id, email = app.user()
    browser = app.browser()
    browser.sign_in(email)
    assert browser.get("/api/v1/profiles").status_code == 200
    _disable_membership(app, DEFAULT_WORKSPACE_ID, user_id)
    assert browser.get("/api/v1/profiles").status_code == 401
    refused = app.browser().sign_in(email)
    assert refused.status_code == 401
    assert error_of(refused) == "this account is disabled; ask an admin of your workspace"


def test_sign_in_lands_in_an_active_workspace_and_the_switcher_skips_disabled_ones(
    app: App,
) -> None:
    user_id, email = _two_workspaces(app)
    second = f"ws-{user_id[:8]}"
    _disable_membership(app, DEFAULT_WORKSPACE_ID, user_id)
    browser = app.browser()
    assert browser.sign_in(email).status_code == 303
    active = app.services.sessions.resolve(browser.session)
    assert active.principal.workspace_id == second
    assert [w[0] for w in app.services.sessions.workspaces(user_id)] == [second]
    refused = browser.post(
        "/signin/workspace",
        data={"workspace_id": DEFAULT_WORKSPACE_ID, "csrf_token": browser.csrf()},
    )
    assert refused.status_code == 403
    assert app.services.sessions.resolve(browser.session).principal.workspace_id == second


def test_a_reset_link_lands_in_its_workspace_when_active_there(app: App) -> None:
    user_id, _ = _two_workspaces(app)
    second = f"ws-{user_id[:8]}"
    base = "http://127.0.0.1:8000"

    def reset(workspace_id: str | None) -> str:
        path = app.services.signin.reset_link(user_id, workspace_id).url.removeprefix(base)
        browser = app.browser()
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', browser.get(path).text)
        assert csrf is not None
        new = f"a new passphrase {uuid.uuid4().hex[:6]}"
        done = browser.post(
            path, data={"password": new, "confirm": new, "csrf_token": csrf.group(1)}
        )
        assert done.status_code == 303, done.text
        return app.services.sessions.resolve(browser.session).principal.workspace_id

    assert reset(None) == DEFAULT_WORKSPACE_ID
    assert reset(second) == second
    _disable_membership(app, second, user_id)
    assert reset(second) == DEFAULT_WORKSPACE_ID  # not active there: the first active one


def test_a_reset_link_of_a_person_disabled_in_every_workspace_sets_nothing(app: App) -> None:
    user_id, _ = app.user()
    _disable_membership(app, DEFAULT_WORKSPACE_ID, user_id)
    path = app.services.signin.reset_link(user_id).url.removeprefix("http://127.0.0.1:8000")
    browser = app.browser()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', browser.get(path).text)
    assert csrf is not None
    new = "a brand new passphrase"
    refused = browser.post(path, data={"password": new, "confirm": new, "csrf_token": csrf[1]})
    assert refused.status_code == 409
    assert "disabled" in refused.text
    assert browser.session is None
