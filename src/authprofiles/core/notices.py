"""What people are told: a notice names an event, the workspace, what it concerns and
who should hear of it. The notifier (``ports.Notifier``) turns it, inside the
transaction of the change it tells of, into outbox messages: an email to each recipient
who has not turned the event off, and a call to each webhook subscribed to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class NoticeEvent(StrEnum):
    """The contract's event names (webhook subscriptions and email preferences use them)."""

    PROFILE_FAILING = "profile.failing"
    PROFILE_RECOVERED = "profile.recovered"
    CONNECTION_NEEDS_REAUTH = "connection.needs_reauth"
    PROFILE_ACCESS_GRANTED = "profile.access_granted"
    APPROVAL_REQUESTED = "approval.requested"


#: The event names, in the contract's order.
EVENT_NAMES: tuple[str, ...] = tuple(event.value for event in NoticeEvent)


@dataclass(frozen=True)
class Notice:
    event: NoticeEvent
    workspace_id: str
    profile_id: str | None
    profile_name: str | None
    #: What happened, for a person (never a secret).
    detail: str
    connection_id: str | None = None
    #: Who is emailed: user ids. Empty with ``to_admins``: the workspace's admins.
    user_ids: tuple[str, ...] = field(default_factory=tuple)
    to_admins: bool = False


__all__ = ["EVENT_NAMES", "Notice", "NoticeEvent"]
