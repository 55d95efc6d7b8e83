"""Connections: one set of tokens obtained through a profile, and the tokens themselves."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar, cast

SHARED_OWNER = "shared"
T = TypeVar("T")


class ConnectionStatus(StrEnum):
    PENDING = "pending"  # waiting for the user to finish the authorization-code redirect
    ACTIVE = "active"
    NEEDS_REAUTH = "needs_reauth"  # the IdP refused the refresh; a person must authorize again


@dataclass(frozen=True)
class TokenSet:
    """An RFC 6749 section 5.1 access token response, normalised.

    ``expires_at`` is None when the IdP gave no ``expires_in`` (RFC 6749 makes it
    RECOMMENDED, not required); such a token is used until an API refuses it.
    ``scopes`` is None when the response omitted ``scope``, which per section 5.1 means
    "identical to the scope requested by the client".
    """

    access_token: str
    token_type: str
    refresh_token: str | None = None
    expires_at: datetime | None = None
    scopes: tuple[str, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def expires_within(self, now: datetime, seconds: float) -> bool:
        return self.expires_at is not None and self.expires_at - now <= timedelta(seconds=seconds)

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True)
class Connection:
    """A connection with its secrets decrypted. Only services hold one, briefly."""

    id: str
    workspace_id: str
    profile_id: str
    owner: str
    tenant: str | None
    fields: dict[str, str]
    status: ConnectionStatus
    tokens: TokenSet | None
    username: str | None
    password: str | None
    last_error: str | None
    last_error_at: datetime | None
    refreshed_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime

    @property
    def is_shared(self) -> bool:
        return self.owner == SHARED_OWNER

    @property
    def refresh_token(self) -> str | None:
        return self.tokens.refresh_token if self.tokens else None


@dataclass(frozen=True)
class NextStep:
    """What the person connecting does next, as the API answers it. Only the fields of
    the grant that started it are set."""

    #: Authorization code: where to send the user (state and PKCE included).
    authorization_url: str | None = None
    #: Device code (RFC 8628 section 3.2): what the user types, and where.
    user_code: str | None = None
    verification_uri: str | None = None
    verification_uri_complete: str | None = None
    expires_at: datetime | None = None
    interval: int | None = None


class DerivedOnce:
    """Values worked out once from an immutable one (a token handed out), each kept
    under its own type, so a token reused many times is not worked out again."""

    __slots__ = ("_values",)

    def __init__(self) -> None:
        self._values: dict[type, object] = {}

    def __contains__(self, kind: type) -> bool:
        return kind in self._values

    def get(self, kind: type[T], make: Callable[[], T]) -> T:
        value = self._values.get(kind)
        if value is None:
            value = self._values[kind] = make()
        return cast(T, value)
