"""Notifications: email over SMTP and signed webhooks, through a table-backed outbox.

- :class:`OutboxNotifier` (``core.ports.Notifier``) writes a notice's messages in the
  unit of work of the change it tells of;
- :class:`DeliveryWorker` sends them off the request path, with retries and a lease;
- :class:`WebhookService` registers webhooks and shows their delivery log;
- :class:`EmailPreferences` keeps each person's choice of emailed events.
"""

from __future__ import annotations

from authprofiles.services.notifications.delivery import (
    DeliveryWorker,
    EmailNotConfigured,
    NotificationNotSent,
    backoff_seconds,
    send_test_email,
)
from authprofiles.services.notifications.messages import Email, email_for, webhook_body
from authprofiles.services.notifications.notifier import OutboxNotifier
from authprofiles.services.notifications.preferences import EmailPreferences, NoUser
from authprofiles.services.notifications.signing import SIGNATURE_HEADER, signature, verify
from authprofiles.services.notifications.webhooks import (
    CreatedWebhook,
    Delivery,
    WebhookInfo,
    WebhookService,
)

__all__ = [
    "SIGNATURE_HEADER",
    "CreatedWebhook",
    "Delivery",
    "DeliveryWorker",
    "Email",
    "EmailNotConfigured",
    "EmailPreferences",
    "NoUser",
    "NotificationNotSent",
    "OutboxNotifier",
    "WebhookInfo",
    "WebhookService",
    "backoff_seconds",
    "email_for",
    "send_test_email",
    "signature",
    "verify",
    "webhook_body",
]
