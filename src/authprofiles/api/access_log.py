"""One access line per request: method, path, status, duration, caller and client.

The path is logged as it came on the wire and without its query string: a query sent
through the proxy may hold a credential for the upstream API. A path that is itself a
credential (a password reset link, ``/reset/{token}``) is logged with that segment
replaced by ``[redacted]``. No header is logged, so
neither an API key nor a token ever is. The caller is the name of the principal the
request was served for (its API key's name), as the caller middleware resolved it
(:mod:`authprofiles.api.caller`); ``-`` when the request needed no caller or its key was
refused.

It wraps every request, the token route and the proxy included, so it does as little as
it can: one clock read at each end and one closure to see the status go by.
"""

from __future__ import annotations

import logging
from time import perf_counter
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authprofiles.api.caller import CALLER, Caller

log = logging.getLogger("authprofiles.access")


class AccessLog:
    """Pure ASGI middleware writing one INFO line to ``authprofiles.access`` per HTTP
    request, once the app is done with it (a streamed answer: once it has all gone).

    The line's fields are also on the record (``method``, ``path``, ``status``,
    ``duration_ms``, ``caller``, ``client``), which the JSON log format writes as they are.
    ``status`` is 0 when no answer was started (the client went away first).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        # The caller middleware, deeper in the stack, leaves the request's caller here.
        state: dict[str, Any] = scope.setdefault("state", {})
        status = 0

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = perf_counter()
        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            duration_ms = round((perf_counter() - started) * 1000, 1)
            method: str = scope["method"]
            path = wire_path(scope)
            resolved: Caller | None = state.get(CALLER)
            caller = (resolved.name if resolved is not None else None) or "-"
            client = scope.get("client")
            address = client[0] if client else "-"
            log.info(
                "%s %s %s %.1fms caller=%s client=%s",
                method,
                path,
                status,
                duration_ms,
                caller if caller.isprintable() and " " not in caller else repr(caller),
                address,
                extra={
                    "method": method,
                    "path": path,
                    "status": status,
                    "duration_ms": duration_ms,
                    "caller": caller,
                    "client": address,
                },
            )


#: Paths whose next segment is a credential (the reset link's token), and the words
#: logged in its place.
SECRET_PATH_PREFIXES = ("/reset/",)
REDACTED = "[redacted]"


def wire_path(scope: Scope) -> str:
    """The path as sent (percent-encoded, so it never holds a line break), without the
    query string, which ASGI keeps apart but an older server may have left on it. Under
    one of :data:`SECRET_PATH_PREFIXES` (decided on the decoded path, the one the routes
    match, so a percent-encoded spelling is redacted too) the rest is :data:`REDACTED`."""
    decoded: str = scope.get("path", "")
    for prefix in SECRET_PATH_PREFIXES:
        if decoded.startswith(prefix):
            return prefix + REDACTED
    raw: bytes | None = scope.get("raw_path")
    if raw:
        return raw.partition(b"?")[0].decode("ascii", "backslashreplace")
    from urllib.parse import quote

    return quote(scope["path"])
