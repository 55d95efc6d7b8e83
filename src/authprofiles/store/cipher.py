"""AES-256-GCM encryption of single secrets, with the key id stored beside each ciphertext.

Format: ``v1.<key id>.<base64url(nonce || ciphertext+tag)>``. Every value gets a fresh
96-bit random nonce (NIST SP 800-38D section 8.2.2). The storage location (table, row,
field) is bound as associated data, so a ciphertext copied into another row or field
fails to decrypt instead of leaking there.

A value that cannot be decrypted raises :class:`KeyError_` (:class:`UnknownKey` when its
key is not loaded, naming that key's id); the stores turn it into
:class:`SecretsUnreadable` for whatever tried to use the value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Iterable, Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from authprofiles.core.errors import DomainError, Unavailable

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
_VERSION = "v1"


#: Where a ciphertext names its key, wherever it is stored (a column, or inside JSON).
_KEY_ID_IN_TEXT = re.compile(r"(?<![A-Za-z0-9_-])v1\.([0-9a-f]{12})\.")


class KeyError_(Exception):
    """A master key is missing, malformed or does not match the data."""


class UnknownKey(KeyError_):
    """A ciphertext names a key this key ring does not hold."""

    def __init__(self, key_id: str) -> None:
        super().__init__(
            f"this secret is encrypted under key {key_id}, which is not loaded; "
            "set the master key it was written with"
        )
        self.key_id = key_id


class SecretsUnreadable(DomainError):
    """A stored secret this server cannot decrypt: its master key is not loaded, or the
    stored value is damaged. No request can fix that, an operator can (restore the key):
    the edges say the server cannot serve it, naming the key it needs; never the value."""

    def __init__(self, detail: str, key_id: str | None = None) -> None:
        super().__init__(detail)
        self.key_id = key_id

    @classmethod
    def of(cls, what: str, row_id: str, error: KeyError_) -> SecretsUnreadable:
        """``what`` (``profile``, ``connection``) ``row_id`` could not be read because of
        ``error``; the message says what would fix it."""
        if isinstance(error, UnknownKey):
            return cls(
                f"the secrets of {what} {row_id} are encrypted under master key "
                f"{error.key_id}, which this server does not hold; restore that key (in "
                "the key file or AUTHPROFILES_MASTER_KEY) to use it again",
                key_id=error.key_id,
            )
        return cls(f"a secret of {what} {row_id} cannot be decrypted: {error}")


class RetiredKeyUsed(Unavailable):
    """A write encrypted under a master key that `keys rotate` retired while it ran.

    It is refused at commit, so no row is ever stored under a key that left the key
    file; the server has reloaded its keys by then, and the same request succeeds again.
    """

    retry_after = 1


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def encode_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


def decode_key(text: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (binascii.Error, ValueError) as exc:
        raise KeyError_("a master key must be base64 of 32 random bytes") from exc
    if len(key) != KEY_BYTES:
        raise KeyError_(f"a master key must be 32 bytes (got {len(key)})")
    return key


def key_id(key: bytes) -> str:
    """A short, stable, non-secret name for a key: a hash prefix, not the key."""
    return hashlib.sha256(b"authprofiles-key-id:" + key).hexdigest()[:12]


def key_ids_in(text: str | None) -> set[str]:
    """The ids of the keys that the ciphertexts in ``text`` (a column's value, or JSON
    holding several) were written with."""
    return set(_KEY_ID_IN_TEXT.findall(text)) if text else set()


class Keyring:
    """The master keys this process knows: one active for writing, any for reading."""

    def __init__(self, keys: Iterable[bytes]) -> None:
        ordered = list(keys)
        if not ordered:
            raise KeyError_("no master key: set AUTHPROFILES_MASTER_KEY or a key file")
        self._keys: dict[str, AESGCM] = {key_id(k): AESGCM(k) for k in ordered}
        self._active_id = key_id(ordered[0])

    @property
    def active_id(self) -> str:
        """The key new values are encrypted with."""
        return self._active_id

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    def encrypt(self, plaintext: str, context: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self.active_id].encrypt(nonce, plaintext.encode(), context.encode())
        payload = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{_VERSION}.{self.active_id}.{payload}"

    def decrypt(self, token: str, context: str) -> str:
        try:
            version, kid, payload = token.split(".", 2)
        except ValueError:
            raise KeyError_("not an authprofiles ciphertext") from None
        if version != _VERSION:
            raise KeyError_(f"unknown ciphertext version {version!r}")
        aead = self._keys.get(kid)
        if aead is None:
            raise UnknownKey(kid)
        try:
            raw = base64.b64decode(payload + "=" * (-len(payload) % 4), b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise KeyError_(f"a secret at {context} is not valid base64") from None
        if len(raw) < NONCE_BYTES + TAG_BYTES:
            raise KeyError_(f"a secret at {context} is truncated")
        try:
            return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode()).decode()
        except InvalidTag:
            raise KeyError_(f"a secret at {context} failed authentication") from None

    @staticmethod
    def key_id_of(token: str) -> str:
        return token.split(".", 2)[1]

    def without(self, ids: Mapping[str, object] | Iterable[str]) -> Keyring:
        drop = set(ids)
        keyring = Keyring.__new__(Keyring)
        keyring._keys = {k: v for k, v in self._keys.items() if k not in drop}
        keyring._active_id = self.active_id
        return keyring
