"""The database side of `keys rotate`: announcements, heartbeats, re-encryption in batches.

Every step is a short transaction of its own. A batch of rows is re-encrypted under a
write lock on just those rows (``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN
IMMEDIATE`` on SQLite), so a running server's writers wait at most for one batch.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Table, delete, func, or_, select, update
from sqlalchemy.orm import Session

from authprofiles.core.errors import Conflict
from authprofiles.store.cipher import KeyError_, Keyring, key_ids_in
from authprofiles.store.connections import ConnectionStore
from authprofiles.store.db import Database
from authprofiles.store.keys import (
    KEY_RING_ID,
    LIVE_WITHIN_SECONDS,
    KeyRingState,
    read_key_ring_state,
)
from authprofiles.store.models import (
    AuthorizationRequestRow,
    Base,
    ConnectionRow,
    KeyRingRow,
    KeyRingWorkerRow,
    ProfileRow,
    SignInRequestRow,
    WebhookRow,
    utcnow,
)
from authprofiles.store.profiles import ProfileStore
from authprofiles.store.sessions import SignInRequestStore
from authprofiles.store.webhooks import WebhookStore

#: Rows per re-encryption transaction.
BATCH_ROWS = 100
#: Columns that hold ciphertexts inside JSON rather than one per column (``*_enc``).
_JSON_WITH_CIPHERTEXTS = {"profiles": ("config",)}
#: Heartbeats older than this are removed at the next rotation.
_FORGET_WORKERS_AFTER = timedelta(days=1)


class RotationConflict(Conflict):
    """Another `keys rotate` changed the key ring while this one ran."""


@dataclass(frozen=True)
class WorkerView:
    """A server worker as its last heartbeat shows it."""

    id: str
    host: str
    pid: int
    key_ids: tuple[str, ...]
    writes_with_key_id: str
    seen_at: datetime

    def describe(self) -> str:
        return f"{self.host} pid {self.pid}"


@dataclass
class Pass:
    """What one pass over some rows did."""

    rows: int = 0
    #: ``(table, row id) -> why``: rows that could not be decrypted, left as they were.
    unreadable: dict[tuple[str, str], str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Kind:
    model: Any
    reencrypt: Callable[[Any], None]
    #: The attributes of ``model`` that may hold ciphertexts.
    columns: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        columns = tuple(str(c.key) for c in ciphertext_columns(self.model.__table__))
        object.__setattr__(self, "columns", columns)


def ciphertext_columns(table: Table) -> builtins.list[ColumnElement[Any]]:
    """The columns of ``table`` that may hold ciphertexts: every ``*_enc`` column, and
    JSON columns known to hold some."""
    names = {c.name for c in table.columns if c.name.endswith("_enc")}
    names.update(_JSON_WITH_CIPHERTEXTS.get(table.name, ()))
    return [table.c[name] for name in sorted(names)]


class RotationStore:
    def __init__(self, db: Database, keyring: Keyring) -> None:
        self.db = db
        self.keyring = keyring
        profiles, connections = ProfileStore(keyring), ConnectionStore(keyring)
        self._kinds = {
            "profiles": _Kind(ProfileRow, profiles.reencrypt),
            "connections": _Kind(ConnectionRow, connections.reencrypt),
            "authorization_requests": _Kind(
                AuthorizationRequestRow, connections.reencrypt_authorization_request
            ),
            "webhooks": _Kind(WebhookRow, WebhookStore(keyring).reencrypt),
            # SSO requests (minutes) and reset links (a day) outlive a rotation.
            "signin_requests": _Kind(SignInRequestRow, SignInRequestStore(keyring).reencrypt),
        }

    # -- the announcement ------------------------------------------------------------------
    def state(self) -> KeyRingState:
        with self.db.read() as session:
            state = read_key_ring_state(session)
        if state is None:
            raise KeyError_("the database has no key ring row; run the migrations first")
        return state

    def announce(self, key_ids: Iterable[str], *, expected_version: int) -> int:
        """Publish the key ring (ids, the one to write with first) as a new version, if
        the version is still ``expected_version``; returns the new version."""
        with self.db.session() as session:
            result = session.execute(
                update(KeyRingRow)
                .where(KeyRingRow.id == KEY_RING_ID, KeyRingRow.version == expected_version)
                .values(
                    version=expected_version + 1,
                    key_ids=" ".join(key_ids),
                    changed_at=utcnow(),
                )
                .execution_options(synchronize_session=False)
            )
            if getattr(result, "rowcount", 0) != 1:
                raise RotationConflict(
                    "the key ring changed while this rotation ran: is another "
                    "`authprofiles keys rotate` running? Nothing further was done"
                )
        return expected_version + 1

    def retire(self, key_ids: set[str]) -> dict[str, builtins.list[str]]:
        """Record ``key_ids`` as retired if no row uses them, checked under a lock on the
        key ring row that every commit which encrypted something takes too (see
        :mod:`authprofiles.store.keys`). Returns the rows that still use them (by table;
        empty when the keys were retired)."""
        with self.db.session() as session:
            row = session.scalars(
                select(KeyRingRow).where(KeyRingRow.id == KEY_RING_ID).with_for_update()
            ).one()
            using = self._rows_using(session, key_ids)
            if using:
                return using
            row.retired_key_ids = " ".join(sorted(set(row.retired_key_ids.split()) | key_ids))
            row.changed_at = utcnow()
        return {}

    # -- heartbeats --------------------------------------------------------------------------
    def live_workers(self) -> builtins.list[WorkerView]:
        since = utcnow() - timedelta(seconds=LIVE_WITHIN_SECONDS)
        with self.db.read() as session:
            rows = session.scalars(
                select(KeyRingWorkerRow).where(KeyRingWorkerRow.seen_at >= since)
            ).all()
            return [
                WorkerView(
                    id=r.id,
                    host=r.host,
                    pid=r.pid,
                    key_ids=tuple(r.key_ids.split()),
                    writes_with_key_id=r.writes_with_key_id,
                    seen_at=r.seen_at,
                )
                for r in rows
            ]

    def forget_dead_workers(self) -> None:
        with self.db.session() as session:
            session.execute(
                delete(KeyRingWorkerRow).where(
                    KeyRingWorkerRow.seen_at < utcnow() - _FORGET_WORKERS_AFTER
                )
            )

    # -- re-encryption -----------------------------------------------------------------------
    def count_rows(self) -> int:
        with self.db.read() as session:
            return sum(
                session.scalar(select(func.count()).select_from(kind.model)) or 0
                for kind in self._kinds.values()
            )

    def reencrypt_all(self, on_row: Callable[[], None] | None = None) -> Pass:
        """Every row, in batches by id; a row whose ciphertexts all use the active key
        already is left alone (written meanwhile by a worker that has the new key)."""
        done = Pass()
        for table, kind in self._kinds.items():
            after = ""
            while True:
                with self.db.session() as session:
                    statement = (
                        select(kind.model)
                        .where(kind.model.id > after)
                        .order_by(kind.model.id)
                        .limit(BATCH_ROWS)
                    )
                    rows = self._locked(session, statement)
                    for row in rows:
                        self._reencrypt(table, kind, row, done)
                        if on_row:
                            on_row()
                if len(rows) < BATCH_ROWS:
                    break
                after = rows[-1].id
        return done

    def reencrypt_rows(
        self,
        rows_by_table: dict[str, builtins.list[str]],
        on_row: Callable[[], None] | None = None,
    ) -> Pass:
        """The rows named (as :meth:`rows_using` gives them), in batches."""
        done = Pass()
        for table, ids in rows_by_table.items():
            kind = self._kinds.get(table)
            if kind is None:
                continue
            for start in range(0, len(ids), BATCH_ROWS):
                batch = sorted(ids[start : start + BATCH_ROWS])
                with self.db.session() as session:
                    statement = (
                        select(kind.model).where(kind.model.id.in_(batch)).order_by(kind.model.id)
                    )
                    for row in self._locked(session, statement):
                        self._reencrypt(table, kind, row, done)
                        if on_row:
                            on_row()
        return done

    def can_reencrypt(self, table: str) -> bool:
        return table in self._kinds

    def rows_using(self, key_ids: set[str]) -> dict[str, builtins.list[str]]:
        """The rows of every table that hold a ciphertext under one of ``key_ids``."""
        with self.db.read() as session:
            return self._rows_using(session, key_ids)

    def _rows_using(self, session: Session, key_ids: set[str]) -> dict[str, builtins.list[str]]:
        found: dict[str, builtins.list[str]] = {}
        if not key_ids:
            return found
        for table in Base.metadata.sorted_tables:
            columns = ciphertext_columns(table)
            if not columns:
                continue
            # Key ids are hex: nothing in the pattern is a LIKE wildcard.
            matches = [c.like(f"%v1.{kid}.%") for c in columns for kid in sorted(key_ids)]
            (key,) = table.primary_key.columns
            ids = [str(i) for i in session.scalars(select(key).where(or_(*matches)))]
            if ids:
                found[table.name] = ids
        return found

    def _locked(self, session: Session, statement: Any) -> builtins.list[Any]:
        # SQLite: the session's BEGIN IMMEDIATE holds the write lock already.
        if not self.db.is_sqlite:
            statement = statement.with_for_update()
        return list(session.scalars(statement.execution_options(populate_existing=True)))

    def _reencrypt(self, table: str, kind: _Kind, row: Any, done: Pass) -> None:
        used: set[str] = set()
        for column in kind.columns:
            used |= key_ids_in(getattr(row, column))
        if used <= {self.keyring.active_id}:
            return
        try:
            kind.reencrypt(row)
        except KeyError_ as exc:
            # Left exactly as it was: a value nobody can decrypt is still not destroyed.
            done.unreadable[(table, str(row.id))] = str(exc)
            return
        done.rows += 1
