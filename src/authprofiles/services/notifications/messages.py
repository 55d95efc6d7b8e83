"""What each notice says: an email's subject and text, a webhook's JSON body.

Made when the notice is written to the outbox (a restart sends what the event said at
the time). Nothing secret goes in: a notice's ``detail`` is written for people and
never holds a credential, and links name ids, never tokens.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from authprofiles.core.notices import Notice, NoticeEvent

PREFERENCES_HINT = (
    "You receive this because incident emails are on for you. Choose which events you "
    "are emailed about with PUT /api/v1/me/notifications."
)


@dataclass(frozen=True)
class Email:
    subject: str
    text: str

    def to_json(self) -> str:
        return json.dumps({"subject": self.subject, "text": self.text})

    @classmethod
    def from_json(cls, payload: str) -> Email:
        data = json.loads(payload)
        return cls(subject=str(data["subject"]), text=str(data["text"]))


def one_line(value: str, limit: int = 200) -> str:
    """``value`` fit for a header: control and formatting characters (line breaks that
    would start a new header among them) become spaces, runs of space one."""
    cleaned = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in value)
    text = " ".join(cleaned.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def profile_url(public_url: str, profile_id: str | None) -> str:
    return f"{public_url}/profiles/{profile_id}" if profile_id else public_url


def connection_url(public_url: str, connection_id: str | None) -> str:
    return f"{public_url}/connections/{connection_id}" if connection_id else public_url


#: The held call an ``approval.requested`` notice's detail names: "Agent 'x' asks to call
#: METHOD URL. Approve or deny it: LINK" (the agent's name as Python's repr quotes it).
_APPROVAL_REQUEST = re.compile(
    r"^Agent (?P<agent>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\") asks to call "
    r"(?P<method>[A-Z]+) (?P<url>\S+?)\.?(?:\s|$)"
)
#: The console's page of a held call, at the end of the detail.
_APPROVAL_LINK = re.compile(r"(?P<link>https?://\S+/console/approvals/[^\s/?#]+)\s*$")


def approval_link(detail: str, public_url: str) -> str:
    """The page of the held call the detail ends with (else the list of held calls)."""
    found = _APPROVAL_LINK.search(detail)
    return found.group("link") if found else f"{public_url}/console/approvals"


def _approval_subject(detail: str, name: str) -> str:
    found = _APPROVAL_REQUEST.match(detail)
    if found is None:
        return f"authprofiles: an agent asks to call through profile {name} — approve or deny"
    agent = one_line(found.group("agent")[1:-1], 80)
    call = f"{found.group('method')} {one_line(found.group('url'), 120)}"
    return f"authprofiles: agent {agent} asks to call {call} on profile {name} — approve or deny"


def email_for(notice: Notice, public_url: str) -> Email:
    """The email a person receives about ``notice``: the subject names the profile; the
    text says what happened and links to where to act, under ``public_url``."""
    name = one_line(notice.profile_name or notice.profile_id or "(unnamed)")
    quoted = f'"{name}"'
    detail = notice.detail.strip() or "no further detail was given"
    profile_link = profile_url(public_url, notice.profile_id)
    if notice.event is NoticeEvent.PROFILE_FAILING:
        subject = f"authprofiles: profile {name} is failing"
        lines = [
            f"The profile {quoted} stopped working: its tokens can no longer be obtained "
            "or refreshed, wherever it is used.",
            "",
            f"What failed: {detail}",
            "",
            "Check and reconfigure it (or authorize its connection again) here:",
            profile_link,
            "",
            "You are told once per incident; another email follows when it works again.",
        ]
    elif notice.event is NoticeEvent.PROFILE_RECOVERED:
        subject = f"authprofiles: profile {name} has recovered"
        lines = [
            f"The profile {quoted} has recovered: tokens are obtained for it again, and "
            "the incident is closed.",
            "",
            f"Detail: {detail}",
            "",
            "The profile:",
            profile_link,
        ]
    elif notice.event is NoticeEvent.CONNECTION_NEEDS_REAUTH:
        subject = f"authprofiles: your connection to {name} needs authorization again"
        lines = [
            f"Your connection to the profile {quoted} needs to be authorized again before "
            "it can be used.",
            "",
            f"Why: {detail}",
            "",
            "Authorize it again here:",
            connection_url(public_url, notice.connection_id),
        ]
    elif notice.event is NoticeEvent.APPROVAL_REQUESTED:
        subject = _approval_subject(detail, name)
        lines = [
            f"An agent made a call through the profile {quoted} that a rule of its grant "
            "holds until a person decides.",
            "",
            f"The call: {detail}",
            "",
            "See the call (its method, URL and body) and approve or deny it here:",
            approval_link(detail, public_url),
            "",
            "Approving lets exactly this call (the same method, URL and body) through, once. "
            "A call nobody decides on in time is refused.",
        ]
    else:
        subject = f"authprofiles: you may now use profile {name}"
        lines = [
            f"You were given access to the profile {quoted}.",
            "",
            f"Detail: {detail}",
            "",
            "The profile:",
            profile_link,
        ]
    lines += ["", "-- ", PREFERENCES_HINT, ""]
    return Email(subject=one_line(subject, 250), text="\n".join(lines))


def iso_utc(at: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, to the millisecond."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def webhook_body(message_id: str, notice: Notice, at: datetime) -> str:
    """The contract's body: ``{id, event, at, workspace_id, profile: {id, name},
    connection: {id} | null, detail}``; ``id`` is the delivery's (the same on every
    retry, for receivers to drop a repeat)."""
    body: dict[str, Any] = {
        "id": message_id,
        "event": notice.event.value,
        "at": iso_utc(at),
        "workspace_id": notice.workspace_id,
        "profile": {"id": notice.profile_id, "name": notice.profile_name},
        "connection": {"id": notice.connection_id} if notice.connection_id else None,
        "detail": notice.detail,
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


__all__ = ["Email", "approval_link", "email_for", "iso_utc", "one_line", "webhook_body"]
