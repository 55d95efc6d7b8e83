"""Webhooks: endpoints a workspace's admins register to be called on its events, and
each one's delivery log. Admins only.

The signing secret is made here, shown once (in the answer that creates the webhook),
and stored encrypted: the delivery worker needs it back for every signature.
"""

from __future__ import annotations

import builtins
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from authprofiles.core.audit import Action, AuditEntry, Target
from authprofiles.core.callers import Principal, Role, require_role
from authprofiles.core.errors import FieldError, NotFound, ValidationFailed
from authprofiles.core.notices import EVENT_NAMES
from authprofiles.core.ports import AuditTrail
from authprofiles.services.notifications.ports import Resolver
from authprofiles.services.notifications.urls import url_problem
from authprofiles.store.db import Database, UnitOfWork
from authprofiles.store.models import OutboxRow, WebhookRow
from authprofiles.store.outbox import PENDING, OutboxStore
from authprofiles.store.webhooks import WebhookStore

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret


@dataclass(frozen=True)
class WebhookInfo:
    """A webhook as lists show it: never its secret."""

    id: str
    url: str
    events: tuple[str, ...]
    created_at: datetime

    @classmethod
    def of(cls, row: WebhookRow) -> WebhookInfo:
        return cls(
            id=row.id, url=row.url, events=tuple(row.events.split()), created_at=row.created_at
        )


@dataclass(frozen=True)
class CreatedWebhook(WebhookInfo):
    #: The signing secret: the only time it leaves the server.
    secret: str

    def __repr__(self) -> str:
        return f"CreatedWebhook({self.id}, {self.events})"


@dataclass(frozen=True)
class Delivery:
    """One message to a webhook, as its delivery log shows it."""

    id: str
    webhook_id: str
    event: str
    status: str  # pending, sent or failed
    attempts: int
    created_at: datetime
    #: When it is tried next (pending only).
    next_attempt_at: datetime | None
    sent_at: datetime | None
    last_status_code: int | None
    last_error: str | None

    @classmethod
    def of(cls, row: OutboxRow) -> Delivery:
        return cls(
            id=row.id,
            webhook_id=row.webhook_id or row.recipient,
            event=row.event,
            status=row.status,
            attempts=row.attempts,
            created_at=row.created_at,
            next_attempt_at=row.next_attempt_at if row.status == PENDING else None,
            sent_at=row.sent_at,
            last_status_code=row.last_status_code,
            last_error=row.last_error,
        )


def origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: what the audit log names a webhook by. Its
    path and query stay out: some receivers (chat incoming webhooks) put their own
    secret there."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def event_problems(events: Sequence[str]) -> builtins.list[FieldError]:
    if not events:
        return [FieldError("events", f"name at least one event, from: {', '.join(EVENT_NAMES)}")]
    unknown = [event for event in events if event not in EVENT_NAMES]
    if unknown:
        return [
            FieldError(
                "events",
                f"{', '.join(repr(e) for e in unknown)} "
                f"{'is not an event' if len(unknown) == 1 else 'are not events'}; "
                f"choose from: {', '.join(EVENT_NAMES)}",
            )
        ]
    return []


class WebhookService:
    def __init__(
        self,
        *,
        db: Database,
        store: WebhookStore,
        outbox: OutboxStore,
        audit: AuditTrail,
        resolver: Resolver,
        allow_private: bool,
    ) -> None:
        self.db = db
        self.store = store
        self.outbox = outbox
        self.audit = audit
        self.resolver = resolver
        self.allow_private = allow_private

    def create(self, principal: Principal, *, url: str, events: Sequence[str]) -> CreatedWebhook:
        """Register ``url`` for ``events`` in the caller's workspace; the answer holds the
        signing secret, this once."""
        require_role(principal, Role.ADMIN)
        errors = event_problems(events)
        if problem := url_problem(url, allow_private=self.allow_private, resolver=self.resolver):
            errors.insert(0, FieldError("url", problem))
        if errors:
            raise ValidationFailed(errors)
        chosen = [event for event in EVENT_NAMES if event in events]  # the contract's order
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        with self.db.session() as session:
            row = self.store.add(
                session,
                workspace_id=principal.workspace_id,
                url=url,
                events=chosen,
                secret=secret,
            )
            self.audit.record(
                AuditEntry.by(
                    principal,
                    Action.WEBHOOK_CREATED,
                    Target("webhook", row.id, origin(url)),
                    detail={"events": " ".join(chosen)},
                ),
                session,
            )
            info = WebhookInfo.of(row)
        return CreatedWebhook(
            id=info.id, url=info.url, events=info.events, created_at=info.created_at, secret=secret
        )

    def list(
        self,
        principal: Principal,
        *,
        after: tuple[datetime, str] | None = None,
        limit: int | None = None,
    ) -> builtins.list[WebhookInfo]:
        """The workspace's webhooks, oldest first: a keyset page after ``(created_at, id)``."""
        require_role(principal, Role.ADMIN)
        with self.db.read() as session:
            rows = self.store.page(session, principal.workspace_id, after=after, limit=limit)
            return [WebhookInfo.of(row) for row in rows]

    def delete(self, principal: Principal, webhook_id: str) -> None:
        """Forget a webhook of the caller's workspace, and its deliveries (pending ones
        are not sent). Another workspace's: :class:`NotFound`, as for an unknown id."""
        require_role(principal, Role.ADMIN)
        with self.db.session() as session:
            row = self._row(session, principal, webhook_id)
            target = Target("webhook", row.id, origin(row.url))
            self.store.delete(session, row)
            self.audit.record(AuditEntry.by(principal, Action.WEBHOOK_DELETED, target), session)

    def deliveries(
        self,
        principal: Principal,
        webhook_id: str,
        *,
        before: tuple[datetime, str] | None = None,
        limit: int | None = None,
    ) -> builtins.list[Delivery]:
        """The webhook's delivery log, newest first: a keyset page before
        ``(created_at, id)``."""
        require_role(principal, Role.ADMIN)
        with self.db.read() as session:
            self._row(session, principal, webhook_id)
            rows = self.outbox.deliveries(session, webhook_id, before=before, limit=limit)
            return [Delivery.of(row) for row in rows]

    def _row(self, session: UnitOfWork, principal: Principal, webhook_id: str) -> WebhookRow:
        row = self.store.get(session, principal.workspace_id, webhook_id)
        if row is None:
            raise NotFound(f"no webhook with id {webhook_id!r} in this workspace")
        return row


__all__ = ["CreatedWebhook", "Delivery", "WebhookInfo", "WebhookService", "origin"]
