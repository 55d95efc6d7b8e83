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

An attempt is counted when it is claimed, not when its outcome is written: a message
whose sending kills its worker (or hangs past the lease) still uses up its attempts, and
is given up once they are all gone, instead of being taken again at every lease forever.
Emails and webhook calls are claimed apart (``channel``), so each kind has its own
worker and a slow mail server never holds up a webhook.
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
    def _due(now: datetime, channel: str | None) -> builtins.list[ColumnElement[bool]]:
        due = [
            OutboxRow.status == PENDING,
            OutboxRow.next_attempt_at <= now,
            or_(OutboxRow.claimed_until.is_(None), OutboxRow.claimed_until < now),
        ]
        if channel is not None:
            due.append(OutboxRow.channel == channel)
        return due

    def any_due(self, session: UnitOfWork, *, channel: str | None = None) -> bool:
        """Whether a message (of ``channel``, or of any) waits to be sent: one indexed
        read, for a worker's tick to take no write lock when there is nothing to do."""
        found = session.scalar(select(OutboxRow.id).where(*self._due(utcnow(), channel)).limit(1))
        return found is not None

    def claim_due(
        self,
        session: UnitOfWork,
        *,
        worker: str,
        lease_seconds: float,
        max_attempts: int,
        channel: str | None = None,
        limit: int = 1,
    ) -> builtins.list[OutboxRow]:
        """Claim up to ``limit`` messages (of ``channel``, or of any) that are due, oldest
        first, for ``worker`` until the lease runs out, counting the attempt now
        (``attempts`` is the number of the attempt under way). A message due again after
        ``max_attempts`` attempts is one whose last attempt never finished (its worker
        died or hung): it is given up (``failed``) rather than claimed. Leases run on the
        system's time: processes compare them."""
        now = utcnow()
        statement = (
            select(OutboxRow)
            .where(*self._due(now, channel))
            .order_by(OutboxRow.next_attempt_at, OutboxRow.created_at, OutboxRow.id)
        )
        if session.get_bind().dialect.name != "sqlite":
            # SQLite: the session's BEGIN IMMEDIATE holds the write lock already.
            statement = statement.with_for_update(skip_locked=True)
        until = now + timedelta(seconds=lease_seconds)
        claimed: builtins.list[OutboxRow] = []
        while len(claimed) < limit:
            rows = builtins.list(session.scalars(statement.limit(limit - len(claimed))))
            if not rows:
                break
            for row in rows:
                if row.attempts >= max_attempts:
                    row.status = FAILED
                    error = (
                        f"given up: attempt {row.attempts} of {max_attempts} never finished "
                        "(the worker sending it stopped or lost its lease)"
                    )
                    if row.last_error:
                        error += f"; before that: {row.last_error}"
                    row.last_error = error[:MAX_ERROR_LENGTH]
                    row.claimed_by = None
                    row.claimed_until = None
                    continue
                row.attempts += 1
                row.claimed_by = worker
                row.claimed_until = until
                claimed.append(row)
            # Written before the next read, which then sees none of these as due.
            session.flush()
        return claimed

    def mark_sent(
        self,
        session: UnitOfWork,
        message_id: str,
        *,
        worker: str,
        status_code: int | None = None,
    ) -> bool:
        """Record a delivery by ``worker``; False when ``worker`` no longer holds the
        message (its lease ran out and another worker took it over, or gave it up): the
        message is then the other worker's to record, and may be sent twice."""
        result = session.execute(
            update(OutboxRow)
            .where(
                OutboxRow.id == message_id,
                OutboxRow.status == PENDING,
                OutboxRow.claimed_by == worker,
            )
            .values(
                status=SENT,
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
        """Record a failed attempt by ``worker`` (counted when it was claimed): tried again
        from ``retry_at``, or given up (status ``failed``) when that is None. False when
        ``worker`` no longer holds the message (its lease ran out and another worker took
        it over)."""
        values: dict[str, object] = {
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
