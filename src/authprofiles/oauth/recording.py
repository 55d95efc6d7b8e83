"""The profile test's HTTP client: every exchange recorded, with httpx event hooks.

One :class:`RecordingHttpClient` serves one test run. Its ``event_hooks`` go on every
httpx client the run uses: the OAuth engine's (the token requests authlib sends) and
the client :meth:`RecordingHttpClient.send` builds (the authorization URL probe and the
token test URL's call). The hooks see each request as it goes out, credentials applied,
and each answer before anyone reads it; they keep a copy as pure data
(``core.exchanges``), so a failure shows what was sent and what came back.

The clients run on the shared pools of ``Transports`` (egress routes included), which
they never close: closing an httpx client closes its transport.

Redirects: no request that carries a credential follows one to another origin (scheme,
host and port). httpx would drop only ``Authorization`` there and carry the profile's
header fields along, and the Location may name any host. :func:`send_within_origin`
follows those that stay on the request's origin and stops at the first that leaves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from authprofiles.core.exchanges import (
    MAX_REDIRECTS,
    Answer,
    Exchange,
    ExchangeFailed,
    RecordedRequest,
    RecordedResponse,
    Redirect,
    display_body,
    origin,
)
from authprofiles.oauth.transport import Transports


class RecordingHttpClient:
    """Records every exchange of one profile test run (see the module's docstring)."""

    def __init__(self, transports: Transports) -> None:
        self._transports = transports
        self.exchanges: list[Exchange] = []
        # Requests sent and not yet answered, by identity: httpx hands the response hook
        # the very request object the request hook saw.
        self._unanswered: dict[int, Exchange] = {}

    @property
    def event_hooks(self) -> dict[str, list[Callable[..., Any]]]:
        """For ``httpx.Client(event_hooks=...)`` (and the OAuth engine's)."""
        return {"request": [self._on_request], "response": [self._on_response]}

    def send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        egress_proxy_url: str | None = None,
        follow_within_origin: bool = False,
    ) -> Answer:
        """Send one request; with ``follow_within_origin``, follow the redirects that stay
        on its origin (none otherwise). Raises :class:`ExchangeFailed` when no answer
        came."""
        client = httpx.Client(
            transport=self._transports.sync(egress_proxy_url),
            timeout=self._transports.timeout,
            trust_env=False,
            event_hooks=self.event_hooks,
        )
        request = client.build_request(method, url, headers=headers, content=content)
        redirects: list[Redirect] = []
        try:
            if follow_within_origin:
                response = send_within_origin(client, request, redirects)
            else:
                response = client.send(request, follow_redirects=False)
        except httpx.HTTPError as exc:
            self.record_failure(exc)
            raise ExchangeFailed(
                type(exc).__name__,
                str(exc),
                timeout=isinstance(exc, httpx.TimeoutException),
                redirects=tuple(redirects),
            ) from None
        return Answer(
            url=str(response.request.url),
            status_code=response.status_code,
            headers=_header_dict(response.headers),
            redirects=tuple(redirects),
        )

    def record_failure(self, error: BaseException) -> None:
        """Note why the request still unanswered got no answer: the httpx error that
        ``error`` is or was raised from (the OAuth engine raises its own errors from
        httpx's)."""
        cause: BaseException | None = error
        while cause is not None and not isinstance(cause, httpx.HTTPError):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            return
        for exchange in self._unanswered.values():
            exchange.response = RecordedResponse(
                status_code=None, headers={}, error=f"{type(cause).__name__}: {cause}"
            )
        self._unanswered.clear()

    # -- the hooks ------------------------------------------------------------------------
    def _on_request(self, request: httpx.Request) -> None:
        exchange = Exchange(
            RecordedRequest(
                method=request.method,
                url=str(request.url),
                headers=_header_dict(request.headers),
                body=display_body(request.read(), request.headers.get("content-type")),
            )
        )
        self.exchanges.append(exchange)
        self._unanswered[id(request)] = exchange

    def _on_response(self, response: httpx.Response) -> None:
        exchange = self._unanswered.pop(id(response.request), None)
        if exchange is None:
            return
        # The hook runs before the body is read; read it here (whoever sent the request
        # gets it all the same, from memory) to keep it.
        body = response.read()
        exchange.response = RecordedResponse(
            status_code=response.status_code,
            headers=_header_dict(response.headers),
            body=display_body(body, response.headers.get("content-type")),
        )


def send_within_origin(
    client: httpx.Client, request: httpx.Request, redirects: list[Redirect]
) -> httpx.Response:
    """Send, following redirects only while they stay on the request's origin, at most
    :data:`MAX_REDIRECTS` of them.

    Each redirect met is appended to ``redirects``; the answer returned is the last one
    received (a redirect itself when one was not followed).
    """
    start = origin(str(request.url))
    response = client.send(request, follow_redirects=False)
    # httpx builds the next request as it would follow it (RFC 9110 section 15.4: 303
    # turns into GET, the body goes with 307 and 308), without sending it.
    while response.next_request is not None:
        target = response.next_request
        follow = origin(str(target.url)) == start and len(redirects) < MAX_REDIRECTS
        redirects.append(
            Redirect(
                url=str(response.request.url),
                status_code=response.status_code,
                location=str(target.url),
                followed=follow,
            )
        )
        if not follow:
            break
        response.close()
        response = client.send(target, follow_redirects=False)
    return response


def _header_dict(headers: httpx.Headers) -> dict[str, str]:
    """Header names in lower case (as httpx keeps them), repeated fields joined."""
    out: dict[str, str] = {}
    for name, value in headers.multi_items():
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


__all__ = ["RecordingHttpClient", "send_within_origin"]
