"""Protocols the outer layers implement, so the core and the services name no library.

Services receive these through their constructors; the composition root wires the real
adapters (``store``, ``oauth``, ``forwarding``), and unit tests wire fakes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from authprofiles.core.callers import CredentialRequest, Principal


class SecretCipher(Protocol):
    """Authenticated encryption of one secret, bound to where it is stored (``context``)."""

    def encrypt(self, plaintext: str, context: str) -> str: ...

    def decrypt(self, token: str, context: str) -> str: ...


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class CredentialPolicy(Protocol):
    """Says no (raises ``Forbidden``, naming why) or returns; asked once per credential
    use, before a token is handed out or applied."""

    def authorize(self, principal: Principal, request: CredentialRequest) -> None: ...


@dataclass(frozen=True)
class Event:
    """Something that happened, for notifications and the audit log."""

    action: str
    workspace_id: str
    actor: str | None = None
    target_id: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


class EventSink(Protocol):
    def emit(self, event: Event) -> None: ...


class DiscardEvents:
    """An event sink that keeps nothing (until notifications and the audit log land)."""

    def emit(self, event: Event) -> None:
        return None


__all__ = [
    "Clock",
    "CredentialPolicy",
    "DiscardEvents",
    "Event",
    "EventSink",
    "SecretCipher",
    "SystemClock",
]
