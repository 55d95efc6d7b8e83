"""What every grant module implements, and the values grants and services exchange.

A grant turns a profile (and what a connection brings: a tenant, field values, a
username and password) into tokens. Some obtain them at once (client credentials,
password); others need a person first (authorization code, device code): they start a
*pending authorization* (a kind, a state and the secrets to finish it with, kept
encrypted by the store) and finish it when the person's answer comes (a callback) or
when polling finds it (a device code). Every grant renews its tokens its own way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from authprofiles.core.auth_types import AuthTypeSpec
from authprofiles.core.connections import Connection, NextStep, TokenSet
from authprofiles.core.errors import FieldError
from authprofiles.core.profiles import ProfileDefinition
from authprofiles.oauth.engine import ClientSettings, OAuthEngine
from authprofiles.oauth.errors import GrantRefused
from authprofiles.oauth.grants import rfc6749_refresh


@dataclass(frozen=True)
class GrantInput:
    """What a connection brings beyond the profile: the resource owner's credentials (the
    password grant) and the values of the profile's form fields."""

    username: str | None = None
    password: str | None = None
    form_values: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Obtained:
    """Tokens, obtained at once."""

    tokens: TokenSet


@dataclass(frozen=True)
class Pending:
    """An authorization a person must finish: the store keeps it (``secrets`` encrypted)
    until its answer comes or ``expires_at`` passes."""

    kind: str
    #: The value the answer is matched with (an OAuth ``state``; the store keeps a hash).
    state: str
    secrets: Mapping[str, str]
    expires_at: datetime
    next_step: NextStep
    redirect_uri: str = ""
    #: Polled grants: when to ask the authorization server first.
    next_poll_at: datetime | None = None


@dataclass(frozen=True)
class StillPending:
    """A poll found no answer yet; ask again at ``next_poll_at``. ``secrets`` replaces
    the stored ones when the grant changed them (a ``slow_down`` lengthens the interval)."""

    next_poll_at: datetime
    secrets: Mapping[str, str] | None = None


@dataclass(frozen=True)
class PendingAuthorization:
    """A pending authorization as the store gives it back."""

    kind: str
    connection_id: str
    secrets: Mapping[str, str]
    redirect_uri: str
    expires_at: datetime


def no_credentials(given: GrantInput) -> list[FieldError]:
    """A grant that takes no username and password refuses them, naming each."""
    return [
        FieldError(name, "only the password grant takes credentials")
        for name in ("username", "password")
        if getattr(given, name) is not None
    ]


class Grant(Protocol):
    """One OAuth 2.0 grant, registered under its auth type (``oauth.grants.registry``)."""

    @property
    def spec(self) -> AuthTypeSpec: ...

    def check_input(
        self,
        profile: ProfileDefinition,
        given: GrantInput,
        kept: Connection | None = None,
    ) -> tuple[GrantInput, list[FieldError]]:
        """The input the grant runs with (``given``, completed from what the connection
        ``kept`` or the profile holds), and every problem with it, named by field."""
        ...

    def keeps_credentials(self, profile: ProfileDefinition) -> bool:
        """Whether a connection keeps (encrypted) the credentials it was made with."""
        ...

    def start(
        self,
        engine: OAuthEngine,
        settings: ClientSettings,
        given: GrantInput,
        now: datetime,
        lifetime_seconds: float,
    ) -> Obtained | Pending:
        """Obtain tokens, or start an authorization a person finishes (which ends after
        ``lifetime_seconds`` unless the authorization server says otherwise)."""
        ...

    def complete(
        self,
        engine: OAuthEngine,
        settings: ClientSettings,
        pending: PendingAuthorization,
        answer: Mapping[str, str],
        now: datetime,
    ) -> TokenSet | StillPending:
        """Finish a pending authorization: with the person's ``answer`` (a redirect's
        query), or, for a polled grant (empty ``answer``), by asking the server."""
        ...

    def renew(
        self,
        engine: OAuthEngine,
        settings: ClientSettings,
        profile: ProfileDefinition,
        connection: Connection,
    ) -> TokenSet:
        """New tokens for a connection whose tokens expire (its refresh token, or the
        grant again where it needs no person)."""
        ...


class ObtainedAtOnce:
    """What every grant that needs no person shares: nothing is ever pending."""

    def keeps_credentials(self, profile: ProfileDefinition) -> bool:
        return False

    def complete(
        self,
        engine: OAuthEngine,
        settings: ClientSettings,
        pending: PendingAuthorization,
        answer: Mapping[str, str],
        now: datetime,
    ) -> TokenSet | StillPending:
        raise GrantRefused("invalid_request", "this grant has no pending authorization", None)


class FinishedByPerson:
    """What every grant a person finishes shares: it takes no username and password, keeps
    none, and renews with its refresh token (it cannot run again without that person)."""

    def check_input(
        self, profile: ProfileDefinition, given: GrantInput, kept: Connection | None = None
    ) -> tuple[GrantInput, list[FieldError]]:
        return given, no_credentials(given)

    def keeps_credentials(self, profile: ProfileDefinition) -> bool:
        return False

    def renew(
        self,
        engine: OAuthEngine,
        settings: ClientSettings,
        profile: ProfileDefinition,
        connection: Connection,
    ) -> TokenSet:
        return rfc6749_refresh.renew(engine, settings, connection)


__all__ = [
    "FinishedByPerson",
    "Grant",
    "GrantInput",
    "NextStep",
    "Obtained",
    "ObtainedAtOnce",
    "Pending",
    "PendingAuthorization",
    "StillPending",
    "no_credentials",
]
