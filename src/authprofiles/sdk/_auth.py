"""``ConnectionAuth``: an ``httpx.Auth`` that applies a connection's token to each request.

Following httpx's own design (its ``DigestAuth``), the auth object is one generator,
:meth:`ConnectionAuth.auth_flow`, that yields requests and receives their answers: the
token request to the authprofiles API (unless a cached token will do), the request with
the credentials in place, and, when the answer has the profile's auth error status,
the refresh request and the request once more with the fresh token
(:class:`~authprofiles.wire.refresh_once.RefreshOnce`). The same generator serves sync and
async clients; only sending the authprofiles API's own requests differs between them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncGenerator, Generator
from typing import TYPE_CHECKING, Any

import httpx

from authprofiles.sdk._client import ServerRequest, Token, _decode, _id, auth_error_status_of
from authprofiles.wire.injection import place
from authprofiles.wire.refresh_once import RefreshOnce

if TYPE_CHECKING:
    from authprofiles.sdk._client import AuthProfilesClient

#: What a profile's API answers a refused token with when the profile does not say.


class TokenSource:
    """One connection's token, cached; shared by sync and async callers (thread-safe).

    ``leeway``: a token is fetched anew this many seconds before ``expires_at``.
    ``max_age``: and at the latest after this many seconds (tokens without an expiry,
    or rotated by the server's background refresh).
    """

    def __init__(
        self,
        client: AuthProfilesClient,
        connection_id: str,
        *,
        leeway: float = 30.0,
        max_age: float = 300.0,
        auth_error_status_code: int | None = None,
    ) -> None:
        self.client = client
        self.connection_id = connection_id
        self.leeway = leeway
        self.max_age = max_age
        self._status = auth_error_status_code
        self._lock = threading.Lock()
        self._token: Token | None = None
        self._fetched_at = 0.0

    def cached(self) -> Token | None:
        """The cached token while it is fresh enough to send (see ``leeway``, ``max_age``)."""
        with self._lock:
            token = self._token
            if token is None or time.monotonic() - self._fetched_at > self.max_age:
                return None
        left = token.seconds_left()
        return token if left is None or left > self.leeway else None

    def keep(self, token: Token) -> Token:
        """Cache a token just fetched (and its profile's auth error status)."""
        with self._lock:
            self._token = token
            self._fetched_at = time.monotonic()
            if token.auth_error_status_code is not None:
                self._status = token.auth_error_status_code
        return token

    def newer_than(self, refused: Token) -> Token | None:
        """A token another caller got since ``refused`` was handed out, if any."""
        with self._lock:
            token = self._token
        if token is not None and token.access_token != refused.access_token:
            return token
        return None

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    @property
    def known_auth_error_status(self) -> int | None:
        """The profile's auth error status, when given or learnt with a token (the API
        sends it with each); None until then."""
        return self._status

    def learn_auth_error_status(self, status: int) -> int:
        """Remember the status looked up from the profile (an API that does not send it
        with the token)."""
        self._status = status
        return status

    # -- sync -------------------------------------------------------------------------
    def get(self) -> Token:
        return self.cached() or self.keep(self.client.get_token(self.connection_id))

    def refresh(self, refused: Token) -> Token:
        newer = self.newer_than(refused)
        if newer is not None:
            return newer
        return self.keep(self.client.refresh_token(self.connection_id, refused=refused))

    def auth_error_status(self) -> int:
        if self._status is None:
            self._status = self.client.auth_error_status_code(self.connection_id)
        return self._status

    # -- async ------------------------------------------------------------------------
    async def aget(self) -> Token:
        cached = self.cached()
        if cached is not None:
            return cached
        return self.keep(await self.client.aget_token(self.connection_id))

    async def arefresh(self, refused: Token) -> Token:
        newer = self.newer_than(refused)
        if newer is not None:
            return newer
        return self.keep(await self.client.arefresh_token(self.connection_id, refused=refused))

    async def aauth_error_status(self) -> int:
        if self._status is None:
            self._status = await self.client.aauth_error_status_code(self.connection_id)
        return self._status


class ConnectionCredentials:
    """What both auth adapters hold: the connection's token source and the API's base URL
    (for path fields). The options are documented on :class:`ConnectionAuth`."""

    def __init__(
        self,
        client: AuthProfilesClient,
        connection_id: str,
        *,
        base_url: str | None = None,
        auth_error_status_code: int | None = None,
        leeway: float = 30.0,
        max_age: float = 300.0,
    ) -> None:
        self.source = TokenSource(
            client,
            connection_id,
            leeway=leeway,
            max_age=max_age,
            auth_error_status_code=auth_error_status_code,
        )
        self.base_url = base_url


class ConnectionAuth(ConnectionCredentials, httpx.Auth):
    """``httpx.Client(auth=ConnectionAuth(client, connection_id))``: every request gets the
    connection's token and authorization fields (headers, query, body, path), and one
    refused with the profile's auth error status is retried once with a fresh token.

    ``base_url``: the API's base URL; a path field the URL has no ``{{key}}`` for goes
    right after its path (as the server's proxy does). ``auth_error_status_code``:
    skip looking it up from the profile.
    """

    # The body is read before the flow starts, so it can be sent a second time.
    requires_request_body = True

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """The token (cached, or asked of the authprofiles API), the request with it, and
        on the profile's auth error status one refresh and one resend."""
        source, client = self.source, self.source.client
        token = source.cached()
        if token is None:
            fetched = yield client.token_request(source.connection_id)
            token = source.keep(Token.from_response(fetched))
        response = yield self.apply(request, token)

        status = source.known_auth_error_status
        if status is None:
            if response.status_code < 400:
                return  # only a refusal needs to know the status
            status = yield from self._look_up_auth_error_status()
        if not RefreshOnce(status).on_response(response.status_code):
            return
        fresh = source.newer_than(token)
        if fresh is None:
            refreshed = yield client.refresh_request(source.connection_id, refused=token)
            fresh = source.keep(Token.from_response(refreshed))
        if fresh.access_token != token.access_token:
            yield self.apply(request, fresh)  # its answer is the caller's, whatever it is

    def _look_up_auth_error_status(self) -> Generator[httpx.Request, httpx.Response, int]:
        """From the connection's profile, for an API that did not send it with the token."""
        client, connection_id = self.source.client, self.source.connection_id
        connection = yield client.build_request("GET", f"/connections/{_id(connection_id)}")
        profile_id = str(_json(connection)["profile_id"])
        profile = yield client.build_request("GET", f"/profiles/{_id(profile_id)}")
        return self.source.learn_auth_error_status(auth_error_status_of(_json(profile)))

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """Drive :meth:`auth_flow` for a sync client: the authprofiles API's requests go
        through the SDK's own client (:class:`ServerRequest`), the others to the caller's.
        :meth:`async_auth_flow` is the same loop, awaiting the API's answers."""
        request.read()
        flow = self.auth_flow(request)
        outgoing = next(flow)
        while True:
            if isinstance(outgoing, ServerRequest):
                answer = self.source.client.send(outgoing)
            else:
                answer = yield outgoing
            try:
                outgoing = flow.send(answer)
            except StopIteration:
                return

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        await request.aread()
        flow = self.auth_flow(request)
        outgoing = next(flow)
        while True:
            if isinstance(outgoing, ServerRequest):
                answer = await self.source.client.asend(outgoing)
            else:
                answer = yield outgoing
            try:
                outgoing = flow.send(answer)
            except StopIteration:
                return

    def apply(self, request: httpx.Request, token: Token) -> httpx.Request:
        """A copy of ``request`` with the credentials in place (the original is kept for a
        retry, so nothing is applied twice)."""
        placed = place(
            token.inject,
            method=request.method,
            url=str(request.url),
            body=request.content,
            content_type=request.headers.get("content-type"),
            base_url=self.base_url,
        )
        headers = request.headers.copy()
        for name, value in placed.headers.items():
            headers[name] = value  # replaces the caller's of that name, whatever its case
        content = request.content
        if placed.body is not None:
            content = placed.body
            headers["Content-Type"] = placed.content_type
        # Recomputed from the content given below.
        for name in ("Content-Length", "Transfer-Encoding"):
            headers.pop(name, None)
        return httpx.Request(
            request.method,
            placed.url,
            headers=headers,
            content=content or None,
            extensions=request.extensions,
        )


def _json(response: httpx.Response) -> dict[str, Any]:
    """An authprofiles API answer's JSON object; an error raises ``AuthProfilesError``."""
    return dict(_decode(response))
