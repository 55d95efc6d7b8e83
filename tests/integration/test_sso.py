"""Single sign-on against a real OpenID Connect provider (panva's oidc-provider, started
by the suite): a person signs in at the provider and lands here with a session; a
replayed state, a callback planted in another browser, an unverified email and an
unknown person (without provisioning) are refused."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest

from authprofiles.services.passwords import hash_password
from authprofiles.store.models import DEFAULT_WORKSPACE_ID
from authprofiles.store.people import UserStore
from tests.support.app import Live
from tests.support.console import use_sso
from tests.support.oidc_provider import OidcProvider

#: HTTP behaviour the database does not change runs on SQLite; what it changes is marked
#: ``both_databases`` (see tests/conftest.py).
SQLITE_ONLY = True

pytestmark = pytest.mark.idp

SESSION = "authprofiles_session"


@dataclass
class Person:
    username: str
    password: str
    email: str


@pytest.fixture
def sso(live: Live, oidc_provider: OidcProvider) -> Live:
    """The live app with single sign-on at the suite's provider, through a client
    registered for this test."""
    use_sso(live, oidc_provider, "Test Provider")
    return live


def at_provider(
    oidc_provider: OidcProvider, *, email_verified: bool = True, email: str | None = None
) -> Person:
    username = f"sso-{uuid.uuid4().hex[:8]}"
    person = Person(username, uuid.uuid4().hex, email or f"{username}@example.com")
    oidc_provider.add_account(
        username,
        person.password,
        {"email": person.email, "email_verified": email_verified, "name": "Sso Person"},
    )
    return person


def member(live: Live, email: str, role: str = "developer") -> str:
    with live.services.db.session() as unit:
        store = UserStore()
        row = store.add(
            unit,
            user_id=str(uuid.uuid4()),
            email=email,
            name="",
            password_hash=hash_password("unused password"),
        )
        store.set_membership(unit, DEFAULT_WORKSPACE_ID, row.id, role)
    return row.id


@pytest.fixture
def browser(live: Live) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=30, trust_env=False) as client:
        yield client


def start(browser: httpx.Client, next_url: str = "/") -> str:
    """Press "Sign in with ...": the provider's authorization URL."""
    page = browser.get("/signin")
    assert "Sign in with Test Provider" in page.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    started = browser.post("/signin/sso", data={"csrf_token": csrf, "next": next_url})
    assert started.status_code == 303, started.text
    return started.headers["location"]


@pytest.mark.both_databases
def test_a_person_signs_in_at_the_provider_and_lands_with_a_session(
    sso: Live, oidc_provider: OidcProvider, browser: httpx.Client
) -> None:
    person = at_provider(oidc_provider)
    user_id = member(sso, person.email.upper())  # emails match whatever their case
    authorization_url = start(browser, "/after?x=1")
    assert authorization_url.startswith(oidc_provider.authorization_url)
    assert "code_challenge_method=S256" in authorization_url
    assert "nonce=" in authorization_url

    callback = oidc_provider.log_in_and_consent(authorization_url, person.username)
    assert callback.startswith(sso.url + "/signin/sso/callback?")
    landed = browser.get(callback)
    assert landed.status_code == 303, landed.text
    assert landed.headers["location"] == "/after?x=1"
    assert browser.cookies.get(SESSION)

    assert browser.get("/api/v1/profiles").status_code == 200
    me = browser.get("/api/v1/me")
    if me.status_code != 404:  # the people API's own route
        assert me.status_code == 200, me.text
        assert me.json()["user"]["id"] == user_id

    # The state was good for one callback: the same answer again is refused.
    browser.cookies.delete(SESSION)
    replayed = browser.get(callback)
    assert replayed.status_code == 401
    assert "used already or has expired" in replayed.text
    assert not browser.cookies.get(SESSION)


def test_a_callback_from_a_sign_in_started_in_another_browser_is_refused(
    sso: Live, oidc_provider: OidcProvider, browser: httpx.Client, live: Live
) -> None:
    person = at_provider(oidc_provider)
    member(sso, person.email)
    callback = oidc_provider.log_in_and_consent(start(browser), person.username)
    with httpx.Client(timeout=30, trust_env=False) as victim:
        planted = victim.get(callback, follow_redirects=False)
    assert planted.status_code == 401
    assert "another browser" in planted.text
    assert SESSION not in planted.headers.get("set-cookie", "")


def test_a_person_without_an_account_is_refused_unless_provisioning_is_on(
    sso: Live, oidc_provider: OidcProvider, browser: httpx.Client
) -> None:
    person = at_provider(oidc_provider)
    refused = browser.get(oidc_provider.log_in_and_consent(start(browser), person.username))
    assert refused.status_code == 401
    assert "no account" in refused.text

    sso.services.settings.sso_provision_role = "viewer"
    landed = browser.get(oidc_provider.log_in_and_consent(start(browser), person.username))
    assert landed.status_code == 303, landed.text
    active = sso.services.sessions.resolve(browser.cookies.get(SESSION))
    assert active.principal.name == person.email
    assert active.principal.role.value == "viewer"
    assert active.principal.workspace_id == DEFAULT_WORKSPACE_ID


def test_an_unverified_email_is_not_matched(
    sso: Live, oidc_provider: OidcProvider, browser: httpx.Client
) -> None:
    person = at_provider(oidc_provider, email_verified=False)
    member(sso, person.email)
    sso.services.settings.sso_provision_role = "admin"
    refused = browser.get(oidc_provider.log_in_and_consent(start(browser), person.username))
    assert refused.status_code == 401
    assert "not verified" in refused.text
    assert not browser.cookies.get(SESSION)


def test_an_answer_naming_another_issuer_is_refused_before_the_code_is_redeemed(
    sso: Live, oidc_provider: OidcProvider, browser: httpx.Client
) -> None:
    person = at_provider(oidc_provider)
    member(sso, person.email)
    callback = oidc_provider.log_in_and_consent(start(browser), person.username)
    forged = re.sub(r"iss=[^&]+", "iss=https%3A%2F%2Fattacker.example", callback)
    oidc_provider.reset_counters()
    refused = browser.get(forged)
    assert refused.status_code == 401
    assert oidc_provider.token_requests() == 0


def test_an_email_outside_the_allowed_domains_is_refused_before_matching_or_provisioning(
    sso: Live, oidc_provider: OidcProvider, browser: httpx.Client
) -> None:
    sso.services.settings.sso_allowed_domains = "allowed.example, Other.Example"
    sso.services.settings.sso_provision_role = "viewer"
    outsider = at_provider(oidc_provider)  # @example.com
    member(sso, outsider.email)
    refused = browser.get(oidc_provider.log_in_and_consent(start(browser), outsider.username))
    assert refused.status_code == 401
    assert "single sign-on here is for addresses at allowed.example, other.example" in (
        refused.text
    )
    assert not browser.cookies.get(SESSION)

    stranger = at_provider(oidc_provider, email=f"new-{uuid.uuid4().hex[:6]}@elsewhere.example")
    refused = browser.get(oidc_provider.log_in_and_consent(start(browser), stranger.username))
    assert refused.status_code == 401
    with sso.services.db.read() as unit:
        assert UserStore().by_email(unit, stranger.email) is None  # not provisioned

    insider = at_provider(oidc_provider, email=f"in-{uuid.uuid4().hex[:6]}@OTHER.example")
    landed = browser.get(oidc_provider.log_in_and_consent(start(browser), insider.username))
    assert landed.status_code == 303, landed.text
    assert browser.cookies.get(SESSION)


def test_a_person_disabled_in_every_workspace_is_refused_like_a_disabled_user(
    sso: Live, oidc_provider: OidcProvider, browser: httpx.Client
) -> None:
    person = at_provider(oidc_provider)
    user_id = member(sso, person.email)
    with sso.services.db.session() as unit:
        membership = UserStore().membership(unit, DEFAULT_WORKSPACE_ID, user_id)
        assert membership is not None
        membership.disabled_at = datetime.now(UTC)
    refused = browser.get(oidc_provider.log_in_and_consent(start(browser), person.username))
    assert refused.status_code == 401
    assert "this account is disabled" in refused.text
    assert not browser.cookies.get(SESSION)
