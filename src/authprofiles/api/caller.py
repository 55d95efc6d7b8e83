"""Who is calling: resolved once per request into a ``Principal``, by one middleware.

:class:`CallerMiddleware` reads the request's credential (an API key today, sent as
``Authorization: Bearer <key>``; a signed-in user's session or an agent's grant would be
read here too) and leaves a :class:`Caller` in the scope's state. The principal is
resolved the first time something asks for it (:func:`principal_of`, which every route
needing a caller reaches through ``deps.CurrentPrincipal``) and remembered, refusal
included. So a route that needs no caller (health, the docs, the OAuth callback, the home
page) answers whatever the request carries, and a route that needs one raises the same
``Unauthenticated`` whichever way it is served.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from authprofiles.core.callers import Principal
from authprofiles.core.errors import DomainError

#: The key, in the ASGI scope's ``state``, under which the request's :class:`Caller` is.
CALLER = "authprofiles.caller"


class KeyVerifier(Protocol):
    """API keys: the one kind of credential a caller presents today."""

    def cached(self, presented: str) -> Principal | None:
        """A recently verified key's principal, without I/O; None when not known."""
        ...

    def authenticate(self, presented: str | None) -> Principal:
        """Verify the key (blocking: it reads the database); raises ``Unauthenticated``."""
        ...


class Caller:
    """The request's caller: resolved on first use, then remembered (a refusal too)."""

    __slots__ = ("_failure", "_key", "_keys", "_principal")

    def __init__(self, key: str | None, keys: KeyVerifier) -> None:
        self._key = key
        self._keys = keys
        self._principal: Principal | None = None
        self._failure: DomainError | None = None

    @property
    def name(self) -> str | None:
        """The principal's name once resolved; None when nothing asked, or it was refused."""
        return self._principal.name if self._principal is not None else None

    async def principal(self) -> Principal:
        """The caller's principal; raises ``Unauthenticated`` for a missing, unknown or
        revoked key (or the error that kept it from being checked), every time asked."""
        if self._principal is not None:
            return self._principal
        if self._failure is not None:
            raise self._failure
        try:
            # A key seen in the last seconds is checked in memory, without a thread hop.
            principal = self._keys.cached(self._key) if self._key else None
            if principal is None:
                principal = await run_in_threadpool(self._keys.authenticate, self._key)
        except DomainError as exc:
            self._failure = exc
            raise
        self._principal = principal
        return principal


def bearer_key(scope: Scope) -> str | None:
    """The credential of ``Authorization: Bearer <credential>`` (RFC 6750 section 2.1; the
    scheme is case-insensitive), or None."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, presented = value.decode("latin-1").partition(" ")
            return (presented.strip() or None) if scheme.lower() == "bearer" else None
    return None


class CallerMiddleware:
    """Pure ASGI middleware leaving each HTTP request's :class:`Caller` in its state."""

    def __init__(self, app: ASGIApp, keys: KeyVerifier) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope.setdefault("state", {})[CALLER] = Caller(bearer_key(scope), self.keys)
        await self.app(scope, receive, send)


def principal_of(connection: HTTPConnection) -> Awaitable[Principal]:
    """The calling principal, resolved once per request; raises ``Unauthenticated``."""
    caller: Caller = connection.scope["state"][CALLER]
    return caller.principal()


__all__ = [
    "CALLER",
    "Caller",
    "CallerMiddleware",
    "KeyVerifier",
    "bearer_key",
    "principal_of",
]
