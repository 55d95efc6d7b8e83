"""Master key rotation while servers run: every secret under a new key, none ever under a
key that nobody holds.

Every running server worker follows the database's key ring and records which keys it
reads and which one it writes with (:mod:`authprofiles.store.keys`). The rotation:

1. **Distribute.** The key file gains the new key after the old ones, and the database
   announces it. Workers reload: they can read the new key and still write with the old
   one. If a live worker has not loaded it within the wait, the rotation stops here and
   the key file is put back as it was: nothing was written with the new key.
2. **Activate.** The key file puts the new key first; announced again. A worker reports
   writing with it once every transaction it began under the old key has ended.
3. **Re-encrypt** every row under the new key, in batches of short locking transactions
   (``BEGIN IMMEDIATE`` on SQLite, ``SELECT ... FOR UPDATE`` on PostgreSQL): the servers'
   writers wait for one batch at most, never for the whole rotation.
4. **Second pass**: rows written meanwhile under an old key (by a transaction that began
   before its worker moved, or by a process without a heartbeat, such as a CLI import).
5. **Retire.** Under a lock of the key ring row, which every commit that encrypted
   something takes too, check that no row uses an old key and record the old keys as
   retired: from then on a commit that encrypted under one is refused. Only then does the
   key file lose them. A live worker that never reported writing with the new key keeps
   the old keys in the file, and the rotation says so.

Crash safety: the key file holds every key any row may use, at every moment. The new key
enters it before anyone may write with it; an old key leaves it only after the database
has recorded, under that lock, that no row uses it and none may be committed under it any
more. A crash anywhere leaves the old and new keys in the file; every key found in the
file is rotated away by the next run. Rows nobody can decrypt are never rewritten: they
are reported, and a row under an old key that cannot be decrypted keeps that key.

Keys from ``AUTHPROFILES_MASTER_KEY`` cannot be changed for processes already running.
The new key is saved (mode 0600) in the pending key file, ``<key file>.new``, before
anything else, and printed; workers take the keys the database announces and their
environment lacks from that file. A worker that cannot read it (on another machine)
stops the rotation at step 1. After a complete rotation the old key decrypts nothing:
set ``AUTHPROFILES_MASTER_KEY`` to the new key and restart; until every server has
restarted, they read the new key from the pending file, which must stay until then. A
pending file found at the start (a rotation whose key is not in the environment yet) is
part of the key source: its keys are rotated away with the others, and the file is
rewritten, never dropped, until they are retired.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from authprofiles.core.audit import SYSTEM, Action, AuditEntry
from authprofiles.core.ports import AuditTrail, DiscardAudit
from authprofiles.services.audit import EVERY_WORKSPACE
from authprofiles.settings import Settings
from authprofiles.store.cipher import Keyring, encode_key, key_id, new_key
from authprofiles.store.db import Database
from authprofiles.store.keys import (
    KeySource,
    load_keys,
    pending_key_path,
    read_key_file,
    write_key_file,
)
from authprofiles.store.rotation import RotationConflict, RotationStore, WorkerView

#: How long each wait for the servers' workers lasts at most (longer than a dead
#: worker's heartbeat stays live, so a worker that just died does not hold it up).
DEFAULT_WAIT_SECONDS = 30.0
_POLL_SECONDS = 0.2
_RETIRE_ATTEMPTS = 5

#: ``on_wait(what, ready, live)``: ``what`` is ``load`` (the new key) or ``write``
#: (with it); ``ready`` of the ``live`` workers are there.
WaitCallback = Callable[[str, int, int], None]


@dataclass(frozen=True)
class RotationResult:
    new_key_id: str
    #: Keys no row uses any more, gone from the key file (empty when kept).
    retired_key_ids: list[str]
    #: Rows re-encrypted.
    rows: int
    #: Set only when the keys came from the environment: the operator must store it.
    new_key_for_environment: str | None
    #: False when the rotation stopped before anything was written with the new key.
    activated: bool = True
    #: Old keys still in the key file, and why.
    kept_key_ids: list[str] = field(default_factory=list)
    kept_because: str | None = None
    #: Live workers that did not load (or write with) the new key in time.
    workers_behind: list[str] = field(default_factory=list)
    #: Rows that could not be decrypted and were left as they were: ``table id: why``.
    unreadable: list[str] = field(default_factory=list)
    #: Where the new key was saved when the keys come from the environment.
    pending_key_file: Path | None = None


def rotate_master_key(
    settings: Settings,
    *,
    db: Database | None = None,
    wait_seconds: float = DEFAULT_WAIT_SECONDS,
    on_start: Callable[[int], None] | None = None,
    on_row: Callable[[], None] | None = None,
    on_environment_key: Callable[[str, Path], None] | None = None,
    on_wait: WaitCallback | None = None,
    audit: AuditTrail | None = None,
) -> RotationResult:
    """Rotate to a new master key (see the module's description). ``on_start(total)`` is
    called with the number of rows to look at (again when a second pass adds some),
    ``on_row()`` after each. ``audit`` is told what came of it (``keys.rotated``), in
    every workspace: each workspace's secrets were re-encrypted, and each workspace's
    admins read their own audit log only."""
    source = load_keys(settings, create=False)
    database = db or Database(settings.database_url)
    try:
        with _only_rotation(settings):
            result = _Rotation(
                settings,
                database,
                source,
                wait_seconds=wait_seconds,
                on_start=on_start,
                on_row=on_row,
                on_environment_key=on_environment_key,
                on_wait=on_wait,
            ).run()
        (audit or DiscardAudit()).record(_rotated(result))
        return result
    finally:
        if db is None:
            database.dispose()


def _rotated(result: RotationResult) -> AuditEntry:
    """The audit entry of a rotation, for every workspace: key ids and counts only (a key
    id is a hash prefix naming the key, not the key)."""
    return AuditEntry(
        workspace_id=EVERY_WORKSPACE,
        action=Action.KEYS_ROTATED,
        actor=SYSTEM,
        detail={
            "activated": result.activated,
            "new_key_id": result.new_key_id,
            "rows": result.rows,
            "retired_key_ids": " ".join(result.retired_key_ids),
            "kept_key_ids": " ".join(result.kept_key_ids),
            "unreadable_rows": len(result.unreadable),
        },
    )


@contextmanager
def _only_rotation(settings: Settings) -> Iterator[None]:
    """One rotation at a time on this machine: two would each rewrite the key file.
    (Across machines, the key ring version in the database refuses the second.)"""
    path = settings.key_file.with_name(settings.key_file.name + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RotationConflict(
                "another `authprofiles keys rotate` is running on this machine"
            ) from None
        yield
    finally:
        os.close(fd)


class _Rotation:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        source: KeySource,
        *,
        wait_seconds: float,
        on_start: Callable[[int], None] | None,
        on_row: Callable[[], None] | None,
        on_environment_key: Callable[[str, Path], None] | None,
        on_wait: WaitCallback | None,
    ) -> None:
        self.fresh = new_key()
        self.new_id = key_id(self.fresh)
        self.key_path = source.path
        self.pending: Path | None = None
        self.pending_before: list[bytes] | None = None
        self.old_keys = list(source.keys)
        if source.from_environment:
            self.pending = pending_key_path(settings).resolve()
            if self.pending.exists():
                # Left by an earlier rotation: its new key may be in use while the
                # environment does not hold it yet (the servers read it from there).
                self.pending_before = read_key_file(self.pending)
                held = {key_id(k) for k in self.old_keys}
                self.old_keys += [k for k in self.pending_before if key_id(k) not in held]
        self.old_ids = [key_id(k) for k in self.old_keys]
        self.store = RotationStore(db, Keyring([self.fresh, *self.old_keys]))
        self.wait_seconds = wait_seconds
        self.on_start, self.on_row = on_start, on_row
        self.on_environment_key, self.on_wait = on_environment_key, on_wait

    def _result(self, **changes: Any) -> RotationResult:
        return replace(
            RotationResult(
                new_key_id=self.new_id,
                retired_key_ids=[],
                rows=0,
                new_key_for_environment=encode_key(self.fresh) if self.pending else None,
                pending_key_file=self.pending,
            ),
            **changes,
        )

    def run(self) -> RotationResult:
        store = self.store
        version = store.state().version
        store.forget_dead_workers()

        # 1. Distribute: readable everywhere, written by nobody yet.
        if self.key_path is not None:
            write_key_file(self.key_path, [*self.old_keys, self.fresh])
        else:
            assert self.pending is not None
            # Saved and handed over before anything uses it: no crash or broken pipe
            # after this point can leave a secret under a key nobody has.
            write_key_file(self.pending, [self.fresh, *self.old_keys])
            if self.on_environment_key:
                self.on_environment_key(encode_key(self.fresh), self.pending)
        try:
            version = store.announce([*self.old_ids, self.new_id], expected_version=version)
        except RotationConflict:
            self._withdraw()
            raise
        behind = self._wait("load", lambda w: self.new_id in w.key_ids)
        if behind:
            # Nobody wrote with the new key: it leaves again, and nothing changed.
            self._withdraw()
            store.announce(self.old_ids, expected_version=version)
            return self._result(
                activated=False,
                kept_key_ids=self.old_ids,
                kept_because=(
                    f"{_workers(behind)} did not load the new key within "
                    f"{self.wait_seconds:g} s; nothing was re-encrypted"
                ),
                workers_behind=[w.describe() for w in behind],
            )

        # 2. Activate.
        if self.key_path is not None:
            write_key_file(self.key_path, [self.fresh, *self.old_keys])
        version = store.announce([self.new_id, *self.old_ids], expected_version=version)
        lagging = self._wait("write", lambda w: w.writes_with_key_id == self.new_id)

        # 3. Every row, then 4. what was written meanwhile, then 5. retire.
        total = store.count_rows()
        if self.on_start:
            self.on_start(total)
        visited = 0

        def counted() -> None:
            # Rows created during the pass: the total grows with them.
            nonlocal visited, total
            visited += 1
            if visited > total and self.on_start:
                total = visited
                self.on_start(total)
            if self.on_row:
                self.on_row()

        done = store.reencrypt_all(counted)
        rows, unreadable = done.rows, dict(done.unreadable)
        old = set(self.old_ids)
        retired = False
        using: dict[str, list[str]] = {}
        for _attempt in range(_RETIRE_ATTEMPTS):
            using = store.rows_using(old)
            todo = {
                table: fresh_ids
                for table, ids in using.items()
                if store.can_reencrypt(table)
                and (fresh_ids := [i for i in ids if (table, i) not in unreadable])
            }
            if todo:
                total += sum(len(ids) for ids in todo.values())
                if self.on_start:
                    self.on_start(total)
                again = store.reencrypt_rows(todo, self.on_row)
                rows += again.rows
                unreadable.update(again.unreadable)
                continue
            if lagging or using:
                break
            if not store.retire(old):
                retired = True
                break
            # Rows under an old key were committed between the look and the lock.

        report = [f"{table} {row_id}: {why}" for (table, row_id), why in sorted(unreadable.items())]
        if not retired:
            if lagging:
                kept_because = (
                    f"{_workers(lagging)} did not write with the new key within "
                    f"{self.wait_seconds:g} s"
                )
            elif using:
                kept_because = _still_using(using, store)
            else:
                kept_because = "rows kept being written under the old key"
            return self._result(
                rows=rows,
                kept_key_ids=self.old_ids,
                kept_because=kept_because,
                workers_behind=[w.describe() for w in lagging],
                unreadable=report,
            )
        write_key_file(self.key_path or _required(self.pending), [self.fresh])
        # The workers reload and forget the retired keys.
        store.announce([self.new_id], expected_version=version)
        return self._result(rows=rows, retired_key_ids=self.old_ids, unreadable=report)

    def _withdraw(self) -> None:
        """Take the new key back out, before anything was written with it."""
        if self.key_path is not None:
            write_key_file(self.key_path, self.old_keys)
        elif self.pending is not None:
            # A pending file from an earlier rotation may hold a key rows use: it is put
            # back as it was, never removed.
            if self.pending_before is not None:
                write_key_file(self.pending, self.pending_before)
            else:
                self.pending.unlink(missing_ok=True)

    def _wait(self, what: str, ready: Callable[[WorkerView], bool]) -> list[WorkerView]:
        """Until every live worker is ``ready``, or the wait is over: those behind."""
        deadline = time.monotonic() + self.wait_seconds
        while True:
            live = self.store.live_workers()
            behind = [w for w in live if not ready(w)]
            if self.on_wait:
                self.on_wait(what, len(live) - len(behind), len(live))
            if not behind or time.monotonic() >= deadline:
                return behind
            time.sleep(_POLL_SECONDS)


def _workers(workers: list[WorkerView]) -> str:
    names = ", ".join(w.describe() for w in workers)
    return f"server worker(s) {names}"


def _still_using(using: dict[str, list[str]], store: RotationStore) -> str:
    parts = []
    for table, ids in sorted(using.items()):
        shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
        if store.can_reencrypt(table):
            parts.append(f"{table} {shown} cannot be decrypted")
        else:
            parts.append(f"{table} {shown} (this command cannot re-encrypt that table)")
    return "rows still use the old key: " + "; ".join(parts)


def _required(path: Path | None) -> Path:
    assert path is not None
    return path
