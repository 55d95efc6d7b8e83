"""Protocols the outer layers implement, so the core and the services name no library.

Services receive these through their constructors; the composition root wires the real
adapters (``store``, ``oauth``, ``forwarding``), and unit tests wire fakes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from authprofiles.core.audit import AuditEntry
from authprofiles.core.callers import CredentialRequest, Principal, Purpose
from authprofiles.core.connections import Connection, DerivedOnce, TokenSet
from authprofiles.core.exchanges import Answer, Exchange
from authprofiles.core.injection import Injection
from authprofiles.core.notices import Notice
from authprofiles.core.profiles import Profile


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

    def decides_in_memory(self, principal: Principal) -> bool:
        """Whether ``authorize`` can answer for ``principal`` with no I/O (what it needs
        is remembered), so that an async caller may ask it on the event loop."""
        ...


class TokenCache(Protocol):
    """Where a worker keeps tokens it handed out a moment ago: told when a connection's
    tokens change or go, so that nobody is served the old ones."""

    def forget(self, connection_id: str) -> None: ...


class AuditTrail(Protocol):
    """The append-only audit log."""

    def record(self, entry: AuditEntry, unit: Any | None = None) -> None:
        """Append ``entry``: within the open unit of work ``unit`` when given (so it
        commits with the change it tells of), else in a short transaction of its own."""
        ...


class Notifier(Protocol):
    """Turns a notice into outbox messages, inside the unit of work ``unit`` of the
    change it tells of: a restart loses none, and none is sent twice."""

    def notify(self, unit: Any, notice: Notice) -> None: ...


class DiscardAudit:
    """An audit trail that keeps nothing (unit tests of services that need none)."""

    def record(self, entry: AuditEntry, unit: Any | None = None) -> None:
        return None


class DiscardNotices:
    def notify(self, unit: Any, notice: Notice) -> None:
        return None


# -- the proxy's ports ------------------------------------------------------------------


class ConnectionReader(Protocol):
    """Reads a connection with its profile, secrets decrypted; ``NotFound`` when there is
    none in ``workspace_id`` (None: in any workspace)."""

    def read(self, workspace_id: str | None, connection_id: str) -> tuple[Connection, Profile]: ...


class IssuedCredential(Protocol):
    """A token handed out for one connection, with the connection and profile it was read
    with. ``derived`` keeps what callers worked out from it once (a reused token is not
    worked out again)."""

    @property
    def connection(self) -> Connection: ...

    @property
    def profile(self) -> Profile: ...

    @property
    def tokens(self) -> TokenSet: ...

    @property
    def derived(self) -> DerivedOnce: ...

    def injection(self) -> Injection: ...


IssuedT_co = TypeVar("IssuedT_co", bound=IssuedCredential, covariant=True)
T = TypeVar("T")


class TokenSource(Protocol[IssuedT_co]):
    """Valid tokens read from where they are kept, refreshed first when due (the token
    service, whose refresh is single-flight across workers)."""

    def get_token(
        self,
        principal: Principal,
        connection_id: str,
        *,
        purpose: Purpose = ...,
        method: str | None = ...,
        host: str | None = ...,
        path: str | None = ...,
    ) -> IssuedT_co:
        """Asks the policy about this use first, then reads (and refreshes if due)."""
        ...

    def force_refresh(
        self, principal: Principal, connection_id: str, seen_version: int
    ) -> IssuedT_co:
        """Refresh once, unless the token seen (``seen_version``) was replaced already."""
        ...


class TokenIssuer(TokenSource[IssuedT_co], Protocol[IssuedT_co]):
    """Valid tokens on demand, as the proxy and the SDK's refresh endpoint use them: a
    token source with the worker's memory of the tokens it handed out in front of it
    (``services.token_issuing``)."""

    def reusable(self, principal: Principal, connection_id: str) -> IssuedT_co | None:
        """A token handed out a moment ago and still valid, without I/O; the caller asks
        the policy about its own use before applying it."""
        ...

    def last_issued(self, connection_id: str) -> IssuedT_co | None:
        """The last token handed out, however old: a hint, never a credential to use."""
        ...

    def forget(self, connection_id: str) -> None: ...

    async def reuse_or_read(
        self,
        connection_id: str,
        from_memory: Callable[[], T | None],
        read: Callable[[], Awaitable[T]],
    ) -> T:
        """``from_memory()`` when it finds something, else ``read()``, shared by the
        concurrent callers for one connection."""
        ...


@dataclass(frozen=True, slots=True)
class OutboundRequest:
    """A request planned to the last byte: ``url`` is encoded and checked, ``headers``
    carry the credentials, and the forwarder sends them exactly as given."""

    method: str
    url: str
    headers: Sequence[tuple[str, str]]
    #: Bytes (replayable) or a stream read once; None for no body.
    body: bytes | AsyncIterator[bytes] | None
    #: Names the upstream in errors.
    host: str
    egress_proxy_url: str | None = None


class UpstreamBodyBrokeOff(Exception):
    """The upstream's body ended before its headers said it would, or the connection
    broke while it streamed. Not a ``DomainError``: once the response has begun, the
    edge can only cut the caller's connection."""


class ForwardedResponse(Protocol):
    """The upstream's answer, body not yet read. Whoever receives it reads the body
    (``read`` or ``iter_raw``, which raise :class:`UpstreamBodyBrokeOff`) and calls
    ``release``, also when the caller goes away."""

    @property
    def status(self) -> int: ...

    @property
    def raw_headers(self) -> Sequence[tuple[bytes, bytes]]:
        """As received, hop-by-hop fields included."""
        ...

    async def read(self) -> bytes:
        """The whole body as sent (still compressed, if it was); releases."""
        ...

    def iter_raw(self) -> AsyncIterator[bytes]:
        """The body as sent, chunk by chunk as it arrives."""
        ...

    async def release(self) -> None:
        """Done with it: a body read to its end gives the connection back to the pool."""
        ...


class Forwarder(Protocol):
    """Sends a planned request upstream. Failing to get an answer raises
    ``UpstreamTimeout`` or ``UpstreamError`` naming the host; their text may quote the
    request, so the caller redacts it before it goes further."""

    async def send(self, request: OutboundRequest) -> ForwardedResponse: ...


# -- the profile test's ports -------------------------------------------------------------


class ConfiguredProfileReader(Protocol):
    """Reads a profile of the caller's workspace that can be used: ``NotFound`` when
    there is none, ``NotConfigured`` (naming the fields) when mandatory fields are empty."""

    def get_configured(self, principal: Principal, profile_id: str) -> Profile: ...


class RecordingHttpClient(Protocol):
    """One profile test run's HTTP: every exchange it sends, and every one sent by an
    OAuth engine given its ``event_hooks``, is recorded in ``exchanges``."""

    @property
    def exchanges(self) -> Sequence[Exchange]: ...

    @property
    def event_hooks(self) -> Mapping[str, list[Callable[..., Any]]]:
        """Hooks for the HTTP clients the run's OAuth engine builds."""
        ...

    def send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = ...,
        content: bytes | None = ...,
        egress_proxy_url: str | None = ...,
        follow_within_origin: bool = ...,
    ) -> Answer:
        """Send one request (following only the redirects within its origin, if asked);
        raises ``ExchangeFailed`` when no answer came."""
        ...

    def record_failure(self, error: BaseException) -> None:
        """Note on the request still unanswered why no answer came (``error`` raised by
        a call through the engine)."""
        ...


__all__ = [
    "AuditTrail",
    "Clock",
    "ConfiguredProfileReader",
    "ConnectionReader",
    "CredentialPolicy",
    "DiscardAudit",
    "DiscardNotices",
    "ForwardedResponse",
    "Forwarder",
    "IssuedCredential",
    "Notifier",
    "OutboundRequest",
    "RecordingHttpClient",
    "SecretCipher",
    "SystemClock",
    "TokenIssuer",
    "TokenSource",
    "UpstreamBodyBrokeOff",
]
