"""The server behind PgBouncer in transaction pooling mode, as two hosts on one database.

PgBouncer gives each transaction whichever server connection is free, so nothing may lean
on one server connection from one transaction to the next: no server-side prepared
statement, no ``SET`` of the session, no session-level advisory lock or ``LISTEN``. Its
pool here has two server connections for every worker of both hosts, so their
transactions really take turns on shared server connections.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from authprofiles.composition import Services
from authprofiles.settings import Settings
from authprofiles.store.db import Database
from authprofiles.store.models import ConnectionRow
from tests.support.app import Live, oauth_profile
from tests.support.idp import IdP
from tests.support.live import ProcessServer, free_port
from tests.support.pgbouncer import PgBouncer, running_pgbouncer
from tests.support.postgres import create_database, drop_database

pytestmark = [pytest.mark.postgres]

THREADS = 8
FETCHES_PER_THREAD = 24


@dataclass
class TwoHosts:
    """Two `authprofiles serve` processes on one database through one PgBouncer, with one
    public URL (host B's, standing for the load balancer's), and an admin client of each."""

    a: Live
    b: Live
    services: Services
    servers: tuple[ProcessServer, ProcessServer]

    def logs(self) -> str:
        return "\n".join(server.log.read_text() for server in self.servers)


@pytest.fixture
def two_hosts(
    postgres_admin_url: str, pgbouncer: PgBouncer, master_key: str, tmp_path: Path
) -> Iterator[TwoHosts]:
    # An empty database: both hosts migrate it at once, through PgBouncer.
    direct = create_database(postgres_admin_url)
    url = pgbouncer.url_of(direct)
    port_a, port_b = free_port(), free_port()
    env = {
        "AUTHPROFILES_DATABASE_URL": url,
        "AUTHPROFILES_MASTER_KEY": master_key,  # the same on every host
        "AUTHPROFILES_PUBLIC_URL": f"http://127.0.0.1:{port_b}",
        # Tests age tokens by editing the database; a reused token would hide that.
        "AUTHPROFILES_TOKEN_REUSE_SECONDS": "0",
        "AUTHPROFILES_LOG_LEVEL": "warning",
    }
    servers = (
        ProcessServer(env, tmp_path, port=port_a, workers=2),
        ProcessServer(env, tmp_path, port=port_b, workers=1),
    )
    services: Services | None = None
    clients: list[httpx.Client] = []
    try:
        for server in servers:
            server.start()
        settings = Settings(
            database_url=url, master_key=master_key, key_file=tmp_path / "unused.key"
        )
        services = Services(settings)
        key = services.api_keys.create(name="pgbouncer", role="admin").key
        hosts = []
        for server in servers:
            http = httpx.Client(
                base_url=server.url,
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
                trust_env=False,
            )
            clients.append(http)
            hosts.append(Live(url=server.url, services=services, http=http))
        yield TwoHosts(a=hosts[0], b=hosts[1], services=services, servers=servers)
    finally:
        for http in clients:
            http.close()
        for server in servers:
            server.stop()
        if services is not None:
            services.close()
        drop_database(postgres_admin_url, direct)


def _fetch_everywhere(hosts: TwoHosts, connection_ids: list[str], rounds: int) -> Counter[str]:
    """``THREADS`` callers, each fetching every connection's token ``rounds`` times from
    the two hosts in turn; the answers' status codes (and the first failure's body)."""

    def caller(index: int) -> Counter[str]:
        seen: Counter[str] = Counter()
        for round_ in range(rounds):
            host = (hosts.a, hosts.b)[(index + round_) % 2]
            for connection_id in connection_ids:
                response = host.token(connection_id)
                seen[str(response.status_code)] += 1
                if response.status_code != 200 and "failure" not in seen:
                    seen[f"failure: {response.status_code} {response.text[:500]}"] += 1
        return seen

    with ThreadPoolExecutor(THREADS) as pool:
        return sum(pool.map(caller, range(THREADS)), Counter())


def _tokens(hosts: TwoHosts, connection_ids: list[str]) -> dict[str, str]:
    return {cid: hosts.b.token(cid).json()["access_token"] for cid in connection_ids}


@pytest.mark.idp
def test_two_hosts_serve_and_refresh_tokens_through_pgbouncer_in_transaction_mode(
    two_hosts: TwoHosts, idp: IdP, user: tuple[str, str]
) -> None:
    a, b = two_hosts.a, two_hosts.b
    # A token at once (client credentials, password), made on either host.
    service, _ = oauth_profile(a, idp, "client-credentials")
    service_id = a.connect(service["id"], owner="shared")["connection_id"]
    password, _ = oauth_profile(b, idp, "password")
    password_id = b.connect(password["id"], username=user[0], password=user[1])["connection_id"]
    # An authorization begun on host A, its callback answered by host B (the public URL):
    # the authorization's state lives in the database.
    code, _ = oauth_profile(b, idp, "authorization-code")
    started = a.connect(code["id"], owner="shared")
    callback = idp.log_in_and_consent(started["authorization_url"], *user)
    assert callback.startswith(b.url + "/oauth/callback?")
    page = httpx.get(callback, timeout=30, trust_env=False)
    assert page.status_code == 200, page.text
    assert 'data-ok="true"' in page.text
    code_id = started["connection_id"]
    connection_ids = [service_id, password_id, code_id]

    # Many callers on both hosts: every one served.
    assert _fetch_everywhere(two_hosts, connection_ids, FETCHES_PER_THREAD) == {
        "200": THREADS * FETCHES_PER_THREAD * len(connection_ids)
    }

    # Every token expired: the callers on both hosts wait for one renewal each.
    before = _tokens(two_hosts, connection_ids)
    refreshes = idp.token_requests("refresh_token")
    client_credentials = idp.token_requests("client_credentials")
    with two_hosts.services.db.session() as session:
        for connection_id in connection_ids:
            row = session.get(ConnectionRow, connection_id)
            assert row is not None
            row.expires_at = datetime.now(UTC) - timedelta(seconds=5)
    assert _fetch_everywhere(two_hosts, connection_ids, 2) == {
        "200": THREADS * 2 * len(connection_ids)
    }
    after = _tokens(two_hosts, connection_ids)
    assert all(after[cid] != before[cid] for cid in connection_ids)
    assert idp.token_requests("refresh_token") - refreshes == 2  # password, authorization code
    assert idp.token_requests("client_credentials") - client_credentials == 1

    logs = two_hosts.logs()
    assert "prepared statement" not in logs
    assert "Traceback" not in logs


def _alternate_writes(databases: list[Database], rounds: int) -> None:
    """Short write transactions, each database's in turn, the same statement every time."""
    for _ in range(rounds):
        for database in databases:
            with database.session() as session:
                session.execute(text("SELECT count(*) FROM profiles")).scalar_one()


def test_prepared_statements_would_break_pgbouncer_and_are_never_made(
    postgres_admin_url: str, postgres_url: str, tmp_path: Path
) -> None:
    # One server connection: two clients' transactions surely run on it in turn.
    with running_pgbouncer(postgres_admin_url, tmp_path / "one", pool_size=1) as bouncer:
        url = bouncer.url_of(postgres_url)
        # psycopg's own default: a statement run five times on a connection is prepared
        # on the server connection of that moment.
        preparing = [Database(url, connect_args={"prepare_threshold": 5}) for _ in range(2)]
        ours = [Database(url) for _ in range(2)]
        try:
            with pytest.raises(DBAPIError, match="prepared statement"):
                _alternate_writes(preparing, rounds=10)
            _alternate_writes(ours, rounds=10)
        finally:
            for database in preparing + ours:
                database.dispose()


def test_hosts_starting_at_once_migrate_one_after_the_other(
    postgres_admin_url: str, pgbouncer: PgBouncer
) -> None:
    direct = create_database(postgres_admin_url)
    databases = [Database(pgbouncer.url_of(direct)) for _ in range(3)]
    try:
        with ThreadPoolExecutor(len(databases)) as pool:
            list(pool.map(Database.migrate, databases))
        assert all(database.is_migrated() for database in databases)
    finally:
        for database in databases:
            database.dispose()
        drop_database(postgres_admin_url, direct)
