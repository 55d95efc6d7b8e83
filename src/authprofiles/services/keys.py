"""Master key rotation: every secret re-encrypted under a new key, in one transaction.

Crash safety comes from the order of steps. The key file first gains the new key (the
old one stays beside it), then one transaction re-encrypts every secret, then the old
key leaves the file. Whenever the process dies, the file holds a key for every
ciphertext in the database, which is either all old or all new.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from authprofiles.settings import Settings
from authprofiles.store.cipher import Keyring, encode_key, key_id, new_key
from authprofiles.store.connections import ConnectionStore
from authprofiles.store.db import Database
from authprofiles.store.keys import load_keys, write_key_file
from authprofiles.store.profiles import ProfileStore


@dataclass(frozen=True)
class RotationResult:
    new_key_id: str
    retired_key_ids: list[str]
    rows: int
    #: Set only when the keys came from the environment: the operator must store it.
    new_key_for_environment: str | None


def rotate_master_key(
    settings: Settings,
    *,
    db: Database | None = None,
    on_start: Callable[[int], None] | None = None,
    on_row: Callable[[], None] | None = None,
    on_environment_key: Callable[[str, Path], None] | None = None,
) -> RotationResult:
    source = load_keys(settings, create=False)
    fresh = new_key()
    keyring = Keyring([fresh, *source.keys])
    if source.path is not None:
        write_key_file(source.path, [fresh, *source.keys])
    else:
        # Keys from the environment cannot be rewritten here. The new key is saved (0600)
        # and handed over before anything is re-encrypted, so no crash or broken pipe
        # between the commit and a print can leave secrets under a key nobody has.
        pending = settings.key_file.with_name(settings.key_file.name + ".new")
        write_key_file(pending, [fresh, *source.keys])
        if on_environment_key:
            on_environment_key(encode_key(fresh), pending)
    database = db or Database(settings.database_url)
    profiles, connections = ProfileStore(keyring), ConnectionStore(keyring)
    with database.session() as session:
        profile_rows = profiles.all_rows(session)
        connection_rows = connections.all_rows(session)
        request_rows = connections.all_authorization_requests(session)
        total = len(profile_rows) + len(connection_rows) + len(request_rows)
        if on_start:
            on_start(total)
        for row in profile_rows:
            profiles.reencrypt(row)
            if on_row:
                on_row()
        for connection_row in connection_rows:
            connections.reencrypt(connection_row)
            if on_row:
                on_row()
        for request in request_rows:
            connections.reencrypt_authorization_request(request)
            if on_row:
                on_row()
    if source.path is not None:
        write_key_file(source.path, [fresh])
    if db is None:
        database.dispose()
    return RotationResult(
        new_key_id=key_id(fresh),
        retired_key_ids=[key_id(k) for k in source.keys],
        rows=total,
        new_key_for_environment=encode_key(fresh) if source.from_environment else None,
    )
