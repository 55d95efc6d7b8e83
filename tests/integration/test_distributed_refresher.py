"""The distributed refresher: due connections leased in batches, each renewed once across
every worker, renewals spread at random, and a worker killed mid-lease loses nothing.

The kill tests run two `authprofiles serve` processes on one PostgreSQL database against
the test IdP (django-oauth-toolkit, rotating refresh tokens with no grace period: a
refresh token used twice is answered ``invalid_grant``, which the IdP counts), freeze
one of them while it holds leases and kill it (SIGKILL), and check every connection
afterwards at the IdP itself.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx
import pytest
from sqlalchemy import func, select, update

from authprofiles.composition import Services
from authprofiles.core.connections import ConnectionStatus, TokenSet
from authprofiles.core.profiles import Profile
from authprofiles.settings import Settings
from authprofiles.store.connections import RefreshLease
from authprofiles.store.models import DEFAULT_WORKSPACE_ID, ConnectionRow, OutboxRow
from authprofiles.store.webhooks import WebhookStore
from tests.support.idp import Client, IdP
from tests.support.live import ProcessServer
from tests.support.seed import add_profile

#: Preauthorized password connections in the kill test's refresh storm (at 1,000 the test
#: takes 29 s on two quiet cores, up to 55 s on busy ones: most of it is the test IdP,
#: which answers about 60 refreshes a second).
STORM_PASSWORD_CONNECTIONS = 1000
#: Authorization-code connections in the second kill test.
STORM_CODE_CONNECTIONS = 100
#: The storm's servers: leases short enough for the test to wait one out, longer than
#: the IdP deadline (so a live worker never loses one).
STORM_ENV = {
    "AUTHPROFILES_BACKGROUND_REFRESH_INTERVAL_SECONDS": "0.2",
    "AUTHPROFILES_BACKGROUND_REFRESH_BATCH_SIZE": "8",
    "AUTHPROFILES_BACKGROUND_REFRESH_CONCURRENCY": "8",
    "AUTHPROFILES_IDP_DEADLINE_SECONDS": "8",
    "AUTHPROFILES_HTTP_TIMEOUT_SECONDS": "8",
    "AUTHPROFILES_REFRESH_LEASE_SECONDS": "10",
    "AUTHPROFILES_LOG_LEVEL": "warning",
}
NEEDS_REAUTH_EVENT = "connection.needs_reauth"

F = TypeVar("F", bound=Callable[..., None])


def on_postgres(test: F) -> F:
    """The test runs on PostgreSQL only (row locks that SKIP LOCKED, several processes)."""
    parametrized: F = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)(test)
    return cast(F, pytest.mark.postgres(parametrized))


# -- seeding: connections holding real tokens of the IdP, written through the store -------


def _profile(services: Services, client: Client, token_url: str, **fields: Any) -> Profile:
    data = {
        "name": f"refresher-{uuid.uuid4().hex[:8]}",
        "identity_provider": "Test IdP",
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "token_url": token_url,
        **fields,
    }
    with services.db.session() as session:
        return add_profile(services.profile_store, session, data)


def _password_profile(services: Services, idp: IdP, user: tuple[str, str]) -> Profile:
    client = idp.register_client("password")
    return _profile(
        services,
        client,
        idp.token_url,
        auth_type="oauth2_password",
        authorization_mode="preauthorized",
        username=user[0],
        password=user[1],
    )


def _code_profile(services: Services, idp: IdP) -> Profile:
    client = idp.register_client("authorization-code", ["http://127.0.0.1:9/oauth/callback"])
    return _profile(
        services,
        client,
        idp.token_url,
        auth_type="oauth2_authorization_code",
        authorization_url=idp.authorization_url,
        tenancy=False,
    )


def _client_of(profile: Profile) -> Client:
    return Client(profile.client_id or "", profile.client_secret or "")


def _seed(
    services: Services,
    idp: IdP,
    profile: Profile,
    user: tuple[str, str],
    count: int,
    *,
    owner: Callable[[int], str] = lambda _: "shared",
    credentials: bool = False,
) -> list[str]:
    """``count`` active connections of ``profile``, each holding its own tokens issued by
    the IdP to ``user``, all due for renewal now (their tokens expire in four minutes)."""
    answers = idp.issue_tokens(_client_of(profile), user[0], count)
    now = datetime.now(UTC)
    ids = []
    with services.db.session() as session:
        for i, answer in enumerate(answers):
            connection = services.connection_store.add(
                session,
                workspace_id=DEFAULT_WORKSPACE_ID,
                profile_id=profile.id,
                owner=owner(i),
                tenant=None,
                fields={},
                username=user[0] if credentials else None,
                password=user[1] if credentials else None,
                status=ConnectionStatus.ACTIVE,
                tokens=TokenSet(
                    access_token=answer["access_token"],
                    token_type="Bearer",
                    refresh_token=answer["refresh_token"],
                    expires_at=now + timedelta(minutes=4),
                    scopes=tuple(answer["scope"].split()),
                ),
            )
            ids.append(connection.id)
        session.execute(
            update(ConnectionRow)
            .where(ConnectionRow.profile_id == profile.id)
            .values(next_refresh_at=now - timedelta(seconds=1))
        )
    return ids


def _rows(services: Services, profile_id: str) -> list[ConnectionRow]:
    with services.db.read() as session:
        return list(
            session.scalars(select(ConnectionRow).where(ConnectionRow.profile_id == profile_id))
        )


def _tokens(services: Services, connection_id: str) -> TokenSet:
    connection, _ = services.credentials.read(None, connection_id)
    assert connection.tokens is not None
    return connection.tokens


def _hold_lapsed_lease(services: Services, connection_id: str) -> None:
    """A lease as a worker that died mid-refresh leaves it: taken, lapsed, nothing written."""
    with services.db.session() as session:
        row = session.get(ConnectionRow, connection_id)
        assert row is not None
        lease = services.connection_store.claim_refresh(
            session, connection_id, version=row.version, owner="dead-worker", seconds=-1
        )
    assert lease is not None and not lease.possibly_spent


def _webhook_for_needs_reauth(services: Services) -> None:
    with services.db.session() as session:
        WebhookStore(services.keyring).add(
            session,
            workspace_id=DEFAULT_WORKSPACE_ID,
            url="https://hooks.invalid/needs-reauth",
            events=[NEEDS_REAUTH_EVENT],
            secret="webhook-secret",
        )


def _told_needs_reauth(services: Services) -> set[str]:
    """The connections a ``connection.needs_reauth`` notice was written for."""
    with services.db.read() as session:
        payloads = session.scalars(
            select(OutboxRow.payload).where(OutboxRow.event == NEEDS_REAUTH_EVENT)
        )
        return {json.loads(p)["connection"]["id"] for p in payloads}


@pytest.fixture
def make_services(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Services]]:
    made: list[Services] = []

    def make(**overrides: Any) -> Services:
        services = Services(make_settings(**{"token_reuse_seconds": 0, **overrides}))
        made.append(services)
        return services

    yield make
    for services in made:
        services.close()


# -- the store: batches leased once, renewal times spread ----------------------------------


def _made_up(services: Services, count: int, expires_at: datetime) -> Profile:
    """A client credentials profile of no real server with ``count`` active connections
    holding made-up tokens that expire at ``expires_at``."""
    profile = _profile(
        services,
        Client("client", "secret"),
        "https://idp.example.com/oauth2/token",
        auth_type="oauth2_client_credentials",
    )
    with services.db.session() as session:
        for i in range(count):
            services.connection_store.add(
                session,
                workspace_id=DEFAULT_WORKSPACE_ID,
                profile_id=profile.id,
                owner=f"user-{i}",
                tenant=None,
                fields={},
                username=None,
                password=None,
                status=ConnectionStatus.ACTIVE,
                tokens=TokenSet("access", "Bearer", "refresh", expires_at),
            )
    return profile


def _fake_due(services: Services, count: int) -> list[str]:
    """``count`` active connections holding made-up tokens, due for renewal now."""
    now = datetime.now(UTC)
    profile = _made_up(services, count, now + timedelta(minutes=4))
    with services.db.session() as session:
        session.execute(
            update(ConnectionRow)
            .where(ConnectionRow.profile_id == profile.id)
            .values(next_refresh_at=now - timedelta(seconds=1))
        )
    return [row.id for row in _rows(services, profile.id)]


def _claim(services: Services, owner: str, limit: int) -> list[RefreshLease]:
    with services.db.session() as session:
        claimed = services.connection_store.claim_due_refreshes(
            session, due_by=datetime.now(UTC), owner=owner, seconds=60, limit=limit
        )
    for lease, row in claimed:
        assert row.id == lease.connection_id and row.refresh_lease_owner == owner
    return [lease for lease, _ in claimed]


def test_two_claims_never_lease_the_same_connection(services: Services) -> None:
    due = _fake_due(services, 10)
    first = _claim(services, "a", 4)
    second = _claim(services, "b", 100)
    third = _claim(services, "c", 100)
    assert len(first) == 4 and len(second) == 6 and third == []
    assert {lease.connection_id for lease in first + second} == set(due)
    assert all(lease.version == 1 and not lease.possibly_spent for lease in first + second)


@on_postgres
def test_claims_in_open_transactions_skip_each_others_rows_without_waiting(
    services: Services,
) -> None:
    due = _fake_due(services, 10)
    store = services.connection_store
    now = datetime.now(UTC)
    first_claimed, first_may_commit = threading.Event(), threading.Event()
    first: list[Any] = []

    def claim_and_hold() -> None:
        with services.db.session() as session:
            claimed = store.claim_due_refreshes(session, due_by=now, owner="a", seconds=60, limit=4)
            first.extend(lease for lease, _ in claimed)
            first_claimed.set()
            first_may_commit.wait(10)

    with ThreadPoolExecutor(1) as pool:
        holding = pool.submit(claim_and_hold)
        assert first_claimed.wait(10)
        started = time.monotonic()
        second = _claim(services, "b", 100)
        waited = time.monotonic() - started
        first_may_commit.set()
        holding.result()
    assert waited < 2, "the second claim skipped the locked rows rather than waiting"
    assert len(first) == 4 and len(second) == 6
    assert {lease.connection_id for lease in first + second} == set(due)


def test_a_lapsed_lease_marks_the_refresh_token_possibly_spent_until_tokens_are_stored(
    services: Services,
) -> None:
    (connection_id,) = _fake_due(services, 1)
    store = services.connection_store
    _hold_lapsed_lease(services, connection_id)
    (lease,) = _claim(services, "next", 10)
    assert lease.possibly_spent
    with services.db.session() as session:
        written = store.finish_refresh(
            session,
            connection_id,
            version=lease.version,
            tokens=TokenSet("new-access", "Bearer", "new-refresh", datetime.now(UTC)),
            requested=(),
            owner=lease.owner,
        )
        assert written
    (row,) = _rows(services, _profile_of(services, connection_id))
    assert not row.refresh_token_possibly_spent
    assert row.refresh_lease_owner is None and row.refresh_lease_until is None


@pytest.mark.parametrize(
    ("answer_refresh", "answer_scopes", "new_grant", "kept_refresh", "kept_scopes"),
    [
        ("rotated", ("read",), False, "rotated", '["read"]'),
        (None, None, False, "refresh", '["stored"]'),  # RFC 6749 section 6: MAY issue one
        (None, None, True, None, '["requested"]'),  # a new grant replaces the old one whole
    ],
)
def test_a_refresh_written_back_keeps_what_the_answer_leaves_out_but_for_a_new_grant(
    services: Services,
    answer_refresh: str | None,
    answer_scopes: tuple[str, ...] | None,
    new_grant: bool,
    kept_refresh: str | None,
    kept_scopes: str,
) -> None:
    (connection_id,) = _fake_due(services, 1)
    with services.db.session() as session:
        session.execute(
            update(ConnectionRow)
            .where(ConnectionRow.id == connection_id)
            .values(scopes='["stored"]')
        )
    (lease,) = _claim(services, "me", 1)
    answer = TokenSet(
        "new-access",
        "Bearer",
        answer_refresh,
        datetime.now(UTC) + timedelta(hours=1),
        answer_scopes,
    )
    with services.db.session() as session:
        assert services.connection_store.finish_refresh(
            session,
            connection_id,
            version=lease.version,
            tokens=answer,
            requested=("requested",),
            owner="me",
            new_grant=new_grant,
        )
    tokens = _tokens(services, connection_id)
    assert tokens.access_token == "new-access" and tokens.refresh_token == kept_refresh
    (row,) = _rows(services, _profile_of(services, connection_id))
    assert row.scopes == kept_scopes and row.version == 2 and row.status == "active"
    assert row.refresh_lease_owner is None and row.next_refresh_at is not None
    assert row.next_refresh_at > datetime.now(UTC) + timedelta(minutes=40)


def test_a_refresh_that_lost_the_race_writes_nothing_and_ends_its_lease(
    services: Services,
) -> None:
    (connection_id,) = _fake_due(services, 1)
    (lease,) = _claim(services, "me", 1)
    with services.db.session() as session:
        assert not services.connection_store.finish_refresh(
            session,
            connection_id,
            version=lease.version - 1,
            tokens=TokenSet("stale", "Bearer", "stale", datetime.now(UTC)),
            requested=(),
            owner="me",
        )
    assert _tokens(services, connection_id).access_token == "access"
    (row,) = _rows(services, _profile_of(services, connection_id))
    assert row.version == 1 and row.refresh_lease_owner is None


def _profile_of(services: Services, connection_id: str) -> str:
    with services.db.read() as session:
        row = session.get(ConnectionRow, connection_id)
        assert row is not None
        return row.profile_id


def test_tokens_stored_together_come_due_spread_over_the_jitter(
    make_services: Callable[..., Services],
) -> None:
    services = make_services(
        background_refresh_lead_seconds=300,
        refresh_skew_seconds=60,
        background_refresh_jitter=0.25,
    )
    services.db.migrate()
    expires = datetime.now(UTC) + timedelta(hours=1)
    profile = _made_up(services, 200, expires)
    early = sorted(
        (expires - row.next_refresh_at).total_seconds()
        for row in _rows(services, profile.id)
        if row.next_refresh_at is not None
    )
    assert len(early) == 200
    # A quarter of the hour's lifetime: up to 900 s earlier than the lead.
    assert 360 <= early[0] and early[-1] <= 360 + 900
    # Spread over the jitter, not bunched: each tenth of it holds some.
    assert {int((e - 360) // 90) for e in early} == set(range(10))


# -- the service: batches, each due connection renewed once, possibly spent tokens -----------


def test_two_workers_renew_every_due_connection_once(
    make_services: Callable[..., Services], idp: IdP, user: tuple[str, str]
) -> None:
    workers = [
        make_services(background_refresh_batch_size=5, background_refresh_concurrency=3)
        for _ in range(2)
    ]
    workers[0].db.migrate()
    profile = _password_profile(workers[0], idp, user)
    ids = _seed(workers[0], idp, profile, user, 40, credentials=True)
    idp.reset_counters()

    def drain(services: Services) -> int:
        passes = 1
        while services.tokens.renew_due():  # a full batch: the next pass comes at once
            passes += 1
        return passes

    with ThreadPoolExecutor(2) as pool:
        passes = list(pool.map(drain, workers))

    rows = _rows(workers[0], profile.id)
    assert {row.id for row in rows} == set(ids)
    assert [row.version for row in rows] == [2] * 40, "each renewed once"
    assert all(row.status == "active" and row.refresh_lease_owner is None for row in rows)
    assert idp.token_requests("refresh_token") == 40
    assert idp.token_requests() == 40 and idp.token_errors() == 0
    assert sum(passes) >= 40 // 5
    # Renewed tokens come due again an hour on, less the lead and the jitter.
    soonest = min(row.next_refresh_at for row in rows if row.next_refresh_at is not None)
    assert soonest > datetime.now(UTC) + timedelta(minutes=40)
    assert idp.inactive([_tokens(workers[0], i).refresh_token or "" for i in ids]) == []


def _spend(idp: IdP, profile: Profile, refresh_token: str | None) -> None:
    """Use the refresh token at the IdP, as a worker that died after its answer had."""
    spent = httpx.post(
        idp.token_url,
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=(profile.client_id or "", profile.client_secret or ""),
    )
    assert spent.status_code == 200, spent.text


def test_a_password_connection_whose_lease_lapsed_logs_in_again_instead_of_replaying(
    services: Services, idp: IdP, user: tuple[str, str]
) -> None:
    profile = _password_profile(services, idp, user)
    (connection_id,) = _seed(services, idp, profile, user, 1, credentials=True)
    before = _tokens(services, connection_id)
    # The worker that died had its refresh answered: the refresh token we hold is spent.
    _spend(idp, profile, before.refresh_token)
    _hold_lapsed_lease(services, connection_id)
    idp.reset_counters()

    assert services.tokens.refresh_expiring() == 1

    assert idp.token_requests("password") == 1
    assert idp.token_requests("refresh_token") == 0, "the possibly spent token is not replayed"
    assert idp.token_errors() == 0
    (row,) = _rows(services, profile.id)
    assert row.status == "active" and row.version == 2 and not row.refresh_token_possibly_spent
    after = _tokens(services, connection_id)
    assert idp.inactive([after.access_token, after.refresh_token or ""]) == []


def test_a_code_connection_whose_spent_token_is_refused_needs_reauth_and_its_owner_is_told(
    services: Services, idp: IdP, user: tuple[str, str]
) -> None:
    profile = _code_profile(services, idp)
    _webhook_for_needs_reauth(services)
    (connection_id,) = _seed(services, idp, profile, user, 1, owner=lambda _: "user-owner")
    before = _tokens(services, connection_id)
    _spend(idp, profile, before.refresh_token)
    _hold_lapsed_lease(services, connection_id)
    idp.reset_counters()

    assert services.tokens.refresh_expiring() == 1

    # Replayed once (nothing else can renew it), refused, and never tried again.
    assert idp.token_requests("refresh_token") == 1
    assert idp.token_errors("invalid_grant") == 1
    (row,) = _rows(services, profile.id)
    assert row.status == "needs_reauth" and row.next_refresh_at is None
    assert row.last_error and "interrupted" in row.last_error
    assert _told_needs_reauth(services) == {connection_id}
    assert services.tokens.refresh_expiring() == 0


def test_a_code_connection_whose_lapsed_lease_left_its_token_unspent_renews_as_usual(
    services: Services, idp: IdP, user: tuple[str, str]
) -> None:
    profile = _code_profile(services, idp)
    (connection_id,) = _seed(services, idp, profile, user, 1, owner=lambda _: "user-owner")
    _hold_lapsed_lease(services, connection_id)
    idp.reset_counters()

    assert services.tokens.refresh_expiring() == 1

    assert idp.token_requests("refresh_token") == 1 and idp.token_errors() == 0
    (row,) = _rows(services, profile.id)
    assert row.status == "active" and row.version == 2 and not row.refresh_token_possibly_spent
    assert idp.inactive([_tokens(services, connection_id).refresh_token or ""]) == []


# -- the kill tests: two server processes, one killed mid-storm ---------------------------------


def _held_by(services: Services, profile_id: str, pid: int) -> set[str]:
    with services.db.read() as session:
        return set(
            session.scalars(
                select(ConnectionRow.id).where(
                    ConnectionRow.profile_id == profile_id,
                    ConnectionRow.refresh_lease_owner.like(f"%:{pid}:%"),
                    ConnectionRow.refresh_lease_until.is_not(None),
                )
            )
        )


def _settled(services: Services, profile_id: str) -> tuple[int, int]:
    """(connections renewed or given up, leases held)."""
    with services.db.read() as session:
        done = session.scalar(
            select(func.count())
            .select_from(ConnectionRow)
            .where(
                ConnectionRow.profile_id == profile_id,
                (ConnectionRow.version > 1) | (ConnectionRow.status != "active"),
            )
        )
        held = session.scalar(
            select(func.count())
            .select_from(ConnectionRow)
            .where(
                ConnectionRow.profile_id == profile_id,
                ConnectionRow.refresh_lease_until.is_not(None),
            )
        )
    return int(done or 0), int(held or 0)


def _kill_while_holding_leases(
    services: Services, server: ProcessServer, profile_id: str, total: int
) -> set[str]:
    """Once a third of the storm is through, stop ``server`` while it holds leases, kill it
    (SIGKILL), and return the connections whose leases it held: left to lapse."""
    pid = server.process.pid
    deadline = time.monotonic() + 120
    while True:
        assert time.monotonic() < deadline, "the storm never got going"
        done, _ = _settled(services, profile_id)
        if done >= total // 3 and _held_by(services, profile_id, pid):
            os.kill(pid, signal.SIGSTOP)
            time.sleep(0.3)  # a commit already on its way lands; no other can start
            if _held_by(services, profile_id, pid):
                break
            os.kill(pid, signal.SIGCONT)
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    server.process.wait(10)
    time.sleep(0.3)  # its database sessions end: what it had not committed is rolled back
    held = _held_by(services, profile_id, pid)
    assert held, "the killed worker held leases"
    return held


def _wait_until_settled(services: Services, profile_id: str, total: int) -> None:
    deadline = time.monotonic() + 180
    while _settled(services, profile_id) != (total, 0):
        assert time.monotonic() < deadline, f"unsettled: {_settled(services, profile_id)}"
        time.sleep(0.1)


@pytest.fixture
def storm_servers(
    services: Services, master_key: str, tmp_path: Path
) -> Iterator[list[ProcessServer]]:
    """Two `authprofiles serve` processes on the test's database, starting (a test seeds
    its connections meanwhile, then waits for them with ``start()``)."""
    env = {
        **STORM_ENV,
        "AUTHPROFILES_DATABASE_URL": services.settings.database_url,
        "AUTHPROFILES_MASTER_KEY": master_key,
    }
    servers = [ProcessServer(env, tmp_path) for _ in range(2)]
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


@on_postgres
def test_a_worker_killed_mid_storm_loses_no_password_connection_and_replays_no_token(
    services: Services,
    storm_servers: list[ProcessServer],
    idp: IdP,
    user: tuple[str, str],
) -> None:
    total = STORM_PASSWORD_CONNECTIONS
    profile = _password_profile(services, idp, user)
    ids = _seed(services, idp, profile, user, total, credentials=True)
    key = services.api_keys.create(name="storm", role="admin").key
    idp.reset_counters()

    doomed, survivor = (server.start() for server in storm_servers)
    held = _kill_while_holding_leases(services, doomed, profile.id, total)
    _wait_until_settled(services, profile.id, total)

    # Nothing replayed: not one refresh token was refused, nor anything else.
    assert idp.token_errors("invalid_grant") == 0
    assert idp.token_errors() == 0
    # Every connection renewed once, across both workers; those whose lease lapsed with
    # the killed worker logged in again with their credentials, the rest refreshed.
    rows = _rows(services, profile.id)
    assert {row.id for row in rows} == set(ids)
    assert all(row.status == "active" for row in rows)
    assert [row.version for row in rows] == [2] * total
    assert not any(row.refresh_token_possibly_spent for row in rows)
    assert idp.token_requests("password") == len(held)
    # The killed worker's own refreshes may have reached the IdP before it died.
    assert total - len(held) <= idp.token_requests("refresh_token") <= total
    # Nothing lost: every token stored is one the IdP honours.
    stored = [_tokens(services, connection_id) for connection_id in ids]
    assert idp.inactive([t.refresh_token or "" for t in stored]) == []
    assert idp.inactive([t.access_token for t in stored]) == []
    # And the surviving worker hands each one out.
    with httpx.Client(
        base_url=survivor.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as http:

        def fetch(connection_id: str) -> httpx.Response:
            return http.get(f"/api/v1/connections/{connection_id}/token")

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(fetch, ids))
    assert [a.status_code for a in answers] == [200] * total
    assert [a.json()["access_token"] for a in answers] == [t.access_token for t in stored]


@on_postgres
def test_a_worker_killed_mid_storm_leaves_code_connections_valid_or_needing_reauth(
    services: Services,
    storm_servers: list[ProcessServer],
    idp: IdP,
    user: tuple[str, str],
) -> None:
    total = STORM_CODE_CONNECTIONS
    profile = _code_profile(services, idp)
    _webhook_for_needs_reauth(services)
    ids = _seed(services, idp, profile, user, total, owner=lambda i: f"user-{i}")
    idp.reset_counters()

    doomed, _survivor = (server.start() for server in storm_servers)
    held = _kill_while_holding_leases(services, doomed, profile.id, total)
    _wait_until_settled(services, profile.id, total)

    rows = {row.id: row for row in _rows(services, profile.id)}
    assert set(rows) == set(ids)
    needs_reauth = {i for i, row in rows.items() if row.status == "needs_reauth"}
    valid = {i for i, row in rows.items() if row.status == "active"}
    assert needs_reauth | valid == set(ids)
    # Only a connection whose lease the killed worker held can have lost its grant, and
    # each that did was refused once, and its owner told.
    assert needs_reauth <= held
    assert idp.token_errors("invalid_grant") == len(needs_reauth)
    assert idp.token_errors() == len(needs_reauth)
    assert _told_needs_reauth(services) == needs_reauth
    # Never silently broken: every connection left active holds tokens the IdP honours.
    assert all(rows[i].version == 2 and not rows[i].refresh_token_possibly_spent for i in valid)
    stored = [_tokens(services, connection_id) for connection_id in sorted(valid)]
    assert idp.inactive([t.refresh_token or "" for t in stored]) == []
    assert idp.inactive([t.access_token for t in stored]) == []
