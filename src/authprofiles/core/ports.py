"""Protocols the outer layers implement, so the core and services name no library."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class SecretCipher(Protocol):
    """Authenticated encryption of one secret, bound to where it is stored (``context``)."""

    def encrypt(self, plaintext: str, context: str) -> str: ...

    def decrypt(self, token: str, context: str) -> str: ...


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)
