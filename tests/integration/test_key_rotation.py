"""`keys rotate`: every secret re-encrypted under a new master key, in batches, and the old
key retired only once no row and no running worker uses it.

The rotation under load of real server processes is in test_rotation_under_load.py."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from authprofiles.cli.main import app as cli
from authprofiles.composition import Services
from authprofiles.core.validation import parse_draft, validate_draft
from authprofiles.services.keys import rotate_master_key
from authprofiles.settings import Settings
from authprofiles.store import keys as store_keys
from authprofiles.store.cipher import (
    KeyError_,
    Keyring,
    RetiredKeyUsed,
    decode_key,
    encode_key,
    key_id,
    new_key,
)
from authprofiles.store.keys import load_keys
from authprofiles.store.models import DEFAULT_WORKSPACE_ID, ProfileRow
from authprofiles.store.profiles import ProfileStore
from tests.conftest import ADMIN
from tests.support.seed import add_profile, client_credentials_profile

PROFILE_COUNT = 1000
ROTATION_BUDGET_SECONDS = 20.0


def _secret(i: int) -> str:
    return f"client-secret-{i:04d}-x"


def _definitions(count: int) -> list[Any]:
    out = []
    for i in range(count):
        kind = ("oauth2_client_credentials", "oauth2_password", "oauth2_authorization_code")[i % 3]
        data: dict[str, Any] = {
            "name": f"profile-{i:04d}",
            "auth_type": kind,
            "identity_provider": "Okta",
            "client_id": f"client-{i}",
            "client_secret": _secret(i),
            "token_url": "https://idp.example.com/token",
            "additional_fields": [{"key": "pin", "value": f"pin-{i:04d}"}],
            "authorization_fields": [{"type": "header", "key": "X-Id", "value": f"af-{i:04d}"}],
        }
        if kind == "oauth2_password":
            data |= {
                "authorization_mode": "preauthorized",
                "username": "svc",
                "password": f"password-{i:04d}",
                "token_test_url": "https://api.example.com/me",
                "token_test_method": "GET",
                "token_test_content_type": "json",
            }
        if kind == "oauth2_authorization_code":
            data |= {"authorization_url": "https://idp.example.com/authorize", "tenancy": False}
        out.append(validate_draft(parse_draft(data)))
    return out


def _fill(services: Services, count: int) -> None:
    """Insert ``count`` profiles in one transaction, through the store (so encrypted)."""
    with services.db.session() as session:
        for definition in _definitions(count):
            services.profile_store.add(session, DEFAULT_WORKSPACE_ID, definition)


def _ciphertexts(row: ProfileRow) -> list[tuple[str, str]]:
    config = json.loads(row.config)
    out = [(row.client_secret_enc or "", f"profiles:{row.id}:client_secret")]
    if row.password_enc:
        out.append((row.password_enc, f"profiles:{row.id}:password"))
    for item in config["additional_fields"]:
        out.append((item["value_enc"], f"profiles:{row.id}:additional:{item['key']}"))
    for item in config["authorization_fields"]:
        context = f"profiles:{row.id}:authorization:{item['type']}:{item['key']}"
        out.append((item["value_enc"], context))
    return out


def _check_all_readable(services: Services, keys: list[bytes], count: int) -> list[ProfileRow]:
    """Every profile decrypts with ``keys`` and holds the secrets it was given."""
    store = ProfileStore(Keyring(keys))
    with services.db.read() as session:
        rows = store.all_rows(session)
        assert len(rows) == count
        for row in rows:
            profile = store.to_domain(row, strict=True)
            i = int(profile.name.split("-")[1])
            assert profile.client_secret == _secret(i)
            assert profile.additional_fields[0].value == f"pin-{i:04d}"
            assert profile.authorization_fields[0].value == f"af-{i:04d}"
            if profile.auth_type.value == "oauth2_password":
                assert profile.password == f"password-{i:04d}"
        return rows


def _assert_rotated(services: Services, old: list[bytes], new: bytes, count: int) -> None:
    rows = _check_all_readable(services, [new], count)
    old_only = Keyring(old)
    checked = 0
    for row in rows:
        for token, context in _ciphertexts(row):
            assert Keyring.key_id_of(token) == key_id(new)
            with pytest.raises(KeyError_):
                old_only.decrypt(token, context)
            checked += 1
    assert checked >= 3 * count


@pytest.fixture
def key_file_settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url, master_key=None, key_file=tmp_path / "authprofiles.key"
    )


@pytest.fixture
def key_file_services(key_file_settings: Settings) -> Iterator[Services]:
    services = Services(key_file_settings)  # creates the key file on first use
    services.db.migrate()
    yield services
    services.close()


def _file_keys(path: Path) -> list[bytes]:
    return [decode_key(k) for k in json.loads(path.read_text())["keys"]]


def test_rotating_with_a_key_file_reencrypts_every_secret_of_1000_profiles(
    key_file_settings: Settings, key_file_services: Services
) -> None:
    path = key_file_settings.key_file
    assert path.exists() and path.stat().st_mode & 0o777 == 0o600
    old = _file_keys(path)
    _fill(key_file_services, PROFILE_COUNT)

    started = time.perf_counter()
    result = rotate_master_key(key_file_settings, db=key_file_services.db)
    elapsed = time.perf_counter() - started
    assert elapsed < ROTATION_BUDGET_SECONDS, f"rotation took {elapsed:.1f}s"

    assert result.rows == PROFILE_COUNT
    assert result.retired_key_ids == [key_id(k) for k in old]
    assert result.new_key_for_environment is None
    new = _file_keys(path)
    assert len(new) == 1 and key_id(new[0]) == result.new_key_id
    assert path.stat().st_mode & 0o777 == 0o600
    _assert_rotated(key_file_services, old, new[0], PROFILE_COUNT)

    # A process started afterwards reads everything with the file alone.
    fresh = Services(key_file_settings)
    try:
        assert fresh.keyring.key_ids == [result.new_key_id]
        assert len(fresh.profiles.list(ADMIN)) == PROFILE_COUNT
    finally:
        fresh.close()


def _rotate_env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    monkeypatch.setenv("AUTHPROFILES_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("AUTHPROFILES_KEY_FILE", str(settings.key_file))
    monkeypatch.delenv("AUTHPROFILES_MASTER_KEY", raising=False)
    monkeypatch.chdir(settings.key_file.parent)


def test_cli_keys_rotate_shows_progress_and_reencrypts_1000_profiles(
    key_file_settings: Settings,
    key_file_services: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old = _file_keys(key_file_settings.key_file)
    _fill(key_file_services, PROFILE_COUNT)
    _rotate_env(monkeypatch, key_file_settings)

    result = CliRunner().invoke(cli, ["keys", "rotate"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    # The progress bar is drawn on stderr; it ends showing every row done.
    assert "Re-encrypting" in result.stderr
    assert f"{PROFILE_COUNT}/{PROFILE_COUNT}" in result.stderr
    new = _file_keys(key_file_settings.key_file)
    assert len(new) == 1
    assert key_id(new[0]) in result.stdout
    assert f"{PROFILE_COUNT} row(s)" in result.stdout
    _assert_rotated(key_file_services, old, new[0], PROFILE_COUNT)


def test_rotating_keys_from_the_environment_prints_the_new_key(
    services: Services,
    settings: Settings,
    master_key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fill(services, 30)
    old = [decode_key(master_key)]
    monkeypatch.setenv("AUTHPROFILES_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("AUTHPROFILES_MASTER_KEY", master_key)
    monkeypatch.chdir(settings.key_file.parent)

    result = CliRunner().invoke(cli, ["keys", "rotate"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "New master key" in result.stdout
    printed = re.findall(r"[A-Za-z0-9_-]{43}=", result.stdout)
    assert len(printed) == 1
    new = decode_key(printed[0])
    assert printed[0] != master_key
    # The environment cannot be rewritten; the new key was saved (0600) before re-encrypting.
    assert not settings.key_file.exists()
    pending = settings.key_file.parent / "authprofiles.key.new"  # the CLI's default key file
    assert pending.stat().st_mode & 0o777 == 0o600
    assert encode_key(new) in pending.read_text()
    _assert_rotated(services, old, new, 30)


def test_rotate_master_key_with_environment_keys_returns_the_new_key(
    services: Services, settings: Settings, master_key: str
) -> None:
    _fill(services, 3)
    result = rotate_master_key(settings, db=services.db)
    assert result.new_key_for_environment is not None
    new = decode_key(result.new_key_for_environment)
    assert key_id(new) == result.new_key_id
    _assert_rotated(services, [decode_key(master_key)], new, 3)


def test_rotating_again_before_the_environment_holds_the_new_key_loses_nothing(
    services: Services, settings: Settings, master_key: str
) -> None:
    # The first rotation's key lives only in the pending file until the operator puts it
    # in AUTHPROFILES_MASTER_KEY; a second rotation meanwhile must read and keep it.
    _fill(services, 3)
    first = rotate_master_key(settings, db=services.db)
    second = rotate_master_key(settings, db=services.db)

    assert second.new_key_for_environment is not None
    newest = decode_key(second.new_key_for_environment)
    assert sorted(second.retired_key_ids) == sorted(
        [key_id(decode_key(master_key)), first.new_key_id]
    )
    assert second.pending_key_file is not None
    assert [key_id(k) for k in store_keys.read_key_file(second.pending_key_file)] == [
        key_id(newest)
    ]
    _assert_rotated(services, [decode_key(master_key)], newest, 3)


def test_a_failure_midway_leaves_everything_readable_with_the_key_file(
    key_file_settings: Settings,
    key_file_services: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Re-encryption runs in batches of short transactions (so servers keep writing): the
    # batches done before a failure stay done, and the key file keeps both keys.
    path = key_file_settings.key_file
    old = _file_keys(path)
    _fill(key_file_services, PROFILE_COUNT)
    real_reencrypt = ProfileStore.reencrypt
    calls = {"n": 0}

    def fail_at_row_500(self: ProfileStore, row: ProfileRow) -> None:
        calls["n"] += 1
        if calls["n"] == 500:
            raise RuntimeError("disk full at row 500")
        real_reencrypt(self, row)

    monkeypatch.setattr(ProfileStore, "reencrypt", fail_at_row_500)
    with pytest.raises(RuntimeError, match="row 500"):
        rotate_master_key(key_file_settings, db=key_file_services.db)
    assert calls["n"] == 500

    in_file = _file_keys(path)
    assert len(in_file) == 2 and old[0] in in_file
    assert path.stat().st_mode & 0o777 == 0o600
    # The batches before the failing one were committed; the failing one rolled back.
    rows = _check_all_readable(key_file_services, in_file, PROFILE_COUNT)
    used = [{Keyring.key_id_of(t) for t, _ in _ciphertexts(row)} for row in rows]
    assert {kid for kids in used for kid in kids} == {key_id(k) for k in in_file}
    assert all(len(kids) == 1 for kids in used), "a row is re-encrypted whole or not at all"
    restarted = Services(key_file_settings)
    try:
        assert len(restarted.profiles.list(ADMIN)) == PROFILE_COUNT
        assert all(p.status.value == "configured" for p in restarted.profiles.list(ADMIN))
    finally:
        restarted.close()

    # A second attempt completes, and retires both keys the first one left in the file.
    monkeypatch.setattr(ProfileStore, "reencrypt", real_reencrypt)
    result = rotate_master_key(key_file_settings, db=key_file_services.db)
    new = _file_keys(path)
    assert [key_id(k) for k in new] == [result.new_key_id]
    assert sorted(result.retired_key_ids) == sorted(key_id(k) for k in in_file)
    _assert_rotated(key_file_services, in_file, new[0], PROFILE_COUNT)


def test_rotating_without_any_key_refuses_instead_of_creating_one(
    key_file_settings: Settings, tmp_path: Path
) -> None:
    missing = key_file_settings.model_copy(update={"key_file": tmp_path / "nowhere.key"})
    with pytest.raises(KeyError_, match="no master key"):
        rotate_master_key(missing)
    assert not (tmp_path / "nowhere.key").exists()
    assert load_keys(key_file_settings).path == key_file_settings.key_file


def _profile_data(name: str, secret: str) -> dict[str, Any]:
    return client_credentials_profile(name, secret, token_url="https://idp.example.com/token")


def test_a_row_under_a_key_nobody_holds_is_reported_and_left_as_it_was(
    key_file_settings: Settings, key_file_services: Services
) -> None:
    old = _file_keys(key_file_settings.key_file)
    _fill(key_file_services, 5)
    foreign = new_key()
    with key_file_services.db.session() as session:
        bad = add_profile(
            ProfileStore(Keyring([foreign])), session, _profile_data("foreign", "foreign-secret")
        )
    with key_file_services.db.read() as session:
        before = session.get(ProfileRow, bad.id)
        assert before is not None
        stored = before.client_secret_enc

    result = rotate_master_key(key_file_settings, db=key_file_services.db)

    # The bad row does not use the old key: the old key is retired all the same.
    assert result.retired_key_ids == [key_id(old[0])]
    assert result.rows == 5
    (report,) = result.unreadable
    assert bad.id in report and key_id(foreign) in report and "foreign-secret" not in report
    with key_file_services.db.read() as session:
        after = session.get(ProfileRow, bad.id)
        assert after is not None and after.client_secret_enc == stored
    assert ProfileStore(Keyring([foreign])).to_domain(after, strict=True).client_secret == (
        "foreign-secret"
    )


def test_a_write_under_a_key_retired_meanwhile_is_refused_and_the_retry_succeeds(
    key_file_settings: Settings,
    key_file_services: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = key_file_services
    services.profiles.create(ADMIN, _profile_data("before", "secret-before"))
    old_id = services.keyring.active_id
    # This process stops looking at the key ring by itself, as a worker stalled for longer
    # than its heartbeat shows would: the rotation sees no live worker and goes through.
    monkeypatch.setattr(store_keys, "STALE_AFTER_SECONDS", math.inf)
    result = rotate_master_key(key_file_settings, db=services.db)
    assert result.retired_key_ids == [old_id]
    assert services.keyring.active_id == old_id

    with pytest.raises(RetiredKeyUsed, match=old_id):
        services.profiles.create(ADMIN, _profile_data("during", "secret-during"))

    # Nothing was stored; the refusal made the process load the key file again.
    assert services.keyring.key_ids == [result.new_key_id]
    created = services.profiles.create(ADMIN, _profile_data("during", "secret-during"))
    with services.db.read() as session:
        row = session.get(ProfileRow, created.id)
        assert row is not None and row.client_secret_enc is not None
        assert Keyring.key_id_of(row.client_secret_enc) == result.new_key_id
    assert len(services.profiles.list(ADMIN)) == 2


def test_a_worker_still_finishing_a_transaction_under_the_old_key_keeps_it_in_the_file(
    key_file_settings: Settings,
    key_file_services: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = key_file_settings.key_file
    old = _file_keys(path)
    _fill(key_file_services, 30)
    _rotate_env(monkeypatch, key_file_settings)
    monkeypatch.setenv("COLUMNS", "200")
    # This process records a heartbeat as a server worker does.
    watcher = key_file_services.watch_keyring()
    assert watcher is not None
    try:
        with key_file_services.db.read() as session:
            # A transaction begun under the old key, still open: the worker loads the new
            # key at once, but cannot say it writes only with it until this one ends.
            session.execute(select(ProfileRow.id).limit(1)).all()
            held_up = CliRunner().invoke(cli, ["keys", "rotate", "--wait", "3"])

        assert held_up.exit_code == 1, held_up.output + repr(held_up.exception)
        assert "Servers loading the new key" in held_up.stderr
        assert "Kept key(s)" in held_up.stdout
        assert "did not write with the new key" in held_up.stdout
        in_file = _file_keys(path)
        assert len(in_file) == 2 and in_file[1] == old[0]
        # Every row was re-encrypted all the same.
        _assert_rotated(key_file_services, old, in_file[0], 30)

        # Now that the transaction ended, the next rotation retires both keys.
        done = CliRunner().invoke(cli, ["keys", "rotate", "--wait", "30"])
        assert done.exit_code == 0, done.output + repr(done.exception)
        final = _file_keys(path)
        assert len(final) == 1
        assert f"retired {key_id(in_file[1])}, {key_id(in_file[0])}" in done.stdout or (
            f"retired {key_id(in_file[0])}, {key_id(in_file[1])}" in done.stdout
        )
        _assert_rotated(key_file_services, in_file, final[0], 30)
    finally:
        watcher.stop()
