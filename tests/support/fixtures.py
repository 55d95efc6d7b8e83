"""pytest plugin with the loopback test servers. Enable it with

    pytest_plugins = ["tests.support.fixtures"]

Fixtures:
  idp            (session)  real OAuth 2.0 / OIDC server (django-oauth-toolkit subprocess)
  echo_server    (function) echo upstream, reset before each test (process per session)
  forward_proxy  (function) proxy.py forward proxy, record cleared before each test
                            (process per session)
  faults         (function) FaultProxy in front of the IdP, stopped after the test
  make_fault_proxy (function) factory: FaultProxy in front of any base URL
  approve_device_in_idp (function) (user_code, approve=True) -> "Authorized" | "Denied":
                 a fresh IdP user approves (or denies) a device authorization (RFC 8628)
  oidc_provider  (session)  second, independent authorization server (oidc-provider from
                            npm, node subprocess): private_key_jwt, RFC 9207 ``iss``,
                            device grant; npm installs it on first use
  authorize_in_oidc_provider (function) (authorization_url) -> Authorization(code, state,
                 iss, redirect_url, error): sign in and consent, the callback not called
  callback_from_oidc_provider (function) (authorization_url) -> the redirect URL itself,
                 for a test to call the app's callback with
  approve_device_in_oidc_provider (function) (user_code, approve=True) -> "authorized"
                 | "denied"

The servers are shared by the whole session: register fresh clients/users per test, and
call ``reset_counters()`` before counting. When a test using a server fails, the tail
of that server's log is attached to the report.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from .echo import EchoServer, start_echo
from .faults import FaultProxy
from .forward_proxy import ForwardProxy, start_forward_proxy
from .idp import IdP, start_idp
from .oidc_provider import Authorization, OidcProvider, start_oidc_provider

# Servers started in this session, by fixture name, for failure reports.
_running: dict[str, IdP | EchoServer | ForwardProxy | OidcProvider] = {}


@pytest.fixture(scope="session")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdP]:
    server = start_idp(tmp_path_factory.mktemp("idp"))
    _running["idp"] = server
    yield server
    _running.pop("idp", None)
    server.stop()


@pytest.fixture
def approve_device_in_idp(idp: IdP) -> Callable[..., str]:
    """Approve (or deny, ``approve=False``) a user_code as a user made for this test."""
    username, password = f"device-user-{secrets.token_hex(4)}", secrets.token_urlsafe(12)
    idp.create_user(username, password)

    def approve(user_code: str, *, approve: bool = True) -> str:
        return idp.approve_device(user_code, username, password, approve=approve)

    return approve


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    # Started only when a test asks for it; the first start may run `npm ci`.
    server = start_oidc_provider(tmp_path_factory.mktemp("oidc_provider"))
    _running["oidc_provider"] = server
    yield server
    _running.pop("oidc_provider", None)
    server.stop()


@pytest.fixture
def authorize_in_oidc_provider(oidc_provider: OidcProvider) -> Callable[..., Authorization]:
    return oidc_provider.authorize


@pytest.fixture
def callback_from_oidc_provider(oidc_provider: OidcProvider) -> Callable[..., str]:
    return oidc_provider.log_in_and_consent


@pytest.fixture
def approve_device_in_oidc_provider(oidc_provider: OidcProvider) -> Callable[..., str]:
    return oidc_provider.approve_device


@pytest.fixture(scope="session")
def _echo_server_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EchoServer]:
    server = start_echo(tmp_path_factory.mktemp("echo"))
    _running["echo_server"] = server
    yield server
    _running.pop("echo_server", None)
    server.stop()


@pytest.fixture
def echo_server(_echo_server_session: EchoServer) -> EchoServer:
    _echo_server_session.reset()
    return _echo_server_session


@pytest.fixture(scope="session")
def _forward_proxy_session(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ForwardProxy]:
    server = start_forward_proxy(tmp_path_factory.mktemp("forward_proxy"))
    _running["forward_proxy"] = server
    yield server
    _running.pop("forward_proxy", None)
    server.stop()


@pytest.fixture
def forward_proxy(_forward_proxy_session: ForwardProxy) -> ForwardProxy:
    _forward_proxy_session.clear()
    return _forward_proxy_session


@pytest.fixture
def make_fault_proxy() -> Iterator[Callable[[str], FaultProxy]]:
    started: list[FaultProxy] = []

    def make(upstream: str, hold_seconds: float = 30.0) -> FaultProxy:
        relay = FaultProxy(upstream, hold_seconds=hold_seconds)
        started.append(relay)
        return relay

    yield make
    for relay in started:
        relay.stop()


@pytest.fixture
def faults(idp: IdP, make_fault_proxy: Callable[[str], FaultProxy]) -> FaultProxy:
    return make_fault_proxy(idp.base_url)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        names = set(getattr(item, "fixturenames", ()))
        for name, server in list(_running.items()):
            if name in names:
                report.sections.append((f"{name} log (tail)", server.log_tail(4000)))
    return report


@pytest.fixture
def runner(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str, master_key: str
) -> CliRunner:
    """Commands run against the test database; each builds its Settings from this env."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTHPROFILES_DATABASE_URL", database_url)
    monkeypatch.setenv("AUTHPROFILES_MASTER_KEY", master_key)
    monkeypatch.setenv("AUTHPROFILES_KEY_FILE", str(tmp_path / "must-not-be-created.key"))
    monkeypatch.setenv("COLUMNS", "200")
    return CliRunner()
