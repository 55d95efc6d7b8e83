"""Where master keys live, and how a running process follows a key rotation.

Keys come from ``AUTHPROFILES_MASTER_KEY`` or from a 0600 key file made on first start.

A long-running process holds a :class:`LiveKeyring`. It reads the database's key ring
version about once a second (a :class:`KeyringWatcher` thread in each server worker, or
on first use after a few seconds elsewhere) and before it trusts a ciphertext naming a
key it does not hold; when the version changed it reloads its keys: the key file, or,
with keys from the environment, the environment plus those keys of the pending key file
(``<key file>.new``, written by `keys rotate`) that the database announces. Each worker
records a heartbeat: which keys it reads, which one it writes with. `keys rotate` waits
on those heartbeats (see :mod:`authprofiles.services.keys`).

A worker reports writing with a new key only once every transaction begun before it
loaded that key has ended, since such a transaction may hold values encrypted under the
old one. And every commit that encrypted something checks, under a lock on the key ring
row, that its keys were not retired meanwhile (a worker stalled for longer than its
heartbeat shows, say): such a write is refused rather than stored under a key that has
left the key file.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, delete, event, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, SessionTransaction

from authprofiles.settings import Settings
from authprofiles.store.cipher import (
    KeyError_,
    Keyring,
    RetiredKeyUsed,
    UnknownKey,
    decode_key,
    encode_key,
    key_id,
    new_key,
)
from authprofiles.store.models import KeyRingRow, KeyRingWorkerRow, utcnow

if TYPE_CHECKING:
    from authprofiles.store.db import Database

log = logging.getLogger("authprofiles.keys")

#: How often a worker reads the key ring version.
CHECK_SECONDS = 1.0
#: How often a worker records its heartbeat when nothing changed (at once when it did).
HEARTBEAT_SECONDS = 5.0
#: A worker not seen for this long is taken for dead by `keys rotate`.
LIVE_WITHIN_SECONDS = 3 * HEARTBEAT_SECONDS
#: A process without a watcher reads the version before encrypting when its last look
#: is older than this.
STALE_AFTER_SECONDS = 5.0
#: A key id met in a ciphertext and not held makes a reload at most this often.
UNKNOWN_KEY_RELOAD_SECONDS = 1.0
#: A transaction still open this long after a key change no longer holds up the report
#: of the new key (the commit check still refuses it if its key was retired).
DRAIN_LIMIT_SECONDS = 60.0

#: The key ring's one row.
KEY_RING_ID = 1


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
        return KeySource(keys=read_key_file(path), from_environment=False, path=path)
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


def pending_key_path(settings: Settings) -> Path:
    """Where `keys rotate` saves a new key it cannot put in ``AUTHPROFILES_MASTER_KEY``."""
    return settings.key_file.with_name(settings.key_file.name + ".new")


def read_key_file(path: Path) -> list[bytes]:
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


# -- the key ring row ------------------------------------------------------------------


@dataclass(frozen=True)
class KeyRingState:
    """What `keys rotate` last announced (ids only: keys never enter the database)."""

    version: int
    #: The keys in use, the one to write with first; empty before the first rotation.
    key_ids: tuple[str, ...]
    retired_key_ids: frozenset[str]


_STATE_COLUMNS = select(KeyRingRow.version, KeyRingRow.key_ids, KeyRingRow.retired_key_ids).where(
    KeyRingRow.id == KEY_RING_ID
)


def read_key_ring_state(db: Connection | Session) -> KeyRingState | None:
    """The key ring row as announced now; None when it does not exist."""
    row = db.execute(_STATE_COLUMNS).one_or_none()
    if row is None:
        return None
    return KeyRingState(
        version=int(row.version),
        key_ids=tuple(row.key_ids.split()),
        retired_key_ids=frozenset(row.retired_key_ids.split()),
    )


# -- transactions and the keys they wrote with ---------------------------------------------


class _Unit:
    """One open root transaction of a Session: when it began, which keys it wrote with."""

    __slots__ = ("key_ids", "keyrings", "seq", "stack", "started")

    def __init__(self, seq: int, stack: list[_Unit]) -> None:
        self.seq = seq
        self.started = time.monotonic()
        self.stack = stack
        self.key_ids: set[str] = set()
        self.keyrings: set[LiveKeyring] = set()


class _Transactions:
    """Every open Session transaction of this process, numbered in the order they began.

    The stores encrypt inside a Session transaction; so a transaction begun after a
    process loaded new keys encrypts only with them, and one begun before may hold values
    under the old key until it ends.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = 0
        self._open: dict[int, _Unit] = {}
        self._local = threading.local()
        self._installed = False

    def install(self) -> None:
        with self._lock:
            if self._installed:
                return
            self._installed = True
        event.listen(Session, "after_transaction_create", self._began)
        event.listen(Session, "after_transaction_end", self._ended)
        event.listen(Session, "before_commit", _refuse_retired_keys)

    def _stack(self) -> list[_Unit]:
        stack: list[_Unit] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def _began(self, _session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is not None:
            return
        stack = self._stack()
        with self._lock:
            self._seq += 1
            unit = _Unit(self._seq, stack)
            self._open[id(transaction)] = unit
        stack.append(unit)

    def _ended(self, _session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is not None:
            return
        with self._lock:
            unit = self._open.pop(id(transaction), None)
        if unit is not None and unit in unit.stack:
            unit.stack.remove(unit)

    def current_seq(self) -> int:
        with self._lock:
            return self._seq

    def open_since(self, seq: int, younger_than: float) -> bool:
        """Whether a transaction numbered ``seq`` or lower, begun less than
        ``younger_than`` seconds ago, is still open."""
        horizon = time.monotonic() - younger_than
        with self._lock:
            return any(u.seq <= seq and u.started > horizon for u in self._open.values())

    def note_encryption(self, used_key_id: str, keyring: LiveKeyring) -> None:
        for unit in self._stack():
            unit.key_ids.add(used_key_id)
            unit.keyrings.add(keyring)

    def unit_of(self, session: Session) -> _Unit | None:
        transaction = session.get_transaction()
        if transaction is None:
            return None
        with self._lock:
            return self._open.get(id(transaction))


_transactions = _Transactions()


def _refuse_retired_keys(session: Session) -> None:
    """Before a commit that encrypted something: were its keys retired meanwhile?

    The key ring row is read under a lock (``FOR SHARE`` on PostgreSQL; SQLite's writer
    already holds the database's write lock) after the transaction's writes, so `keys
    rotate`, which retires a key under ``FOR UPDATE`` of the same row after checking that
    no row uses it, either sees this transaction's rows or is seen by it.
    """
    unit = _transactions.unit_of(session)
    if unit is None or not unit.key_ids:
        return
    session.flush()
    retired = session.execute(
        select(KeyRingRow.retired_key_ids)
        .where(KeyRingRow.id == KEY_RING_ID)
        .with_for_update(read=True)
    ).scalar_one_or_none()
    used = unit.key_ids & set((retired or "").split())
    if not used:
        return
    for keyring in unit.keyrings:
        keyring.refresh(force=True)
    raise RetiredKeyUsed(
        f"this request encrypted with master key {', '.join(sorted(used))}, which was "
        "retired while it ran; nothing was saved. The server has loaded the new key: "
        "send the request again"
    )


# -- the key ring of a running process -------------------------------------------------------


class LiveKeyring(Keyring):
    """The key ring of a process that runs for long: it follows `keys rotate` by itself.

    Reads use the keys loaded now; a key id met in a ciphertext and not held makes it
    look at the database and its key source again before the failure is trusted.
    """

    def __init__(self, settings: Settings, source: KeySource | None = None) -> None:
        self._settings = settings
        self._ring = (source or load_keys(settings)).keyring()
        self._engine: Engine | None = None
        self._lock = threading.RLock()
        #: The key ring version last loaded (None: not looked yet).
        self.version: int | None = None
        self._checked_at = -math.inf
        self._forced_at = -math.inf
        #: Whether commits check for retired keys (once the key ring row was read).
        self._guarded = False
        #: The key written with before the last change of active key, while transactions
        #: begun before that change are open.
        self._draining_from: str | None = None
        self._swap_seq = 0
        self._swapped_at = 0.0
        _transactions.install()

    def attach(self, engine: Engine) -> None:
        """Follow the key ring of this database."""
        # A plain read of one row: no transaction to open on SQLite.
        self._engine = engine.execution_options(sqlite_begin="NONE")

    # -- the Keyring interface, on whatever keys are loaded now --------------------------
    @property
    def active_id(self) -> str:
        return self._ring.active_id

    @property
    def key_ids(self) -> list[str]:
        return self._ring.key_ids

    def encrypt(self, plaintext: str, context: str) -> str:
        if time.monotonic() - self._checked_at > STALE_AFTER_SECONDS:
            self.refresh()
        ring = self._ring
        token = ring.encrypt(plaintext, context)
        if self._guarded:
            _transactions.note_encryption(ring.active_id, self)
        return token

    def decrypt(self, token: str, context: str) -> str:
        try:
            return self._ring.decrypt(token, context)
        except UnknownKey as exc:
            if not self._reload_for(exc.key_id):
                raise
        return self._ring.decrypt(token, context)

    def without(self, ids: Mapping[str, object] | Iterable[str]) -> Keyring:
        return self._ring.without(ids)

    # -- following the database ----------------------------------------------------------
    def writes_with(self) -> str:
        """The key this process's writes use: the old one until every transaction begun
        before the last change of key has ended."""
        with self._lock:
            if self._draining_from is not None:
                if time.monotonic() - self._swapped_at < DRAIN_LIMIT_SECONDS and (
                    _transactions.open_since(self._swap_seq, DRAIN_LIMIT_SECONDS)
                ):
                    return self._draining_from
                self._draining_from = None
            return self._ring.active_id

    def refresh(self, *, force: bool = False) -> bool:
        """Reload the keys if the database's key ring version changed since the last
        load (always when ``force``). True when the keys changed."""
        with self._lock:
            state = self._read_state()
            self._checked_at = time.monotonic()
            if state is not None:
                self._guarded = True
                if state.version == self.version and not force:
                    return False
            elif not force:
                return False
            try:
                ring = self._load(state)
            except (KeyError_, OSError, ValueError) as exc:
                # Never the exception's text beyond our own: a parser may quote the file.
                detail = str(exc) if isinstance(exc, KeyError_ | OSError) else type(exc).__name__
                log.warning("could not reload the master keys (%s); keeping those loaded", detail)
                return False
            if state is not None:
                self.version = state.version
            return self._swap(ring)

    def _reload_for(self, unknown: str) -> bool:
        """Met a ciphertext under ``unknown``: look again, at most once a second.
        True when the key is held now."""
        with self._lock:
            if unknown in self._ring.key_ids:
                return True  # another thread loaded it meanwhile
            if time.monotonic() - self._forced_at < UNKNOWN_KEY_RELOAD_SECONDS:
                return False
            self._forced_at = time.monotonic()
            self.refresh(force=True)
            return unknown in self._ring.key_ids

    def _read_state(self) -> KeyRingState | None:
        if self._engine is None:
            return None
        try:
            with self._engine.connect() as connection:
                return read_key_ring_state(connection)
        except SQLAlchemyError as exc:
            # Not migrated yet, or the database is away: keep the keys loaded.
            log.debug("key ring version unavailable: %s", type(exc).__name__)
            return None

    def _load(self, state: KeyRingState | None) -> Keyring:
        source = load_keys(self._settings, create=False)
        keys = list(source.keys)
        if not source.from_environment or state is None or not state.key_ids:
            return Keyring(keys)
        # The environment cannot change under a running process: a key `keys rotate`
        # announced and the environment lacks is taken from the pending key file.
        held = {key_id(k) for k in keys}
        wanted = [kid for kid in state.key_ids if kid not in held]
        if not wanted:
            return Keyring(keys)
        pending = _read_pending(pending_key_path(self._settings))
        found = [pending[kid] for kid in wanted if kid in pending]
        if state.key_ids[0] in pending and state.key_ids[0] not in held:
            return Keyring([pending[state.key_ids[0]], *keys, *found[1:]])
        return Keyring([*keys, *found])

    def _swap(self, ring: Keyring) -> bool:
        current = self._ring
        if ring.key_ids == current.key_ids:
            return False
        previous = self.writes_with()
        self._ring = ring
        if ring.active_id != current.active_id:
            # Numbered after the new keys are in place: a transaction begun later can
            # only encrypt with them.
            self._draining_from = previous
            self._swap_seq = _transactions.current_seq()
            self._swapped_at = time.monotonic()
        log.info(
            "master keys reloaded: writing with %s, reading %s",
            ring.active_id,
            ", ".join(ring.key_ids),
        )
        return True


def _read_pending(path: Path) -> dict[str, bytes]:
    if not path.exists():
        return {}
    return {key_id(k): k for k in read_key_file(path)}


# -- the heartbeat thread ---------------------------------------------------------------------


class KeyringWatcher:
    """In each server worker: follows the key ring every second and records a heartbeat
    (at once when what it reads or writes with changed, else every few seconds)."""

    def __init__(
        self,
        keyring: LiveKeyring,
        db: Database,
        *,
        check_seconds: float = CHECK_SECONDS,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
    ) -> None:
        self.keyring = keyring
        self.db = db
        self.check_seconds = check_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.worker_id = uuid.uuid4().hex
        self._reported: tuple[Any, ...] | None = None
        self._beat_at = -math.inf
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="keyring-watcher", daemon=True)

    def start(self) -> KeyringWatcher:
        # Seen before the first look at the version, and that look made before serving:
        # a rotation either sees this worker or is seen by it.
        self._beat_safely(force=True)
        self.keyring.refresh()
        self._beat_safely()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        try:
            with self.db.session() as session:
                session.execute(
                    delete(KeyRingWorkerRow).where(KeyRingWorkerRow.id == self.worker_id)
                )
        except SQLAlchemyError as exc:
            log.debug("could not remove the key ring heartbeat: %s", type(exc).__name__)

    def _run(self) -> None:
        while not self._stop.wait(self.check_seconds):
            try:
                self.keyring.refresh()
            except Exception:
                log.exception("key ring check failed")
            self._beat_safely()

    def _beat_safely(self, *, force: bool = False) -> None:
        try:
            self._beat(force=force)
        except SQLAlchemyError as exc:
            log.warning("could not record the key ring heartbeat: %s", type(exc).__name__)

    def _beat(self, *, force: bool) -> None:
        report = (
            self.keyring.version,
            tuple(self.keyring.key_ids),
            self.keyring.writes_with(),
        )
        due = time.monotonic() - self._beat_at >= self.heartbeat_seconds
        if not force and not due and report == self._reported:
            return
        version, ids, writes_with = report
        values = {
            "keyring_version": -1 if version is None else version,
            "key_ids": " ".join(ids),
            "writes_with_key_id": writes_with,
            "seen_at": utcnow(),
        }
        with self.db.session() as session:
            updated = session.execute(
                update(KeyRingWorkerRow)
                .where(KeyRingWorkerRow.id == self.worker_id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if getattr(updated, "rowcount", 0) == 0:
                session.add(
                    KeyRingWorkerRow(
                        id=self.worker_id,
                        host=socket.gethostname()[:255],
                        pid=os.getpid(),
                        started_at=utcnow(),
                        **values,
                    )
                )
        self._reported = report
        self._beat_at = time.monotonic()
