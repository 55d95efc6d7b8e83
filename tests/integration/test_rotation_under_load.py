"""`keys rotate` while two `authprofiles serve` processes take writes and reads.

Threads create and change profiles and read tokens and profiles through both servers,
before, during and after the rotation. Measured: every answer (no 5xx, no dropped
connection), every secret afterwards through the API and in the database, and again after
the servers restart with nothing but the key file (or the key the rotation printed).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from authprofiles.composition import Services
from authprofiles.core.connections import TokenSet
from authprofiles.settings import Settings
from authprofiles.store.cipher import Keyring, encode_key, key_id, key_ids_in, new_key
from authprofiles.store.db import Database
from authprofiles.store.keys import read_key_file
from authprofiles.store.models import ProfileRow
from authprofiles.store.profiles import ProfileStore
from tests.support.live import ProcessServer
from tests.support.seed import client_credentials_profile, seed_connection

THREADS = 4
SEEDED_PROFILES = 60
#: Each thread stops after this many rounds at the latest (a round is four requests).
MAX_ROUNDS = 400
#: Rounds every thread does before the rotation starts, and after it ended.
ROUNDS_AROUND = 5
DEADLINE_SECONDS = 300.0


def _profile(name: str, secret: str, field_value: str) -> dict[str, Any]:
    return client_credentials_profile(
        name,
        secret,
        identity_provider="Load",
        additional_fields=[{"key": "pin", "value": f"pin-{secret}"}],
        authorization_fields=[{"type": "header", "key": "X-Secret", "value": field_value}],
    )


@dataclass
class Expected:
    """What each profile's secrets must be, by profile id (a thread owns what it writes)."""

    client_secret: dict[str, str] = field(default_factory=dict)
    header: dict[str, str] = field(default_factory=dict)
    #: connection id -> profile id, for the profiles that have a connection
    connections: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, profile_id: str, secret: str, header: str) -> None:
        with self.lock:
            self.client_secret[profile_id] = secret
            self.header[profile_id] = header


@dataclass
class Load:
    """Threads sending requests to the servers until told to stop (or MAX_ROUNDS)."""

    urls: list[str]
    api_key: str
    expected: Expected
    own: list[tuple[str, str]]  # per thread: (profile id, connection id) it changes
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    rounds: Counter[int] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, index: int) -> None:
        profile_id, connection_id = self.own[index]
        headers = {"Authorization": f"Bearer {self.api_key}"}
        clients = [
            httpx.Client(base_url=url, headers=headers, timeout=60, trust_env=False)
            for url in self.urls
        ]
        try:
            for n in range(MAX_ROUNDS):
                if self.stop.is_set():
                    return
                self._round(index, n, clients, profile_id, connection_id)
                with self.lock:
                    self.rounds[index] += 1
        finally:
            for client in clients:
                client.close()

    def _round(
        self,
        index: int,
        n: int,
        clients: list[httpx.Client],
        profile_id: str,
        connection_id: str,
    ) -> None:
        one, other = clients[n % 2], clients[(n + 1) % 2]
        tag = f"{index}-{n}-{uuid.uuid4().hex[:8]}"
        secret, header = f"cs-{tag}", f"hv-{tag}"
        created = self._call(
            one, "POST", "/api/v1/profiles", 201, _profile(f"load-{tag}", secret, header)
        )
        if created is not None:
            self.expected.record(created["id"], secret, header)
        secret, header = f"cs-patched-{tag}", f"hv-patched-{tag}"
        patched = self._call(
            other,
            "PATCH",
            f"/api/v1/profiles/{profile_id}",
            200,
            {
                "client_secret": secret,
                "authorization_fields": [{"type": "header", "key": "X-Secret", "value": header}],
            },
        )
        if patched is not None:
            self.expected.record(profile_id, secret, header)
        token = self._call(one, "GET", f"/api/v1/connections/{connection_id}/token", 200)
        if token is not None and token["inject"]["headers"].get("X-Secret") != header:
            self._fail(f"token of {connection_id}: stale or wrong X-Secret")
        self._call(other, "GET", f"/api/v1/profiles/{profile_id}", 200)

    def _call(
        self, client: httpx.Client, method: str, path: str, want: int, body: Any = None
    ) -> dict[str, Any] | None:
        try:
            response = client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            self._fail(f"{method} {path}: {type(exc).__name__}")
            return None
        with self.lock:
            self.statuses[response.status_code] += 1
        if response.status_code != want:
            self._fail(f"{method} {path}: {response.status_code} {response.text[:300]}")
            return None
        return dict(response.json())

    def _fail(self, what: str) -> None:
        with self.lock:
            self.failures.append(what)

    def total_rounds(self) -> int:
        with self.lock:
            return sum(self.rounds.values())

    def wait_for_rounds(self, at_least: int) -> None:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while self.total_rounds() < at_least:
            assert time.monotonic() < deadline, f"load stalled at {self.total_rounds()} rounds"
            assert not self.stop.is_set()
            time.sleep(0.05)


@dataclass
class Fleet:
    """Two `authprofiles serve` processes on one database, restartable."""

    env: dict[str, str]
    cwd: Path
    servers: list[ProcessServer] = field(default_factory=list)

    def start(self, **env: str) -> list[str]:
        self.env |= env
        self.servers = [ProcessServer(self.env, self.cwd).start() for _ in range(2)]
        return [s.url for s in self.servers]

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        self.servers = []


def _server_env(database_url: str) -> dict[str, str]:
    return {
        "AUTHPROFILES_DATABASE_URL": database_url,
        "AUTHPROFILES_BACKGROUND_REFRESH_INTERVAL_SECONDS": "3600",
        "AUTHPROFILES_LOG_LEVEL": "warning",
        # Every token read goes to the database, so a changed field is seen at once.
        "AUTHPROFILES_TOKEN_REUSE_SECONDS": "0",
    }


def _seed(services: Services, expected: Expected) -> list[tuple[str, str]]:
    """Profiles to change and read (one per thread, each with a connection), and more."""
    own = []
    for i in range(THREADS):
        secret, header = f"cs-own-{i}", f"hv-own-{i}"
        profile, connection = seed_connection(
            services,
            _profile(f"own-{i}", secret, header),
            TokenSet(
                access_token=f"at-own-{i}",
                token_type="Bearer",
                refresh_token=f"rt-own-{i}",
                expires_at=datetime.now(UTC) + timedelta(hours=2),
            ),
        )
        expected.record(profile.id, secret, header)
        expected.connections[connection.id] = profile.id
        own.append((profile.id, connection.id))
    for i in range(SEEDED_PROFILES):
        secret, header = f"cs-seeded-{i}", f"hv-seeded-{i}"
        profile, _ = seed_connection(
            services,
            _profile(f"seeded-{i:03d}", secret, header),
            TokenSet(access_token=f"at-seeded-{i}", token_type="Bearer"),
        )
        expected.record(profile.id, secret, header)
    return own


def _rotate(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`authprofiles keys rotate`, as an operator runs it beside the servers."""
    return subprocess.run(
        [sys.executable, "-m", "authprofiles.cli.main", "keys", "rotate", *args],
        env={**os.environ, **env, "COLUMNS": "200"},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=DEADLINE_SECONDS,
        check=False,
    )


def _under_load(load: Load, rotate: Any) -> subprocess.CompletedProcess[str]:
    """Start the threads, rotate once they run, keep them running a while after."""
    threads = [threading.Thread(target=load.run, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    try:
        load.wait_for_rounds(THREADS * ROUNDS_AROUND)
        rotation: subprocess.CompletedProcess[str] = rotate()
        load.wait_for_rounds(load.total_rounds() + THREADS * ROUNDS_AROUND)
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(timeout=DEADLINE_SECONDS)
    return rotation


def _assert_no_errors(load: Load) -> None:
    served = sum(load.statuses.values())
    print(f"\nanswers: {dict(sorted(load.statuses.items()))} in {load.total_rounds()} rounds")
    assert not load.failures, load.failures[:10]
    assert all(status < 500 for status in load.statuses), load.statuses
    assert served == 4 * load.total_rounds()


def _assert_readable_through_the_api(urls: list[str], api_key: str, expected: Expected) -> None:
    """Every profile answers (its secrets decrypt) and every token carries the current
    field value, on every server."""
    headers = {"Authorization": f"Bearer {api_key}"}
    for url in urls:
        with httpx.Client(base_url=url, headers=headers, timeout=60, trust_env=False) as http:
            for profile_id in expected.client_secret:
                response = http.get(f"/api/v1/profiles/{profile_id}")
                assert response.status_code == 200, response.text
                assert response.json()["status"] == "configured"
                assert response.json()["client_secret_set"] is True
            for connection_id, profile_id in expected.connections.items():
                response = http.get(f"/api/v1/connections/{connection_id}/token")
                assert response.status_code == 200, response.text
                inject = response.json()["inject"]["headers"]
                assert inject["X-Secret"] == expected.header[profile_id]


def _assert_stored_under(database_url: str, keys: list[bytes], expected: Expected) -> None:
    """In the database: every ciphertext under the first of ``keys``, every secret the
    last one written."""
    db = Database(database_url)
    store = ProfileStore(Keyring(keys))
    try:
        with db.read() as session:
            for profile_id, secret in expected.client_secret.items():
                row = session.get(ProfileRow, profile_id)
                assert row is not None
                profile = store.to_domain(row, strict=True)
                assert profile.client_secret == secret
                assert profile.authorization_fields[0].value == expected.header[profile_id]
            for row in session.scalars(select(ProfileRow)):
                stored = (row.client_secret_enc, row.password_enc, row.config)
                assert set().union(*map(key_ids_in, stored)) <= {key_id(keys[0])}
    finally:
        db.dispose()


def _environment_keys(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[bytes, dict[str, str], Services]:
    """Keys from the environment, none from a key file: the old key, the servers'
    environment holding it, and services on the migrated database (the caller closes them)."""
    old = new_key()
    env = {**_server_env(database_url), "AUTHPROFILES_MASTER_KEY": encode_key(old)}
    monkeypatch.delenv("AUTHPROFILES_KEY_FILE", raising=False)
    services = Services(
        Settings(
            database_url=database_url,
            master_key=encode_key(old),
            key_file=tmp_path / "authprofiles.key",
        )
    )
    services.db.migrate()
    return old, env, services


@pytest.fixture
def key_file_fleet(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Services, Fleet]]:
    monkeypatch.delenv("AUTHPROFILES_MASTER_KEY", raising=False)
    key_file = tmp_path / "authprofiles.key"
    services = Services(Settings(database_url=database_url, master_key=None, key_file=key_file))
    services.db.migrate()
    fleet = Fleet({**_server_env(database_url), "AUTHPROFILES_KEY_FILE": str(key_file)}, tmp_path)
    try:
        yield services, fleet
    finally:
        fleet.stop()
        services.close()


def test_rotating_while_two_servers_take_writes_loses_nothing_and_answers_no_5xx(
    key_file_fleet: tuple[Services, Fleet], database_url: str, tmp_path: Path
) -> None:
    services, fleet = key_file_fleet
    key_file = services.settings.key_file
    old = read_key_file(key_file)
    expected = Expected()
    own = _seed(services, expected)
    api_key = services.api_keys.create(name="load", role="admin").key
    urls = fleet.start()
    load = Load(urls, api_key, expected, own)

    rotation = _under_load(load, lambda: _rotate(fleet.env, tmp_path))

    assert rotation.returncode == 0, rotation.stdout + rotation.stderr
    assert "Servers writing with the new key" in rotation.stderr  # it waited for them
    new = read_key_file(key_file)
    assert len(new) == 1 and new[0] not in old
    assert f"retired {key_id(old[0])}" in rotation.stdout
    _assert_no_errors(load)
    assert len(expected.client_secret) > SEEDED_PROFILES + THREADS  # creates went through
    _assert_readable_through_the_api(urls, api_key, expected)
    _assert_stored_under(database_url, new, expected)

    # Restarted with nothing but the key file, which holds the new key alone.
    fleet.stop()
    urls = fleet.start()
    _assert_readable_through_the_api(urls, api_key, expected)


def test_with_keys_from_the_environment_servers_follow_through_the_pending_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite only: what differs from the key-file case is where the keys come from.
    database_url = f"sqlite:///{tmp_path / 'authprofiles.db'}"
    old, env, services = _environment_keys(database_url, tmp_path, monkeypatch)
    fleet = Fleet(env, tmp_path)
    try:
        expected = Expected()
        own = _seed(services, expected)
        api_key = services.api_keys.create(name="load", role="admin").key
        urls = fleet.start()
        load = Load(urls, api_key, expected, own)

        rotation = _under_load(load, lambda: _rotate(env, tmp_path))

        assert rotation.returncode == 0, rotation.stdout + rotation.stderr
        pending = tmp_path / "authprofiles.key.new"
        new = read_key_file(pending)
        assert len(new) == 1 and new[0] != old
        assert encode_key(new[0]) in rotation.stdout  # shown once, to be stored
        assert "Set AUTHPROFILES_MASTER_KEY to the new key" in rotation.stdout
        _assert_no_errors(load)
        # The servers, still started with the old key alone, read the new one.
        _assert_readable_through_the_api(urls, api_key, expected)
        _assert_stored_under(database_url, new, expected)

        # The operator does as told: the new key in the environment, then the file goes.
        fleet.stop()
        urls = fleet.start(AUTHPROFILES_MASTER_KEY=encode_key(new[0]))
        pending.unlink()
        _assert_readable_through_the_api(urls, api_key, expected)
    finally:
        fleet.stop()
        services.close()


def test_a_server_that_cannot_load_the_new_key_stops_the_rotation_before_it_changes_anything(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Keys from the environment, and the server on another machine in effect: it runs in
    # another directory, so it never sees the pending key file the rotation writes.
    old, env, services = _environment_keys(database_url, tmp_path, monkeypatch)
    elsewhere = tmp_path / "other-machine"
    elsewhere.mkdir()
    server = ProcessServer(env, elsewhere)
    try:
        expected = Expected()
        own = _seed(services, expected)
        api_key = services.api_keys.create(name="load", role="admin").key
        server.start()
        load = Load([server.url, server.url], api_key, expected, own)

        rotation = _under_load(load, lambda: _rotate(env, tmp_path, "--wait", "3"))

        assert rotation.returncode == 1, rotation.stdout + rotation.stderr
        assert "Not rotated" in rotation.stdout and "did not load the new key" in rotation.stdout
        assert not (tmp_path / "authprofiles.key.new").exists()
        _assert_no_errors(load)
        _assert_readable_through_the_api([server.url], api_key, expected)
        _assert_stored_under(database_url, [old], expected)
    finally:
        server.stop()
        services.close()
