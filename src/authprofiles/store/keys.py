"""Where master keys live: ``AUTHPROFILES_MASTER_KEY`` or a 0600 key file made on first start."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from authprofiles.settings import Settings
from authprofiles.store.cipher import KeyError_, Keyring, decode_key, encode_key, new_key

log = logging.getLogger("authprofiles.keys")


@dataclass
class KeySource:
    """Master keys in order, the first active, and whence they came."""

    keys: list[bytes]
    from_environment: bool
    path: Path | None

    def keyring(self) -> Keyring:
        return Keyring(self.keys)


def load_keys(settings: Settings, *, create: bool = True) -> KeySource:
    if settings.master_key is not None:
        raw = settings.master_key.get_secret_value()
        keys = [decode_key(part) for part in raw.split(",") if part.strip()]
        return KeySource(keys=keys, from_environment=True, path=None)
    path = settings.key_file
    if path.exists():
        return KeySource(keys=_read_key_file(path), from_environment=False, path=path)
    if not create:
        raise KeyError_(
            f"no master key: {path} does not exist and AUTHPROFILES_MASTER_KEY is unset"
        )
    key = new_key()
    write_key_file(path, [key])
    log.warning(
        "Created a new master key in %s (mode 0600). Every stored secret is encrypted "
        "with it: back it up, or set AUTHPROFILES_MASTER_KEY instead.",
        path.resolve(),
    )
    return KeySource(keys=[key], from_environment=False, path=path)


def _read_key_file(path: Path) -> list[bytes]:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("The key file %s is readable by others (mode %o); chmod 600 it.", path, mode)
    document = json.loads(path.read_text())
    return [decode_key(k) for k in document["keys"]]


def write_key_file(path: Path, keys: list[bytes]) -> None:
    """Write atomically with mode 0600 from the first byte: never a moment readable by others."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".authprofiles-key-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"version": 1, "keys": [encode_key(k) for k in keys]}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
