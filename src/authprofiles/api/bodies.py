"""What the API takes as a request body: JSON, of at most ``max_body_bytes``.

A body over the limit is refused with 413 before it is read whole: at once when its
``Content-Length`` says so, else (a chunked body) as soon as the bytes read pass the
limit, counted by Starlette's ``RequestBodyLimitMiddleware``. A body that is not JSON is
refused with 415 before anything parses it.

The proxy is left alone: it streams bodies of any size and type to the upstream API,
which is the one to say what it takes.
"""

from __future__ import annotations

from email.message import Message

from starlette.datastructures import Headers
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from authprofiles.api.problems import problem, too_large_detail


def is_json(content_type: str) -> bool:
    """``application/json`` or any ``application/*+json`` (RFC 6839), parameters aside."""
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def not_json_detail(content_type: str) -> str:
    """What a 415 says: what came, and the header to set."""
    if not content_type:
        return (
            "the request body came with no Content-Type header: set Content-Type: "
            "application/json and send JSON"
        )
    return (
        f"the request body came as {content_type!r}, which this API does not read: set "
        "Content-Type: application/json and send JSON"
    )


class RequestBodyGuard:
    """413 for a body over ``max_bytes`` and 415 for one that is not JSON, on every path
    under ``api_prefix`` but ``exempt`` (the proxy); other paths only get the size limit."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, api_prefix: str, exempt: str) -> None:
        self.app = app
        self.limited = RequestBodyLimitMiddleware(app, max_body_size=max_bytes)
        self.max_bytes = max_bytes
        self.api_prefix = api_prefix
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or path == self.exempt or path.startswith(self.exempt + "/"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        length = headers.get("content-length", "")
        declared = int(length) if length.isdigit() else None
        chunked = "transfer-encoding" in headers
        if not declared and not chunked:
            # No body (RFC 9112 section 6.3): the hot GETs pay for no more than this.
            await self.app(scope, receive, send)
            return
        if declared is not None and declared > self.max_bytes:
            response = problem(413, "Content too large", too_large_detail(self.max_bytes))
            await response(scope, receive, send)
            return
        if path.startswith(self.api_prefix + "/"):
            content_type = headers.get("content-type", "")
            if not is_json(content_type):
                response = problem(415, "Unsupported media type", not_json_detail(content_type))
                await response(scope, receive, send)
                return
        await self.limited(scope, receive, send)
