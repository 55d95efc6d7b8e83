"""Each HTTP request as a server span, and each proxied call's latency.

:class:`RequestTelemetry` wraps every request, the token endpoint and the proxy included,
so it does nothing it does not have to: while tracing is off (the default), a request
outside the proxy goes straight through, and a proxied one costs two clock reads and a
histogram observation.
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authprofiles.telemetry import metrics, tracing

#: The longest path parameter value copied onto a span (ids are 36 characters).
_LONGEST_ID = 64


class RequestTelemetry:
    """Pure ASGI middleware: a server span per HTTP request, continuing the trace of an
    incoming W3C ``traceparent``, and :data:`metrics.PROXY_LATENCY` for the requests under
    ``proxy_prefix``.

    The span is named by the route's template once the router has matched it (``GET
    /api/v1/proxy/{connection_id}/{path}``), never by the path as sent: a path can hold a
    credential (a password reset link's), and the query string is never looked at. It
    carries the method, the route, the status code and, for a route naming one, the
    connection id; no header's value. An answer of 500 or more marks it failed.
    """

    def __init__(self, app: ASGIApp, *, proxy_prefix: str) -> None:
        self.app = app
        self.proxy_prefix = proxy_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        timed = scope["path"].startswith(self.proxy_prefix)
        traced = tracing.tracing_enabled()
        if not timed and not traced:
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        status = 0
        started = perf_counter()

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if timed:
                    metrics.observe_proxy_latency(method, status, perf_counter() - started)
            await send(message)

        if not traced:
            await self.app(scope, receive, send_noting_status)
            return
        known = method if method in metrics.PROXY_METHODS else "_OTHER"
        with tracing.span(
            known if known != "_OTHER" else "HTTP",
            {"http.request.method": known, "url.scheme": scope.get("scheme", "http")},
            kind=SpanKind.SERVER,
            parent=_remote_context(scope),
        ) as current:
            try:
                await self.app(scope, receive, send_noting_status)
            finally:
                _describe(current, scope, known, status)


def _remote_context(scope: Scope) -> Context | None:
    """The trace an incoming ``traceparent`` names, or None when there is none."""
    traceparent = tracestate = None
    for name, value in scope["headers"]:
        if name == b"traceparent":
            traceparent = value.decode("latin-1")
        elif name == b"tracestate":
            tracestate = value.decode("latin-1")
    if traceparent is None:
        return None
    return tracing.extract_remote_context(traceparent, tracestate)


def _describe(current: Span, scope: Scope, method: str, status: int) -> None:
    """What the request turned out to be, once served: its route, status and connection."""
    route: Any = scope.get("route")
    template = getattr(route, "path_format", None)
    if isinstance(template, str):
        if method != "_OTHER":
            current.update_name(f"{method} {template}")
        current.set_attribute("http.route", template)
    params = scope.get("path_params")
    if params:
        connection_id = params.get("connection_id")
        if isinstance(connection_id, str) and len(connection_id) <= _LONGEST_ID:
            current.set_attribute("authprofiles.connection_id", connection_id)
    if status:
        current.set_attribute("http.response.status_code", status)
        if status >= 500:
            current.set_status(Status(StatusCode.ERROR))


__all__ = ["RequestTelemetry"]
