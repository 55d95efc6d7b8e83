"""Who is calling: resolved once per request into a ``Principal``, by one middleware.

:class:`CallerMiddleware` reads the request's credential and leaves a :class:`Caller` in
the scope's state. The credential is an API key (``Authorization: Bearer <key>``) or,
when the request carries none, a signed-in person's session cookie
(``authprofiles_session``): a session works wherever an API key does. A bearer key wins
over a cookie, and its path is what it was: the cookie is not even looked at.

A session brings two duties a key does not. CSRF: a browser sends cookies with requests
other sites make it send, so a request with the cookie and an unsafe method (anything
but GET, HEAD, OPTIONS) must carry the session's CSRF token in ``X-CSRF-Token``
(pages have it in ``<meta name="csrf-token">``, and ``GET /signin/csrf`` answers it);
without it, 403. Rotation: when the session's token is replaced, the response carries
the new cookie (``Set-Cookie``). The principal is
resolved the first time something asks for it (:func:`principal_of`, which every route
needing a caller reaches through ``deps.CurrentPrincipal``) and remembered, refusal
included. So a route that needs no caller (health, the docs, the OAuth callback, the home
page) answers whatever the request carries, and a route that needs one raises the same
``Unauthenticated`` whichever way it is served.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import Protocol

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection, cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authprofiles.core.callers import Principal
from authprofiles.core.errors import DomainError, Forbidden
from authprofiles.services.agent_grants import is_agent_credential
from authprofiles.services.signin.sessions import (
    CSRF_HEADER,
    SAFE_METHODS,
    SESSION_COOKIE,
    ActiveSession,
    csrf_matches,
)

#: The key, in the ASGI scope's ``state``, under which the request's :class:`Caller` is.
CALLER = "authprofiles.caller"


class KeyVerifier(Protocol):
    """API keys: the one kind of credential a caller presents today."""

    def cached(self, presented: str, address: str | None = None) -> Principal | None:
        """A recently verified key's principal, as presented from ``address``, without
        I/O; None when not known."""
        ...

    def authenticate(self, presented: str | None, address: str | None = None) -> Principal:
        """Verify the key (blocking: it reads the database) and give its principal, calling
        from ``address``; raises ``Unauthenticated``."""
        ...


class SessionVerifier(Protocol):
    """Signed-in people's sessions (``services.signin.Sessions``)."""

    def resolve(self, token: str | None, address: str | None = None) -> ActiveSession:
        """The session of the cookie's token (blocking: it reads the database); raises
        ``Unauthenticated`` when there is none or it ended."""
        ...

    def cookie(self, token: str, expires_at: datetime) -> str:
        """The ``Set-Cookie`` value of a rotated token."""
        ...


class BearerCredentials:
    """API keys and agent grants (and the access tokens issued for those), told apart by
    their prefix: each verified by its own service."""

    def __init__(self, keys: KeyVerifier, agents: KeyVerifier) -> None:
        self.keys = keys
        self.agents = agents

    def _of(self, presented: str | None) -> KeyVerifier:
        return self.agents if presented and is_agent_credential(presented) else self.keys

    def cached(self, presented: str, address: str | None = None) -> Principal | None:
        return self._of(presented).cached(presented, address)

    def authenticate(self, presented: str | None, address: str | None = None) -> Principal:
        return self._of(presented).authenticate(presented, address)


class Caller:
    """The request's caller: resolved on first use, then remembered (a refusal too).

    ``scope`` (the request's) gives the client address, and, when no key came and
    ``sessions`` is given, the session cookie and the CSRF header."""

    __slots__ = ("_failure", "_key", "_keys", "_principal", "_scope", "_sessions", "set_cookie")

    def __init__(
        self,
        key: str | None,
        keys: KeyVerifier,
        sessions: SessionVerifier | None = None,
        scope: Scope | None = None,
    ) -> None:
        self._key = key
        self._keys = keys
        self._sessions = sessions
        self._scope = scope
        self._principal: Principal | None = None
        self._failure: DomainError | None = None
        #: A ``Set-Cookie`` value the response must carry (a rotated session token).
        self.set_cookie: str | None = None

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
            principal: Principal | None
            token = None
            if self._key is None and self._sessions is not None and self._scope is not None:
                token = session_token(self._scope)
            if token is not None:
                principal = await self._session_principal(token)
            else:
                # A key seen in the last seconds from this address is checked in memory,
                # without a thread hop (the principal names the address: the audit log says
                # where each call came from).
                address = client_address(self._scope)
                principal = self._keys.cached(self._key, address) if self._key else None
                if principal is None:
                    principal = await run_in_threadpool(self._keys.authenticate, self._key, address)
        except DomainError as exc:
            self._failure = exc
            raise
        self._principal = principal
        return principal

    async def _session_principal(self, token: str) -> Principal:
        assert self._sessions is not None and self._scope is not None
        active = await run_in_threadpool(self._sessions.resolve, token, client_address(self._scope))
        if active.new_token is not None:
            self.set_cookie = self._sessions.cookie(active.new_token, active.expires_at)
        if self._scope.get("method", "GET") not in SAFE_METHODS and not csrf_matches(
            active.csrf_token, header(self._scope, _CSRF_HEADER)
        ):
            raise Forbidden(
                f"a request signed in by cookie that changes something must send the "
                f"session's CSRF token in the {CSRF_HEADER} header (GET /signin/csrf)"
            )
        return active.principal


_CSRF_HEADER = CSRF_HEADER.lower().encode("latin-1")


def client_address(scope: Scope | None) -> str | None:
    """The client's address as the server saw it (behind a proxy: as the server's proxy
    header handling set it)."""
    client = scope.get("client") if scope is not None else None
    return str(client[0]) if client else None


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of the header ``name`` (lower case), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def session_token(scope: Scope) -> str | None:
    """The session cookie's value, or None."""
    for key, value in scope["headers"]:
        if key == b"cookie":
            token = cookie_parser(value.decode("latin-1")).get(SESSION_COOKIE)
            if token:
                return token
    return None


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

    def __init__(
        self, app: ASGIApp, keys: KeyVerifier, sessions: SessionVerifier | None = None
    ) -> None:
        self.app = app
        self.keys = keys
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        key = bearer_key(scope)
        if key is not None or self.sessions is None:
            scope.setdefault("state", {})[CALLER] = Caller(key, self.keys, scope=scope)
            await self.app(scope, receive, send)
            return
        caller = Caller(None, self.keys, self.sessions, scope)
        scope.setdefault("state", {})[CALLER] = caller

        async def send_rotated_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and caller.set_cookie is not None:
                headers = [*message.get("headers", []), (b"set-cookie", caller.set_cookie.encode())]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_rotated_cookie)


def principal_of(connection: HTTPConnection) -> Awaitable[Principal]:
    """The calling principal, resolved once per request; raises ``Unauthenticated``."""
    caller: Caller = connection.scope["state"][CALLER]
    return caller.principal()


__all__ = [
    "CALLER",
    "BearerCredentials",
    "Caller",
    "CallerMiddleware",
    "KeyVerifier",
    "SessionVerifier",
    "bearer_key",
    "client_address",
    "principal_of",
    "session_token",
]
