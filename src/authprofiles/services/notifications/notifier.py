"""The notifier: turns a notice into outbox messages inside the unit of work of the
change it tells of (``core.ports.Notifier``). Nothing is sent here: the delivery
worker (:mod:`.delivery`) sends them off the request path, so a slow mail server never
slows a token request, a restart loses nothing, and a change rolled back tells nobody.
"""

from __future__ import annotations

import uuid
from typing import Any

from authprofiles.core.notices import Notice
from authprofiles.core.ports import Clock, SystemClock
from authprofiles.services.notifications.messages import email_for, webhook_body
from authprofiles.services.notifications.preferences import muted_events
from authprofiles.settings import Settings
from authprofiles.store.models import UserRow
from authprofiles.store.outbox import EMAIL, WEBHOOK, OutboxStore
from authprofiles.store.people import UserStore
from authprofiles.store.webhooks import WebhookStore


def muted(user: UserRow, event: str) -> bool:
    """Whether ``user`` turned emails about ``event`` off (all are on by default)."""
    return event in muted_events(user)


class OutboxNotifier:
    """One email per recipient who has not turned the event off (only when SMTP is
    configured: ``AUTHPROFILES_SMTP_HOST``), one call per webhook of the workspace
    subscribed to it.

    Recipients are ``notice.user_ids`` who are members of the workspace, and with
    ``notice.to_admins`` its admins; people disabled (everywhere, or in this workspace)
    are told nothing, nor is anyone without a membership of the notice's workspace,
    however they were named; and each address gets one email.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        users: UserStore,
        webhooks: WebhookStore,
        outbox: OutboxStore,
        clock: Clock | None = None,
    ) -> None:
        # Read at each notice, not copied: the public URL and SMTP settings are the ones
        # in force when the event happens.
        self.settings = settings
        self.users = users
        self.webhooks = webhooks
        self.outbox = outbox
        self.clock = clock or SystemClock()

    def notify(self, unit: Any, notice: Notice) -> None:
        event = notice.event.value
        if self.settings.smtp_host:
            recipients = self.recipients(unit, notice)
            if recipients:
                email = email_for(notice, self.settings.public_base_url).to_json()
                for user in recipients:
                    self.outbox.add(
                        unit,
                        workspace_id=notice.workspace_id,
                        channel=EMAIL,
                        recipient=user.email,
                        event=event,
                        payload=email,
                    )
        at = self.clock.now()
        for webhook in self.webhooks.subscribed(unit, notice.workspace_id, event):
            message_id = str(uuid.uuid4())
            self.outbox.add(
                unit,
                workspace_id=notice.workspace_id,
                channel=WEBHOOK,
                recipient=webhook.id,
                webhook_id=webhook.id,
                event=event,
                payload=webhook_body(message_id, notice, at),
                message_id=message_id,
            )

    def recipients(self, unit: Any, notice: Notice) -> list[UserRow]:
        """Who is emailed about ``notice``, oldest membership first for the admins.

        Each one's membership of the notice's workspace is checked here, whoever found
        them: an email names a workspace's profile, so it goes only to people who are
        members there now, and not disabled there."""
        found: list[UserRow] = []
        if notice.to_admins:
            found += self.users.admins(unit, notice.workspace_id)
        named = self.users.many(unit, notice.user_ids)
        found += sorted(named, key=lambda user: notice.user_ids.index(user.id))
        seen: set[str] = set()
        chosen = []
        for user in found:
            if user.disabled_at is not None or muted(user, notice.event.value):
                continue
            if user.email in seen:
                continue
            membership = self.users.membership(unit, notice.workspace_id, user.id)
            if membership is None or membership.disabled_at is not None:
                continue
            seen.add(user.email)
            chosen.append(user)
        return chosen


__all__ = ["OutboxNotifier", "muted"]
