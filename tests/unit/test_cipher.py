"""AES-256-GCM at rest: fresh nonces, the key id beside each value, the location bound as AAD."""

from __future__ import annotations

import base64
import json
import re

import pytest

from authprofiles.store.cipher import (
    KEY_BYTES,
    NONCE_BYTES,
    KeyError_,
    Keyring,
    UnknownKey,
    decode_key,
    encode_key,
    key_id,
    key_ids_in,
    new_key,
)

CONTEXT = "profiles:1234:client_secret"


def _raw(token: str) -> bytes:
    payload = token.split(".", 2)[2]
    return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))


def _rebuild(token: str, raw: bytes) -> str:
    version, kid, _ = token.split(".", 2)
    return f"{version}.{kid}.{base64.urlsafe_b64encode(raw).decode().rstrip('=')}"


@pytest.fixture
def keyring() -> Keyring:
    return Keyring([new_key()])


def test_a_secret_round_trips(keyring: Keyring) -> None:
    token = keyring.encrypt("s3cret ünïcode", CONTEXT)
    assert keyring.decrypt(token, CONTEXT) == "s3cret ünïcode"


def test_the_ciphertext_format_is_version_key_id_and_base64(keyring: Keyring) -> None:
    token = keyring.encrypt("s3cret", CONTEXT)
    assert re.fullmatch(r"v1\.[0-9a-f]{12}\.[A-Za-z0-9_-]+", token)
    assert Keyring.key_id_of(token) == keyring.active_id
    assert "s3cret" not in token
    # nonce + ciphertext + 16-byte tag
    assert len(_raw(token)) == NONCE_BYTES + len(b"s3cret") + 16


def test_every_encryption_uses_a_fresh_nonce(keyring: Keyring) -> None:
    tokens = [keyring.encrypt("same value", CONTEXT) for _ in range(200)]
    assert len(set(tokens)) == len(tokens)
    assert len({_raw(t)[:NONCE_BYTES] for t in tokens}) == len(tokens)


def test_a_ciphertext_moved_to_another_location_fails(keyring: Keyring) -> None:
    token = keyring.encrypt("s3cret", "profiles:row-a:client_secret")
    for elsewhere in (
        "profiles:row-b:client_secret",
        "profiles:row-a:password",
        "connections:row-a:access_token",
    ):
        with pytest.raises(KeyError_, match="failed authentication"):
            keyring.decrypt(token, elsewhere)


@pytest.mark.parametrize("position", [0, NONCE_BYTES, NONCE_BYTES + 3, -1])
def test_flipping_any_bit_makes_decryption_fail(keyring: Keyring, position: int) -> None:
    token = keyring.encrypt("s3cret", CONTEXT)
    raw = bytearray(_raw(token))
    raw[position] ^= 0x01
    with pytest.raises(KeyError_):
        keyring.decrypt(_rebuild(token, bytes(raw)), CONTEXT)


def test_a_truncated_ciphertext_fails(keyring: Keyring) -> None:
    token = keyring.encrypt("s3cret", CONTEXT)
    with pytest.raises(KeyError_):
        keyring.decrypt(_rebuild(token, _raw(token)[:-1]), CONTEXT)


def test_a_ciphertext_relabelled_with_another_key_id_fails() -> None:
    first, second = new_key(), new_key()
    both = Keyring([first, second])
    token = Keyring([second]).encrypt("s3cret", CONTEXT)
    relabelled = token.replace(key_id(second), key_id(first), 1)
    with pytest.raises(KeyError_):
        both.decrypt(relabelled, CONTEXT)


@pytest.mark.parametrize("garbage", ["", "plain text", "v2.abc.def", "v1.onlytwo"])
def test_anything_but_a_v1_ciphertext_is_refused(keyring: Keyring, garbage: str) -> None:
    with pytest.raises(KeyError_):
        keyring.decrypt(garbage, CONTEXT)


@pytest.mark.parametrize("payload", ["", "a", "!!!!", "abc$def", "AAAA", "A" * 21])
def test_a_corrupted_payload_is_refused_as_a_key_error(keyring: Keyring, payload: str) -> None:
    # Too short for a nonce and a tag, not base64 at all, or a length base64 cannot have.
    with pytest.raises(KeyError_):
        keyring.decrypt(f"v1.{keyring.active_id}.{payload}", CONTEXT)


def test_a_key_that_is_not_loaded_is_named_not_guessed() -> None:
    token = Keyring([new_key()]).encrypt("s3cret", CONTEXT)
    with pytest.raises(KeyError_, match=Keyring.key_id_of(token)):
        Keyring([new_key()]).decrypt(token, CONTEXT)


def test_the_first_key_writes_and_every_key_reads() -> None:
    old, fresh = new_key(), new_key()
    written_with_old = Keyring([old]).encrypt("s3cret", CONTEXT)
    keyring = Keyring([fresh, old])
    assert keyring.active_id == key_id(fresh)
    assert keyring.decrypt(written_with_old, CONTEXT) == "s3cret"
    assert Keyring.key_id_of(keyring.encrypt("s3cret", CONTEXT)) == key_id(fresh)
    assert keyring.key_ids == [key_id(fresh), key_id(old)]


def test_a_keyring_without_the_old_key_cannot_read_old_values() -> None:
    old, fresh = new_key(), new_key()
    token = Keyring([old]).encrypt("s3cret", CONTEXT)
    with pytest.raises(KeyError_):
        Keyring([fresh, old]).without([key_id(old)]).decrypt(token, CONTEXT)


def test_an_empty_keyring_is_refused() -> None:
    with pytest.raises(KeyError_, match="no master key"):
        Keyring([])


def test_keys_encode_and_decode_and_their_ids_do_not_reveal_them() -> None:
    key = new_key()
    assert len(key) == KEY_BYTES
    text = encode_key(key)
    assert decode_key(text) == key
    assert decode_key(text.rstrip("=") + "\n") == key
    assert key_id(key) == key_id(key)
    assert key_id(key) not in text and text not in key_id(key)
    assert key_id(key) != key_id(new_key())


@pytest.mark.parametrize("text", ["", "not base64!!", encode_key(b"short"), encode_key(b"x" * 33)])
def test_a_malformed_master_key_is_refused(text: str) -> None:
    with pytest.raises(KeyError_):
        decode_key(text)


def test_a_key_that_is_not_loaded_is_raised_with_its_id() -> None:
    token = Keyring([new_key()]).encrypt("s3cret", CONTEXT)
    with pytest.raises(UnknownKey) as raised:
        Keyring([new_key()]).decrypt(token, CONTEXT)
    assert raised.value.key_id == Keyring.key_id_of(token)
    assert isinstance(raised.value, KeyError_)


def test_the_key_ids_of_ciphertexts_are_found_in_a_column_or_in_json(keyring: Keyring) -> None:
    other = Keyring([new_key()])
    column = keyring.encrypt("a", CONTEXT)
    document = json.dumps(
        {"fields": [{"value_enc": other.encrypt("b", CONTEXT)}, {"value_enc": column}]}
    )
    assert key_ids_in(column) == {keyring.active_id}
    assert key_ids_in(document) == {keyring.active_id, other.active_id}
    assert key_ids_in(None) == set()
    assert key_ids_in("plain text, v1.notahexid.x, xv1.0123456789ab.y") == set()
