"""``ConnectionAuth``: an ``httpx.Auth`` that applies a connection's token to each request.

Following httpx's own design, the auth object is a generator flow: it yields the
request with the credentials applied, looks at the answer, and on the API's auth
error status yields the request once more with a fresh token. The token is cached
until shortly before it expires.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncGenerator, Generator
from typing import TYPE_CHECKING

import httpx

from authprofiles.sdk._client import Token
from authprofiles.sdk._inject import apply_to_url, carries_payload, merge_body

if TYPE_CHECKING:
    from authprofiles.sdk._client import AuthProfilesClient


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

    def _cached(self) -> Token | None:
        with self._lock:
            token = self._token
            if token is None or time.monotonic() - self._fetched_at > self.max_age:
                return None
        left = token.seconds_left()
        return token if left is None or left > self.leeway else None

    def _keep(self, token: Token) -> Token:
        with self._lock:
            self._token = token
            self._fetched_at = time.monotonic()
            if token.auth_error_status_code is not None:
                self._status = token.auth_error_status_code
        return token

    def _newer_than(self, refused: Token) -> Token | None:
        """A token another caller got since ``refused`` was handed out, if any."""
        with self._lock:
            token = self._token
        if token is not None and token.access_token != refused.access_token:
            return token
        return None

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    # -- sync -------------------------------------------------------------------------
    def get(self) -> Token:
        return self._cached() or self._keep(self.client.get_token(self.connection_id))

    def refresh(self, refused: Token) -> Token:
        newer = self._newer_than(refused)
        if newer is not None:
            return newer
        return self._keep(self.client.refresh_token(self.connection_id, refused=refused))

    def auth_error_status(self) -> int:
        if self._status is None:
            self._status = self.client.auth_error_status_code(self.connection_id)
        return self._status

    # -- async ------------------------------------------------------------------------
    async def aget(self) -> Token:
        cached = self._cached()
        if cached is not None:
            return cached
        return self._keep(await self.client.aget_token(self.connection_id))

    async def arefresh(self, refused: Token) -> Token:
        newer = self._newer_than(refused)
        if newer is not None:
            return newer
        return self._keep(await self.client.arefresh_token(self.connection_id, refused=refused))

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

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        request.read()
        token = self.source.get()
        response = yield self.apply(request, token)
        if response.status_code < 400 or response.status_code != self.source.auth_error_status():
            return
        fresh = self.source.refresh(token)
        if fresh.access_token != token.access_token:
            yield self.apply(request, fresh)

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        await request.aread()
        token = await self.source.aget()
        response = yield self.apply(request, token)
        if response.status_code < 400:
            return
        if response.status_code != await self.source.aauth_error_status():
            return
        fresh = await self.source.arefresh(token)
        if fresh.access_token != token.access_token:
            yield self.apply(request, fresh)

    def apply(self, request: httpx.Request, token: Token) -> httpx.Request:
        """A copy of ``request`` with the credentials in place (the original is kept for a
        retry, so nothing is applied twice)."""
        inject = token.inject
        url = apply_to_url(str(request.url), inject.query, inject.path, self.base_url)
        headers = request.headers.copy()
        for name, value in inject.headers.items():
            headers[name] = value
        content = request.content
        if inject.body and carries_payload(request.method, bool(content)):
            content, media = merge_body(content, headers.get("content-type"), inject.body)
            headers["Content-Type"] = media
        # Recomputed from the content given below.
        for name in ("Content-Length", "Transfer-Encoding"):
            headers.pop(name, None)
        return httpx.Request(
            request.method,
            url,
            headers=headers,
            content=content or None,
            extensions=request.extensions,
        )
