"""The delivery worker: sends what the outbox holds, off the request path.

Each worker process runs :meth:`DeliveryWorker.deliver_webhooks` and
:meth:`DeliveryWorker.deliver_emails` every ``AUTHPROFILES_NOTIFICATION_TICK_SECONDS``,
each in a thread of its own (see the app's lifespan): an SMTP server that never answers
holds up emails, one timeout per message, but never a webhook call, which the contract
wants made within seconds of its event. A pass claims one message at a time in a short
transaction (the lease, which counts the attempt: see ``store.outbox``), sends it with
no transaction open, then records the outcome in another. A failed message is
tried again with exponential backoff and jitter (so receivers that failed together do
not get every retry at the same instant), and given up after ``max_attempts``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from authprofiles.core.errors import Conflict, NotFound, UpstreamError
from authprofiles.core.ports import Clock, SystemClock
from authprofiles.notify.errors import DeliveryFailed
from authprofiles.services.notifications.messages import Email, iso_utc
from authprofiles.services.notifications.ports import EmailSender, WebhookPoster
from authprofiles.services.notifications.signing import SIGNATURE_HEADER, signature
from authprofiles.store.cipher import SecretsUnreadable
from authprofiles.store.db import Database, UnitOfWork
from authprofiles.store.models import OutboxRow, utcnow
from authprofiles.store.outbox import EMAIL, WEBHOOK, OutboxStore
from authprofiles.store.webhooks import WebhookStore

log = logging.getLogger("authprofiles.notifications")

#: Attempts before a message is given up (status ``failed``).
MAX_ATTEMPTS = 10
#: The longest wait between two attempts.
MAX_BACKOFF_SECONDS = 3600.0
#: How long a claim lasts: far longer than one send may take (each step of an SMTP
#: exchange times out after AUTHPROFILES_SMTP_TIMEOUT_SECONDS, 10 s unless set, a
#: webhook call after 10 s), so a live worker does not lose its claim. It is also how
#: long a message whose worker died waits before it is tried again.
LEASE_SECONDS = 120.0
#: Messages one pass sends at most, so a worker's other passes get their turn.
PASS_LIMIT = 100
TEST_EVENT = "webhook.test"


class EmailNotConfigured(Conflict):
    """No SMTP server is set (``AUTHPROFILES_SMTP_HOST``)."""


class NotificationNotSent(UpstreamError):
    """A test message was refused, or did not get through; ``detail`` says why."""


def backoff_seconds(
    attempt: int, base: float, *, jitter: Callable[[], float] = random.random
) -> float:
    """How long to wait after failed attempt number ``attempt`` (1, 2, ...): ``base``
    doubled for each further attempt, at most :data:`MAX_BACKOFF_SECONDS`, then spread
    by jitter to between 75% and 125% of that."""
    delay = min(MAX_BACKOFF_SECONDS, base * 2 ** max(0, attempt - 1))
    return float(delay * (0.75 + 0.5 * jitter()))


def worker_name() -> str:
    """Who claims (``claimed_by``): this host and process, and a random part for the
    several workers one process may hold (tests run two)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def send_test_email(email: EmailSender | None, to: str, public_url: str) -> None:
    """Send a test email to ``to`` now through ``email`` (`authprofiles notifications
    test`): :class:`EmailNotConfigured` without an SMTP server, :class:`NotificationNotSent`
    when it refuses or cannot be reached."""
    if email is None:
        raise EmailNotConfigured(
            "no SMTP server is configured: set AUTHPROFILES_SMTP_HOST (and _SMTP_PORT, "
            "_SMTP_SECURITY, _SMTP_USERNAME, _SMTP_PASSWORD, _SMTP_FROM as needed)"
        )
    text = (
        f"This is a test email from the authprofiles server at {public_url}.\n\n"
        "Incident emails (a profile failing or recovering, a connection needing "
        "authorization again, access to a profile given) come this way.\n"
    )
    try:
        email.send(to, "authprofiles: test email", text)
    except DeliveryFailed as exc:
        raise NotificationNotSent(str(exc)) from None


@dataclass(frozen=True)
class _Job:
    """A claimed message, with what sending it needs; ``refused`` when it cannot be
    sent at all (its webhook's secret is unreadable). ``attempts`` is the number of this
    attempt (counted when it was claimed)."""

    id: str
    channel: str
    recipient: str
    event: str
    payload: str
    attempts: int
    url: str | None = None
    secret: str | None = None
    refused: str | None = None

    def __repr__(self) -> str:  # the secret stays out of logs and tracebacks
        return f"_Job({self.id}, {self.channel}, attempt {self.attempts})"


class DeliveryWorker:
    def __init__(
        self,
        *,
        db: Database,
        outbox: OutboxStore,
        webhooks: WebhookStore,
        poster: WebhookPoster,
        email: EmailSender | None,
        retry_seconds: float,
        max_attempts: int = MAX_ATTEMPTS,
        lease_seconds: float = LEASE_SECONDS,
        clock: Clock | None = None,
        name: str | None = None,
    ) -> None:
        self.db = db
        self.outbox = outbox
        self.webhooks = webhooks
        self.poster = poster
        self.email = email
        self.retry_seconds = retry_seconds
        self.max_attempts = max_attempts
        self.lease_seconds = lease_seconds
        self.clock = clock or SystemClock()
        self.name = name or worker_name()

    # -- the background pass ----------------------------------------------------------------
    def deliver_due(self, channel: str | None = None) -> int:
        """Send every message (of ``channel``: ``email`` or ``webhook``; of both when None)
        that is due, up to :data:`PASS_LIMIT`; how many were tried. When nothing is due
        this is one read, and no write lock is taken."""
        with self.db.read() as session:
            if not self.outbox.any_due(session, channel=channel):
                return 0
        tried = 0
        while tried < PASS_LIMIT:
            job = self._claim(channel)
            if job is None:
                break
            self._deliver(job)
            tried += 1
        return tried

    def deliver_webhooks(self) -> int:
        """The webhook calls that are due (the app's webhook worker runs this)."""
        return self.deliver_due(WEBHOOK)

    def deliver_emails(self) -> int:
        """The emails that are due (the app's email worker runs this, apart from the
        webhooks: an SMTP server that does not answer holds up only emails)."""
        return self.deliver_due(EMAIL)

    def _claim(self, channel: str | None) -> _Job | None:
        with self.db.session() as session:
            rows = self.outbox.claim_due(
                session,
                worker=self.name,
                lease_seconds=self.lease_seconds,
                max_attempts=self.max_attempts,
                channel=channel,
                limit=1,
            )
            if not rows:
                return None
            return self._job(session, rows[0])

    def _job(self, session: UnitOfWork, row: OutboxRow) -> _Job:
        job = _Job(
            id=row.id,
            channel=row.channel,
            recipient=row.recipient,
            event=row.event,
            payload=row.payload,
            attempts=row.attempts,
        )
        if row.channel != WEBHOOK:
            return job
        webhook = self.webhooks.get(session, None, row.webhook_id or row.recipient)
        if webhook is None:  # deleted meanwhile (its messages go with it)
            return replace(job, refused="the webhook was deleted")
        try:
            secret = self.webhooks.secret(webhook)
        except SecretsUnreadable as exc:
            return replace(job, refused=exc.detail)
        return replace(job, url=webhook.url, secret=secret)

    def _deliver(self, job: _Job) -> None:
        status_code: int | None = None
        try:
            if job.refused is not None:
                raise DeliveryFailed(job.refused)
            if job.channel == EMAIL:
                self._send_email(job.recipient, Email.from_json(job.payload))
            else:
                status_code = self._post(job)
                if not 200 <= status_code < 300:
                    raise DeliveryFailed(
                        f"the receiver answered HTTP {status_code}", status_code=status_code
                    )
        except DeliveryFailed as exc:
            self._failed(job, str(exc), exc.status_code)
            return
        except Exception as exc:
            log.exception("delivery %s (%s) failed unexpectedly", job.id, job.channel)
            self._failed(job, f"unexpected error: {type(exc).__name__}", status_code)
            return
        with self.db.session() as session:
            recorded = self.outbox.mark_sent(
                session, job.id, worker=self.name, status_code=status_code
            )
        if not recorded:
            log.warning("delivery %s was sent, but another worker had taken it over", job.id)

    def _failed(self, job: _Job, error: str, status_code: int | None) -> None:
        attempt = job.attempts
        retry_at: datetime | None = None
        if attempt < self.max_attempts:
            retry_at = utcnow() + timedelta(seconds=backoff_seconds(attempt, self.retry_seconds))
        with self.db.session() as session:
            self.outbox.mark_failed(
                session,
                job.id,
                worker=self.name,
                error=error,
                status_code=status_code,
                retry_at=retry_at,
            )
        then = f"trying again at {iso_utc(retry_at)}" if retry_at else "giving up"
        log.warning(
            "%s delivery %s (%s) failed, attempt %d of %d, %s: %s",
            job.channel,
            job.id,
            job.event,
            attempt,
            self.max_attempts,
            then,
            error,
        )

    def _send_email(self, to: str, email: Email) -> None:
        if self.email is None:
            raise DeliveryFailed(
                "no SMTP server is configured (AUTHPROFILES_SMTP_HOST); the email is sent "
                "once one is"
            )
        self.email.send(to, email.subject, email.text)

    def _post(self, job: _Job) -> int:
        assert job.url is not None and job.secret is not None
        body = job.payload.encode("utf-8")
        headers = {
            SIGNATURE_HEADER: signature(job.secret, body, int(time.time())),
            "X-AuthProfiles-Event": job.event,
            "X-AuthProfiles-Delivery": job.id,
        }
        return self.poster.post(job.url, body, headers)

    # -- `authprofiles notifications test` -----------------------------------------------------
    def send_test_webhook(self, webhook_id: str) -> int:
        """Send a signed test event (``webhook.test``) to a webhook now; its status."""
        with self.db.read() as session:
            webhook = self.webhooks.get(session, None, webhook_id)
            if webhook is None:
                raise NotFound(f"no webhook with id {webhook_id!r}")
            job = _Job(
                id=str(uuid.uuid4()),
                channel=WEBHOOK,
                recipient=webhook.id,
                event=TEST_EVENT,
                payload="",
                attempts=1,
                url=webhook.url,
                secret=self.webhooks.secret(webhook),
            )
            workspace_id = webhook.workspace_id
        body = {
            "id": job.id,
            "event": TEST_EVENT,
            "at": iso_utc(self.clock.now()),
            "workspace_id": workspace_id,
            "profile": None,
            "connection": None,
            "detail": "a test event from `authprofiles notifications test`",
        }
        job = replace(job, payload=json.dumps(body, separators=(",", ":")))
        try:
            status_code = self._post(job)
        except DeliveryFailed as exc:
            raise NotificationNotSent(str(exc)) from None
        if not 200 <= status_code < 300:
            raise NotificationNotSent(f"the receiver answered HTTP {status_code}")
        return status_code


__all__ = [
    "MAX_ATTEMPTS",
    "DeliveryWorker",
    "EmailNotConfigured",
    "NotificationNotSent",
    "backoff_seconds",
    "send_test_email",
]
