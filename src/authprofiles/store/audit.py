"""The audit log's rows: appended, read a page at a time, never changed.

Entries are read newest first for the API (keyset pages before an ``(at, id)`` key) and
oldest first for exports and ``audit tail --follow`` (after one). Ids are time-ordered
(UUID version 7 layout): rows written in one millisecond still sort by id the same way
on every backend, so the ``(at, id)`` key never ties.
"""

from __future__ import annotations

import builtins
import json
import os
import time
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, insert, or_, select, true, tuple_

from authprofiles.core.audit import AuditEntry
from authprofiles.store.db import UnitOfWork
from authprofiles.store.models import AuditEventRow, UserRow, WorkspaceRow, utcnow
from authprofiles.store.people import normalise_email

#: The width of the columns entries are written to: longer values are cut, never refused
#: (an audit entry that cannot be written would lose the event it tells of).
_WIDTHS = {
    "actor_type": 10,
    "actor_id": 36,
    "actor_name": 320,
    "target_type": 20,
    "target_id": 36,
    "target_name": 320,
    "profile_id": 36,
    "address": 64,
    "action": 60,
}


def time_ordered_id() -> str:
    """A UUID in the version 7 layout (RFC 9562): 48 bits of Unix milliseconds, then
    random bits. Ids made later sort after, so the id breaks ties between entries of the
    same instant in the order they were made (within a process, to the millisecond)."""
    millis = time.time_ns() // 1_000_000
    raw = bytearray(millis.to_bytes(6, "big") + os.urandom(10))
    raw[6] = (raw[6] & 0x0F) | 0x70  # version 7
    raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC's variant
    return str(uuid.UUID(bytes=bytes(raw)))


@dataclass(frozen=True)
class AuditQuery:
    """Which entries of one workspace: every filter given must match.

    ``actor`` is an actor's id, name, or (for people) email; ``action`` is an exact action
    or, ending in ``.`` or ``.*``, every action under that prefix; ``since`` is inclusive
    and ``until`` exclusive, so consecutive windows neither repeat nor skip an entry."""

    workspace_id: str
    actor: str | None = None
    profile_id: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class AuditStore:
    def add(self, session: UnitOfWork, entry: AuditEntry) -> AuditEventRow:
        """Append ``entry`` to the unit of work (``at``: the entry's, or now)."""
        row = AuditEventRow(**_columns(entry))
        session.add(row)
        return row

    def add_many(self, session: UnitOfWork, entries: Sequence[AuditEntry]) -> None:
        """Append ``entries`` in one statement (executemany): several times cheaper than a
        mapped row each, for the batches written in the background."""
        if entries:
            session.execute(insert(AuditEventRow), [_columns(entry) for entry in entries])

    def newest_first(
        self,
        session: UnitOfWork,
        query: AuditQuery,
        *,
        before: tuple[datetime, str] | None,
        limit: int,
    ) -> builtins.list[AuditEventRow]:
        """At most ``limit`` entries, newest first, older than the ``(at, id)`` key
        ``before`` (None: from the newest)."""
        statement = _matching(query)
        if before is not None:
            statement = statement.where(tuple_(AuditEventRow.at, AuditEventRow.id) < before)
        statement = statement.order_by(AuditEventRow.at.desc(), AuditEventRow.id.desc())
        return builtins.list(session.scalars(statement.limit(limit)))

    def oldest_first(
        self,
        session: UnitOfWork,
        query: AuditQuery,
        *,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> builtins.list[AuditEventRow]:
        """At most ``limit`` entries, oldest first, newer than the ``(at, id)`` key
        ``after`` (None: from the oldest)."""
        statement = _matching(query)
        if after is not None:
            statement = statement.where(tuple_(AuditEventRow.at, AuditEventRow.id) > after)
        statement = statement.order_by(AuditEventRow.at, AuditEventRow.id)
        return builtins.list(session.scalars(statement.limit(limit)))

    def latest_by_actor(
        self, session: UnitOfWork, workspace_id: str, action: str, actor_ids: Collection[str]
    ) -> dict[str, datetime]:
        """When each of ``actor_ids`` last did ``action`` in the workspace (one grouped
        query; actors who never did are left out)."""
        if not actor_ids:
            return {}
        statement = (
            select(AuditEventRow.actor_id, func.max(AuditEventRow.at))
            .where(
                AuditEventRow.workspace_id == workspace_id,
                AuditEventRow.action == action,
                AuditEventRow.actor_id.in_(builtins.list(actor_ids)),
            )
            .group_by(AuditEventRow.actor_id)
        )
        return {
            actor_id: at
            for actor_id, at in session.execute(statement)
            if actor_id is not None and at is not None
        }

    def count(self, session: UnitOfWork, query: AuditQuery) -> int:
        statement = _matching(query).with_only_columns(func.count()).order_by(None)
        return int(session.scalar(statement) or 0)

    def workspace_ids(self, session: UnitOfWork) -> builtins.list[str]:
        """Every workspace, oldest first: where an event of the whole installation (a key
        rotation) is recorded."""
        statement = select(WorkspaceRow.id).order_by(WorkspaceRow.created_at, WorkspaceRow.id)
        return builtins.list(session.scalars(statement))


def _matching(query: AuditQuery) -> Select[AuditEventRow]:
    statement = select(AuditEventRow).where(AuditEventRow.workspace_id == query.workspace_id)
    if query.actor:
        statement = statement.where(_actor_is(query.actor))
    if query.profile_id:
        statement = statement.where(AuditEventRow.profile_id == query.profile_id)
    if query.action:
        statement = statement.where(_action_is(query.action))
    if query.since is not None:
        statement = statement.where(AuditEventRow.at >= query.since)
    if query.until is not None:
        statement = statement.where(AuditEventRow.at < query.until)
    return statement


def _actor_is(actor: str) -> ColumnElement[bool]:
    """The actor of that id or name, or the person of that email (matched as stored:
    lower-cased), whatever their display name was when they acted."""
    people = select(UserRow.id).where(UserRow.email == normalise_email(actor))
    return or_(
        AuditEventRow.actor_id == actor,
        AuditEventRow.actor_name == actor,
        and_(AuditEventRow.actor_type == "user", AuditEventRow.actor_id.in_(people)),
    )


def _action_is(action: str) -> ColumnElement[bool]:
    """``profile.created`` exactly; ``profile.`` or ``profile.*`` every ``profile.``
    action (``_`` and ``%`` in names are matched literally)."""
    prefix = action.removesuffix("*")
    if prefix.endswith("."):
        return AuditEventRow.action.startswith(prefix, autoescape=True)
    if not prefix:
        return true()  # "*": every action
    return AuditEventRow.action == action


def _columns(entry: AuditEntry) -> dict[str, Any]:
    """The row of ``entry`` (``at``: the entry's, or now), each text cut to its column."""
    return {
        "id": time_ordered_id(),
        "workspace_id": entry.workspace_id,
        "at": entry.at or utcnow(),
        "action": _cut(entry.action, "action"),
        "actor_type": _cut(entry.actor.type, "actor_type"),
        "actor_id": _cut_or_none(entry.actor.id, "actor_id"),
        "actor_name": _cut(entry.actor.name, "actor_name"),
        "target_type": _cut_or_none(entry.target.type if entry.target else None, "target_type"),
        "target_id": _cut_or_none(entry.target.id if entry.target else None, "target_id"),
        "target_name": _cut_or_none(entry.target.name if entry.target else None, "target_name"),
        "profile_id": _cut_or_none(entry.profile_id, "profile_id"),
        "address": _cut_or_none(entry.address, "address"),
        "detail": json.dumps(dict(entry.detail), separators=(",", ":"), sort_keys=True),
    }


def _cut(value: str, column: str) -> str:
    return value[: _WIDTHS[column]]


def _cut_or_none(value: str | None, column: str) -> str | None:
    return None if value is None else _cut(value, column)


__all__ = ["AuditQuery", "AuditStore", "time_ordered_id"]
