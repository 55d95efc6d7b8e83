"""The outbox: messages (emails, webhook calls) written in the transaction of the change
they tell of, and delivered off the request path by whichever worker claims them.

A message is claimed in a short transaction of its own: it gets a lease
(``claimed_by``, ``claimed_until``), is sent with no transaction open, and its outcome is
written in another short transaction. Of several workers claiming at once exactly one
gets each message: on PostgreSQL the claim locks the rows it reads and skips those that
another claim holds (``FOR UPDATE SKIP LOCKED``); on SQLite the claiming transaction
holds the database's write lock from its first statement (``Database.session``). A
worker that dies mid-send leaves a lease that runs out, and the message is sent again
then: delivery is at least once, and exactly once whenever workers live to record it.
The row stays afterwards as the delivery log.
"""

from __future__ import annotations

import builtins
import uuid
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, or_, select, tuple_, update

from authprofiles.store.db import UnitOfWork
from authprofiles.store.models import OutboxRow, utcnow

EMAIL = "email"
WEBHOOK = "webhook"

PENDING = "pending"
SENT = "sent"
FAILED = "failed"

#: The longest error kept in the delivery log.
MAX_ERROR_LENGTH = 1000


class OutboxStore:
    def add(
        self,
        session: UnitOfWork,
        *,
        workspace_id: str,
        channel: str,
        recipient: str,
        event: str,
        payload: str,
        webhook_id: str | None = None,
        message_id: str | None = None,
    ) -> OutboxRow:
        """A message due now, in ``session`` (the unit of work of the change it tells of:
        it is sent if and only if that change commits)."""
        now = utcnow()
        row = OutboxRow(
            id=message_id or str(uuid.uuid4()),
            workspace_id=workspace_id,
            channel=channel,
            recipient=recipient,
            webhook_id=webhook_id,
            event=event,
            payload=payload,
            status=PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        session.add(row)
        return row

    @staticmethod
    def _due(now: datetime) -> builtins.list[ColumnElement[bool]]:
        return [
            OutboxRow.status == PENDING,
            OutboxRow.next_attempt_at <= now,
            or_(OutboxRow.claimed_until.is_(None), OutboxRow.claimed_until < now),
        ]

    def any_due(self, session: UnitOfWork) -> bool:
        """Whether a message waits to be sent: one indexed read, for a worker's tick to
        take no write lock when there is nothing to do."""
        found = session.scalar(select(OutboxRow.id).where(*self._due(utcnow())).limit(1))
        return found is not None

    def claim_due(
        self, session: UnitOfWork, *, worker: str, lease_seconds: float, limit: int = 1
    ) -> builtins.list[OutboxRow]:
        """Claim up to ``limit`` messages that are due, oldest first, for ``worker`` until
        the lease runs out. Leases run on the system's time: processes compare them."""
        now = utcnow()
        statement = (
            select(OutboxRow)
            .where(*self._due(now))
            .order_by(OutboxRow.next_attempt_at, OutboxRow.created_at, OutboxRow.id)
            .limit(limit)
        )
        if session.get_bind().dialect.name != "sqlite":
            # SQLite: the session's BEGIN IMMEDIATE holds the write lock already.
            statement = statement.with_for_update(skip_locked=True)
        rows = builtins.list(session.scalars(statement))
        until = now + timedelta(seconds=lease_seconds)
        for row in rows:
            row.claimed_by = worker
            row.claimed_until = until
        session.flush()
        return rows

    def mark_sent(
        self, session: UnitOfWork, message_id: str, *, status_code: int | None = None
    ) -> bool:
        """Record a delivery; False when the message was no longer pending (a worker
        whose lease had run out sent it too)."""
        result = session.execute(
            update(OutboxRow)
            .where(OutboxRow.id == message_id, OutboxRow.status == PENDING)
            .values(
                status=SENT,
                attempts=OutboxRow.attempts + 1,
                sent_at=utcnow(),
                last_status_code=status_code,
                last_error=None,
                claimed_by=None,
                claimed_until=None,
            )
            .execution_options(synchronize_session=False)
        )
        return getattr(result, "rowcount", 0) == 1

    def mark_failed(
        self,
        session: UnitOfWork,
        message_id: str,
        *,
        worker: str,
        error: str,
        status_code: int | None = None,
        retry_at: datetime | None,
    ) -> bool:
        """Record a failed attempt by ``worker``: tried again from ``retry_at``, or given
        up (status ``failed``) when that is None. False when ``worker`` no longer holds
        the message (its lease ran out and another worker took it over)."""
        values: dict[str, object] = {
            "attempts": OutboxRow.attempts + 1,
            "last_error": error[:MAX_ERROR_LENGTH],
            "last_status_code": status_code,
            "claimed_by": None,
            "claimed_until": None,
        }
        if retry_at is None:
            values["status"] = FAILED
        else:
            values["next_attempt_at"] = retry_at
        result = session.execute(
            update(OutboxRow)
            .where(
                OutboxRow.id == message_id,
                OutboxRow.status == PENDING,
                OutboxRow.claimed_by == worker,
            )
            .values(values)
            .execution_options(synchronize_session=False)
        )
        return getattr(result, "rowcount", 0) == 1

    def get(self, session: UnitOfWork, message_id: str) -> OutboxRow | None:
        return session.get(OutboxRow, message_id)

    def deliveries(
        self,
        session: UnitOfWork,
        webhook_id: str,
        *,
        before: tuple[datetime, str] | None = None,
        limit: int | None = None,
    ) -> builtins.list[OutboxRow]:
        """A webhook's delivery log, newest first (then by id, descending): a keyset page
        before ``(created_at, id)``."""
        statement = select(OutboxRow).where(OutboxRow.webhook_id == webhook_id)
        if before is not None:
            statement = statement.where(tuple_(OutboxRow.created_at, OutboxRow.id) < before)
        statement = statement.order_by(OutboxRow.created_at.desc(), OutboxRow.id.desc())
        if limit is not None:
            statement = statement.limit(limit)
        return builtins.list(session.scalars(statement))


__all__ = ["EMAIL", "FAILED", "PENDING", "SENT", "WEBHOOK", "OutboxStore"]
