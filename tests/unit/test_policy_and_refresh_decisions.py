"""The credential policy and the refresh decisions, built from plain values and fakes of
their ports (no sockets, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from authprofiles.core.auth_types import AuthType
from authprofiles.core.callers import CredentialRequest, Principal, Purpose, Role
from authprofiles.core.connections import Connection, ConnectionStatus, TokenSet
from authprofiles.core.errors import Forbidden
from authprofiles.core.profiles import AuthorizationMode, ProfileDefinition
from authprofiles.oauth.errors import GrantRefused, IdPUnavailable
from authprofiles.oauth.grants import grant_for
from authprofiles.services.access import AccessIndex, RolePolicy
from authprofiles.services.proxy.planning import forwarded_headers
from authprofiles.services.tokens import after_refresh_failure, needs_refresh
from tests.support.values import a_connection
from tests.unit.test_oauth_engine import SETTINGS, engine_answering

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def request(owner: str = "shared", purpose: Purpose = Purpose.READ_TOKEN) -> CredentialRequest:
    return CredentialRequest(connection_id="c1", connection_owner=owner, purpose=purpose)


# -- the policy --------------------------------------------------------------------------
@pytest.mark.parametrize("purpose", list(Purpose))
def test_a_viewer_may_not_use_a_credential(purpose: Purpose) -> None:
    with pytest.raises(Forbidden, match="developer"):
        RolePolicy().authorize(Principal("w", Role.VIEWER), request(purpose=purpose))


@pytest.mark.parametrize("role", [Role.DEVELOPER, Role.ADMIN])
def test_developers_and_admins_use_shared_connections(role: Role) -> None:
    RolePolicy().authorize(Principal("w", role), request())


def test_a_user_specific_connection_is_its_owners_alone() -> None:
    alice = Principal("w", Role.DEVELOPER, user_id="alice")
    RolePolicy().authorize(alice, request(owner="alice"))
    with pytest.raises(Forbidden, match="another user"):
        RolePolicy().authorize(alice, request(owner="bob"))


def test_developers_use_only_the_profiles_they_were_invited_to_and_admins_any() -> None:
    invited = {("w", "dev"): {"p1"}}
    policy = RolePolicy(AccessIndex(lambda ws, user: invited.get((ws, user), set())))
    dev = Principal("w", Role.DEVELOPER, user_id="dev")
    shared = CredentialRequest("c1", "shared", Purpose.READ_TOKEN, profile_id="p1")
    policy.authorize(dev, shared)
    with pytest.raises(Forbidden, match="not shared with you"):
        policy.authorize(
            dev, CredentialRequest("c2", "shared", Purpose.READ_TOKEN, profile_id="p2")
        )
    policy.authorize(Principal("w", Role.ADMIN, user_id="boss"), shared)
    # An admin never uses another user's own connection.
    with pytest.raises(Forbidden, match="another user"):
        policy.authorize(
            Principal("w", Role.ADMIN, user_id="boss"),
            CredentialRequest("c3", "dev", Purpose.READ_TOKEN, profile_id="p1"),
        )


def test_the_proxy_refuses_a_browser_session() -> None:
    signed_in = Principal("w", Role.ADMIN, user_id="boss", session_id="s1")
    RolePolicy().authorize(signed_in, request(purpose=Purpose.READ_TOKEN))
    with pytest.raises(Forbidden, match="not a browser session"):
        RolePolicy().authorize(signed_in, request(purpose=Purpose.PROXY))


def test_this_servers_cookies_and_csrf_token_never_go_upstream() -> None:
    sent = forwarded_headers(
        [
            ("Cookie", "theirs=1; authprofiles_session=secret; other=2"),
            ("X-CSRF-Token", "csrf"),
            ("Accept", "application/json"),
        ]
    )
    assert sent == [("Cookie", "theirs=1; other=2"), ("Accept", "application/json")]
    assert forwarded_headers([("Cookie", "authprofiles_session=secret")]) == []


# -- whether a refresh is due --------------------------------------------------------------
def connection(expires_in: float | None = 60, **changes: object) -> Connection:
    tokens = TokenSet(
        access_token="at",
        token_type="Bearer",
        refresh_token="rt",
        expires_at=None if expires_in is None else NOW + timedelta(seconds=expires_in),
    )
    if "tokens" in changes:
        tokens = changes.pop("tokens")  # type: ignore[assignment]
    return a_connection(tokens, **{"version": 3, **changes})


def test_a_token_expiring_within_the_window_is_refreshed_and_one_beyond_it_is_not() -> None:
    assert needs_refresh(connection(expires_in=30), NOW, 60, None)
    assert not needs_refresh(connection(expires_in=120), NOW, 60, None)


def test_a_token_without_expiry_is_used_until_an_api_refuses_it() -> None:
    assert not needs_refresh(connection(expires_in=None), NOW, 60, None)


def test_a_forced_refresh_runs_only_while_the_token_is_the_one_refused() -> None:
    assert needs_refresh(connection(expires_in=3600), NOW, None, seen_version=3)
    assert not needs_refresh(connection(expires_in=3600), NOW, None, seen_version=2)


@pytest.mark.parametrize("status", [ConnectionStatus.PENDING, ConnectionStatus.NEEDS_REAUTH])
def test_only_active_connections_refresh(status: ConnectionStatus) -> None:
    assert not needs_refresh(connection(expires_in=0, status=status), NOW, 60, None)


# -- what a failed refresh means ------------------------------------------------------------
@pytest.mark.parametrize(
    ("failure", "reauth", "client_refused"),
    [
        (GrantRefused("invalid_grant", "expired", 400), True, False),
        (GrantRefused("invalid_client", None, 401), False, True),
        (GrantRefused("unauthorized_client", None, 400), False, True),
        (IdPUnavailable("503"), False, False),
        (IdPUnavailable("timed out", timeout=True), False, False),
    ],
)
def test_a_failed_refresh_is_reauthorization_a_refused_client_or_passing(
    failure: Exception, reauth: bool, client_refused: bool
) -> None:
    assert after_refresh_failure(failure) == (reauth, client_refused)  # type: ignore[arg-type]


# -- how each grant renews --------------------------------------------------------------------
def ok(access_token: str) -> httpx.Response:
    return httpx.Response(200, json={"access_token": access_token, "token_type": "Bearer"})


def refused() -> httpx.Response:
    return httpx.Response(400, json={"error": "invalid_grant"})


def profile(auth_type: AuthType, **fields: object) -> ProfileDefinition:
    return ProfileDefinition(name="p", auth_type=auth_type, **fields)  # type: ignore[arg-type]


def test_a_preauthorized_password_connection_logs_in_again_when_its_refresh_is_refused() -> None:
    seen: list[httpx.Request] = []
    engine = engine_answering(refused(), ok("fresh"), seen=seen)
    preauthorized = profile(
        AuthType.PASSWORD,
        authorization_mode=AuthorizationMode.PREAUTHORIZED,
        username="svc",
        password="pw",
    )
    tokens = grant_for(AuthType.PASSWORD).renew(engine, SETTINGS, preauthorized, connection())
    assert tokens.access_token == "fresh"
    assert [b"grant_type=refresh_token" in r.content for r in seen] == [True, False]
    assert b"grant_type=password" in seen[1].content


def test_a_user_mode_password_connection_needs_its_user_when_the_refresh_is_refused() -> None:
    engine = engine_answering(refused())
    user_mode = profile(AuthType.PASSWORD, authorization_mode=AuthorizationMode.USER)
    with pytest.raises(GrantRefused, match="invalid_grant"):
        grant_for(AuthType.PASSWORD).renew(engine, SETTINGS, user_mode, connection())


def test_client_credentials_without_a_refresh_token_asks_again() -> None:
    seen: list[httpx.Request] = []
    engine = engine_answering(ok("again"), seen=seen)
    without = connection(tokens=TokenSet(access_token="old", token_type="Bearer"))
    renewed = grant_for(AuthType.CLIENT_CREDENTIALS).renew(
        engine, SETTINGS, profile(AuthType.CLIENT_CREDENTIALS), without
    )
    assert renewed.access_token == "again"
    assert b"grant_type=client_credentials" in seen[0].content


@pytest.mark.parametrize("auth_type", [AuthType.AUTHORIZATION_CODE, AuthType.DEVICE_CODE])
def test_a_grant_a_person_finished_cannot_renew_without_a_refresh_token(
    auth_type: AuthType,
) -> None:
    without = connection(tokens=TokenSet(access_token="old", token_type="Bearer"))
    with pytest.raises(GrantRefused, match="no_refresh_token"):
        grant_for(auth_type).renew(engine_answering(ok("x")), SETTINGS, profile(auth_type), without)
