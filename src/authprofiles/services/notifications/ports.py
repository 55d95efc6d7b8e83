"""What the notification use cases need from outside: an email channel, a webhook
channel and a name resolver. ``authprofiles.notify`` implements them (smtplib, httpx,
the system's resolver); the composition root wires them, tests may wire fakes.

A channel raises ``authprofiles.notify.errors.DeliveryFailed`` when a message did not
get through, with a reason safe to keep in the delivery log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class EmailSender(Protocol):
    def send(self, to: str, subject: str, text: str) -> None:
        """Send one plain-text email now."""
        ...


class WebhookPoster(Protocol):
    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """POST ``body`` (JSON) with ``headers``; the receiver's status code. The poster
        refuses loopback and private addresses unless they are allowed."""
        ...


class Resolver(Protocol):
    def __call__(self, host: str, port: int) -> list[str]:
        """The addresses ``host`` resolves to; ``OSError`` when none."""
        ...


__all__ = ["EmailSender", "Resolver", "WebhookPoster"]
