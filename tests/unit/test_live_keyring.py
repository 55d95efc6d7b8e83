"""A long-running process's key ring looks at its key source again before it trusts a
ciphertext under a key it does not hold (the database side is in the integration tests)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from authprofiles.settings import Settings
from authprofiles.store import keys as store_keys
from authprofiles.store.cipher import Keyring, UnknownKey, key_id, new_key
from authprofiles.store.keys import LiveKeyring, write_key_file

CONTEXT = "profiles:1234:client_secret"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(master_key=None, key_file=tmp_path / "authprofiles.key")


def test_a_key_added_to_the_key_file_is_loaded_when_a_ciphertext_names_it(
    settings: Settings,
) -> None:
    first, second = new_key(), new_key()
    write_key_file(settings.key_file, [first])
    keyring = LiveKeyring(settings)
    written_elsewhere = Keyring([second]).encrypt("s3cret", CONTEXT)

    write_key_file(settings.key_file, [second, first])  # as `keys rotate` does

    assert keyring.decrypt(written_elsewhere, CONTEXT) == "s3cret"
    assert keyring.key_ids == [key_id(second), key_id(first)]
    assert Keyring.key_id_of(keyring.encrypt("new", CONTEXT)) == key_id(second)


def test_a_key_nobody_has_is_looked_for_once_then_the_failure_is_trusted(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_key_file(settings.key_file, [new_key()])
    keyring = LiveKeyring(settings)
    monkeypatch.setattr(store_keys, "UNKNOWN_KEY_RELOAD_SECONDS", math.inf)
    loads = {"n": 0}
    real_load = store_keys.load_keys

    def counting_load(*args: object, **kwargs: bool) -> store_keys.KeySource:
        loads["n"] += 1
        return real_load(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store_keys, "load_keys", counting_load)
    lost = Keyring([new_key()]).encrypt("s3cret", CONTEXT)
    for _ in range(100):
        with pytest.raises(UnknownKey):
            keyring.decrypt(lost, CONTEXT)
    assert loads["n"] == 1


def test_an_unreadable_key_file_keeps_the_keys_loaded(settings: Settings) -> None:
    key = new_key()
    write_key_file(settings.key_file, [key])
    keyring = LiveKeyring(settings)
    settings.key_file.write_text("not json")
    with pytest.raises(UnknownKey):
        keyring.decrypt(Keyring([new_key()]).encrypt("x", CONTEXT), CONTEXT)
    assert keyring.key_ids == [key_id(key)]
    assert keyring.decrypt(Keyring([key]).encrypt("x", CONTEXT), CONTEXT) == "x"
