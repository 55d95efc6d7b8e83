"""The append-only audit log (``core.ports.AuditTrail``), what admins read of it, and the
per-minute count of tokens handed out.

Who did what, when, in which workspace and from which address; never a secret: callers
put only short, non-secret particulars in an entry's ``detail`` (a profile test records
whether it passed, its stage and status code, never what was sent or received).

Tokens are handed out far too often for an entry each (the token endpoint answers in a
fraction of a millisecond, and a database write per token would dwarf that): they are
**aggregated per connection, caller and minute** in memory (:class:`TokenIssueCounter`)
and written as one ``token.issued`` entry per connection, caller and minute, with the
count, by each server worker (several workers: one entry each, to be summed).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from authprofiles.core.audit import Action, Actor, AuditEntry, DetailValue, Target
from authprofiles.core.callers import Principal, Role, require_role
from authprofiles.core.errors import FieldError, ValidationFailed
from authprofiles.store.audit import AuditQuery, AuditStore
from authprofiles.store.db import Database, UnitOfWork
from authprofiles.store.models import AuditEventRow
from authprofiles.store.people import UserStore

log = logging.getLogger("authprofiles.audit")

#: An entry of this workspace id is written once in every workspace: events of the whole
#: installation (a master key rotation re-encrypted every workspace's secrets, so each
#: workspace's admins see it in their own log, the only one they can read).
EVERY_WORKSPACE = "*"
#: Entries per page of an export.
EXPORT_PAGE = 500
#: The longest filter value taken (longer ones cannot match anything stored).
MAX_FILTER_LENGTH = 320


@dataclass(frozen=True)
class AuditFilters:
    """What an admin asks the log for; every filter given must match.

    ``actor``: an actor's id, name or (a person's) email. ``profile_id``: entries about
    that profile. ``action``: exact (``profile.created``) or a prefix (``profile.`` or
    ``profile.*``). ``since`` (inclusive) and ``until`` (exclusive): times, UTC when they
    carry no zone."""

    actor: str | None = None
    profile_id: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def check(self) -> None:
        """Every problem at once (a ``ValidationFailed``), before anything is read."""
        errors = []
        for name, value in (
            ("actor", self.actor),
            ("profile_id", self.profile_id),
            ("action", self.action),
        ):
            if value is not None and len(value) > MAX_FILTER_LENGTH:
                errors.append(FieldError(name, f"must be at most {MAX_FILTER_LENGTH} characters"))
            elif value is not None and "\x00" in value:
                errors.append(FieldError(name, "may not hold a NUL character"))
        times: dict[str, datetime] = {}
        for name, when in (("since", self.since), ("until", self.until)):
            if when is None:
                continue
            try:
                times[name] = _utc(when)
            except OverflowError:
                errors.append(FieldError(name, "is out of range once taken to UTC"))
        if "since" in times and "until" in times and times["since"] >= times["until"]:
            errors.append(FieldError("until", "must be later than since"))
        if errors:
            raise ValidationFailed(errors)

    def query(self, workspace_id: str) -> AuditQuery:
        return AuditQuery(
            workspace_id=workspace_id,
            actor=self.actor or None,
            profile_id=self.profile_id or None,
            action=self.action or None,
            since=_utc(self.since) if self.since else None,
            until=_utc(self.until) if self.until else None,
        )


@dataclass(frozen=True)
class AuditRecord:
    """An entry as written: its id and time, and what it says."""

    id: str
    at: datetime
    workspace_id: str
    action: str
    actor: Actor
    target: Target | None
    profile_id: str | None
    address: str | None
    detail: dict[str, DetailValue]

    @property
    def key(self) -> tuple[datetime, str]:
        """Its place in the log, for paging: ``(at, id)``."""
        return self.at, self.id

    def as_json(self) -> dict[str, Any]:
        """The shape of ``GET /audit``'s items and of an export's lines."""
        return {
            "id": self.id,
            "at": iso_utc(self.at),
            "actor": {"type": self.actor.type, "id": self.actor.id, "name": self.actor.name},
            "action": self.action,
            "workspace_id": self.workspace_id,
            "target": (
                {"type": self.target.type, "id": self.target.id, "name": self.target.name}
                if self.target
                else None
            ),
            "ip": self.address,
            "profile_id": self.profile_id,
            "detail": self.detail,
        }

    @classmethod
    def of(cls, row: AuditEventRow) -> AuditRecord:
        return cls(
            id=row.id,
            at=_utc(row.at),
            workspace_id=row.workspace_id,
            action=row.action,
            actor=Actor(row.actor_type, row.actor_id, row.actor_name),
            target=(
                Target(row.target_type, row.target_id, row.target_name) if row.target_type else None
            ),
            profile_id=row.profile_id,
            address=row.address,
            detail=_detail(row.detail),
        )


class AuditLog:
    """The audit log: appended by every use case that changes something, read by admins
    (their own workspace's entries only)."""

    def __init__(self, db: Database, *, store: AuditStore | None = None) -> None:
        self._db = db
        self._store = store or AuditStore()

    # -- writing (core.ports.AuditTrail) -------------------------------------------------
    def record(self, entry: AuditEntry, unit: Any | None = None) -> None:
        """Append ``entry``: within the open unit of work ``unit`` when given, so that it
        commits (or rolls back) with the change it tells of; else in a short transaction
        of its own, whose failure is logged (action and workspace only) and never raised:
        a request that did its work is not failed by its audit line.

        Without ``unit``, do not call this while holding a write unit in the same thread
        (on SQLite the second writer would wait for the first)."""
        if unit is not None:
            self._add(unit, entry)
            return
        self.record_many([entry])

    def record_many(self, entries: Iterable[AuditEntry]) -> bool:
        """Append ``entries`` in one transaction of their own; False (logged) when it
        failed and nothing was written."""
        entries = list(entries)
        if not entries:
            return True
        try:
            with self._db.session() as session:
                self._store.add_many(
                    session, [e for e in entries if e.workspace_id != EVERY_WORKSPACE]
                )
                for entry in entries:
                    if entry.workspace_id == EVERY_WORKSPACE:
                        self._add(session, entry)
        except Exception as exc:
            # The exception's text may quote the statement's parameters: its type only.
            log.warning(
                "%d audit entr%s (%s) not written: %s",
                len(entries),
                "y" if len(entries) == 1 else "ies",
                ", ".join(sorted({e.action for e in entries})),
                type(exc).__name__,
            )
            return False
        return True

    def _add(self, session: UnitOfWork, entry: AuditEntry) -> None:
        if entry.workspace_id != EVERY_WORKSPACE:
            self._store.add(session, entry)
            return
        for workspace_id in self._store.workspace_ids(session):
            self._store.add(session, replace(entry, workspace_id=workspace_id))

    # -- reading (admins of the workspace) -----------------------------------------------
    def query(
        self,
        principal: Principal,
        filters: AuditFilters,
        after: tuple[datetime, str] | None = None,
        limit: int = 100,
    ) -> list[AuditRecord]:
        """The caller's workspace's entries, newest first: at most ``limit`` following
        ``after`` (the ``(at, id)`` key of the previous page's last entry). Admins only."""
        require_role(principal, Role.ADMIN)
        filters.check()
        with self._db.read() as session:
            rows = self._store.newest_first(
                session, filters.query(principal.workspace_id), before=after, limit=limit
            )
            return [AuditRecord.of(row) for row in rows]

    def last_done(
        self, principal: Principal, action: Action, user_ids: Collection[str]
    ) -> dict[str, datetime]:
        """When each of ``user_ids`` last did ``action`` here (e.g. signed in), in one
        query. Admins only."""
        require_role(principal, Role.ADMIN)
        with self._db.read() as session:
            return self._store.latest_by_actor(
                session, principal.workspace_id, action.value, user_ids
            )

    def in_order(
        self,
        principal: Principal,
        filters: AuditFilters,
        after: tuple[datetime, str] | None = None,
        limit: int = EXPORT_PAGE,
    ) -> list[AuditRecord]:
        """The same, oldest first: at most ``limit`` entries newer than ``after``."""
        require_role(principal, Role.ADMIN)
        filters.check()
        with self._db.read() as session:
            rows = self._store.oldest_first(
                session, filters.query(principal.workspace_id), after=after, limit=limit
            )
            return [AuditRecord.of(row) for row in rows]

    def export(
        self, principal: Principal, filters: AuditFilters, *, page: int = EXPORT_PAGE
    ) -> Iterator[AuditRecord]:
        """Every matching entry, oldest first, read ``page`` at a time (each page in a
        short read of its own, so a long export holds no transaction open). The role and
        the filters are checked before the first entry is asked for."""
        require_role(principal, Role.ADMIN)
        filters.check()
        return self._export(principal, filters, page)

    def _export(
        self, principal: Principal, filters: AuditFilters, page: int
    ) -> Iterator[AuditRecord]:
        after: tuple[datetime, str] | None = None
        while True:
            records = self.in_order(principal, filters, after, page)
            yield from records
            if len(records) < page:
                return
            after = records[-1].key

    def count(self, principal: Principal, filters: AuditFilters) -> int:
        require_role(principal, Role.ADMIN)
        filters.check()
        with self._db.read() as session:
            return self._store.count(session, filters.query(principal.workspace_id))

    def workspace_id(self, name_or_id: str) -> str:
        """The id of the workspace of that id or name (the command line names one)."""
        with self._db.read() as session:
            return UserStore().workspace_id_named(session, name_or_id)


class EntryWriter(Protocol):
    """Writes entries in one transaction (:meth:`AuditLog.record_many`)."""

    def record_many(self, entries: Iterable[AuditEntry]) -> bool: ...


class TokenIssueCounter:
    """Tokens handed out, counted in memory per (workspace, connection, profile, caller,
    minute), and written as one ``token.issued`` entry per connection, caller and minute
    (``detail``: ``{"count": n, "minute": "2025-01-31T09:30:00Z"}``), not one per token.

    :meth:`count` is on the token endpoint's hot path: a tuple, and a dict increment
    under a lock. :meth:`flush` (every ``audit_flush_seconds``, from a background thread)
    writes the minutes that have ended, so a minute is written once by each worker;
    :meth:`flush_all` (at shutdown) writes the current one too. A failed write keeps its
    counts for the next flush. The caller is the principal as it asked, its address
    included: one entry per address a caller asked from.
    """

    #: Counts kept after failed writes, at most (then the oldest are dropped, logged).
    MAX_KEPT = 100_000

    def __init__(self, audit: EntryWriter, *, now: Callable[[], float] = time.time) -> None:
        self._audit = audit
        self._now = now
        self._lock = threading.Lock()
        self._counts: dict[tuple[Principal, str, str | None, int], int] = {}

    def count(self, principal: Principal, connection_id: str, profile_id: str | None) -> None:
        """One token of ``connection_id`` (of ``profile_id``) handed out to ``principal``."""
        # The minute is read under the lock, as :meth:`_flush` reads it: a count can never
        # land in a minute a flush has already written.
        with self._lock:
            key = (principal, connection_id, profile_id, int(self._now() // 60))
            self._counts[key] = self._counts.get(key, 0) + 1

    def pending(self) -> int:
        """Tokens counted and not yet written."""
        with self._lock:
            return sum(self._counts.values())

    def flush(self) -> int:
        """Write the minutes that have ended; the number of entries written."""
        return self._flush(everything=False)

    def flush_all(self) -> int:
        """Write every count, the current minute's too (the worker is stopping)."""
        return self._flush(everything=True)

    def _flush(self, *, everything: bool) -> int:
        with self._lock:
            current = int(self._now() // 60)
            if everything:
                due, self._counts = self._counts, {}
            else:
                due = {key: n for key, n in self._counts.items() if key[3] < current}
                for key in due:
                    del self._counts[key]
        if not due:
            return 0
        entries = [
            AuditEntry.by(
                principal,
                Action.TOKEN_ISSUED,
                Target("connection", connection_id),
                profile_id=profile_id,
                detail={"count": n, "minute": _minute(minute)},
            )
            for (principal, connection_id, profile_id, minute), n in sorted(
                due.items(), key=lambda item: item[0][3]
            )
        ]
        if self._audit.record_many(entries):
            return len(entries)
        self._keep(due)
        return 0

    def _keep(self, unwritten: dict[tuple[Principal, str, str | None, int], int]) -> None:
        with self._lock:
            for key, n in unwritten.items():
                self._counts[key] = self._counts.get(key, 0) + n
            excess = len(self._counts) - self.MAX_KEPT
            if excess > 0:
                for key in sorted(self._counts, key=lambda k: k[3])[:excess]:
                    del self._counts[key]
                log.warning("%d token.issued counts dropped: the audit log is not written", excess)


def iso_utc(value: datetime) -> str:
    """``2025-01-31T09:30:00.123456Z``: ISO 8601, UTC, as the API writes times."""
    return _utc(value).isoformat().replace("+00:00", "Z")


def parse_time(value: str, field: str, *, strict: bool = False) -> datetime:
    """An ISO 8601 time in UTC, or a ``ValidationFailed`` naming ``field``.

    ``strict`` (the API, whose schema says ``date-time``): RFC 3339 only, a zone
    required. Otherwise (the command line) any ISO 8601 form Python reads, UTC when it
    names no zone."""
    if strict and not _RFC3339.fullmatch(value):
        raise _not_a_time(value, field)
    try:
        return _utc(datetime.fromisoformat(value.strip().upper()))
    except (ValueError, OverflowError):
        raise _not_a_time(value, field) from None


#: RFC 3339's date-time (section 5.6).
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _not_a_time(value: str, field: str) -> ValidationFailed:
    shown = value if len(value) <= 40 else value[:40] + "..."
    return ValidationFailed(
        [FieldError(field, f"{shown!r} is not an ISO 8601 time, e.g. 2025-01-31T09:30:00Z")]
    )


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


ItemT = TypeVar("ItemT")


class AuditBuffer(Generic[ItemT]):
    """Things to log kept in memory and written together every few seconds (an agent's
    every call: one write per call would cost more than the call). :meth:`add` only
    appends: each item becomes its entry (``entry_of``) when :meth:`flush` writes it, from
    a background thread (and at shutdown). A failed write keeps its items for the next
    one, up to :data:`MAX_KEPT`."""

    MAX_KEPT = 100_000

    def __init__(self, audit: EntryWriter, entry_of: Callable[[ItemT], AuditEntry]) -> None:
        self._audit = audit
        self._entry_of = entry_of
        self._lock = threading.Lock()
        self._items: list[ItemT] = []

    def add(self, item: ItemT) -> None:
        with self._lock:
            if len(self._items) < self.MAX_KEPT:
                self._items.append(item)
                return
        log.warning("audit buffer full: an entry was dropped")

    def flush(self) -> int:
        with self._lock:
            due, self._items = self._items, []
        if not due:
            return 0
        if not self._audit.record_many([self._entry_of(item) for item in due]):
            with self._lock:
                self._items[:0] = due[: self.MAX_KEPT - len(self._items)]
            return 0
        return len(due)


def _minute(minute: int) -> str:
    return datetime.fromtimestamp(minute * 60, UTC).strftime("%Y-%m-%dT%H:%M:00Z")


def _detail(text: str) -> dict[str, DetailValue]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


__all__ = [
    "EVERY_WORKSPACE",
    "MAX_FILTER_LENGTH",
    "AuditBuffer",
    "AuditFilters",
    "AuditLog",
    "AuditRecord",
    "EntryWriter",
    "TokenIssueCounter",
    "iso_utc",
    "parse_time",
]
