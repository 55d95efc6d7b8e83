"""Spans through the OpenTelemetry API, recorded only while a tracer provider is installed.

Tracing is off until something installs a provider: the server does when
``AUTHPROFILES_OTLP_ENDPOINT`` names a collector (:func:`export_spans`), a test does with
an in-memory exporter (:func:`install_tracer_provider`). Off, :func:`span` hands out one
shared do-nothing span, so the token endpoint and the proxy pay a function call for each
span they would open, not the tracing API's context switching.

The provider is this module's own rather than OpenTelemetry's global one: the global can
be set once per process, and the tests start many apps in one process, each wanting its
spans collected afresh.

Only the W3C trace context (``traceparent``, ``tracestate``) travels, in and out. Baggage
does not: it is whatever a caller chose to put there, and it would be sent on to every
identity provider and API a call reaches.

What a span may carry: ids (connection, profile), methods, hosts, route templates, status
codes and outcomes. Never a token, a secret, a header's value, a query string, a body, or
an exception's message (an HTTP library's may quote a URL with a credential in it): a
failure is named by its type alone (``error.type``).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import (
    INVALID_SPAN,
    Span,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    TracerProvider,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from authprofiles import __version__

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider

#: The instrumentation scope every span of this server is recorded under.
SCOPE = "authprofiles"

Attributes = Mapping[str, AttributeValue]

_PROPAGATOR: Final = TraceContextTextMapPropagator()
#: The headers the trace context travels in (lower case), which an outgoing request's own
#: values are replaced by.
TRACE_HEADERS: Final = frozenset(_PROPAGATOR.fields)


class _Installed:
    """The provider spans go to, and its tracer; both None while tracing is off."""

    provider: TracerProvider | None = None
    tracer: Tracer | None = None


_installed = _Installed()


def install_tracer_provider(provider: TracerProvider | None) -> TracerProvider | None:
    """Record spans with ``provider`` from now on (None: tracing off); returns the one it
    replaces, so that a test can put it back."""
    previous = _installed.provider
    _installed.provider = provider
    _installed.tracer = provider.get_tracer(SCOPE, __version__) if provider is not None else None
    return previous


def tracing_enabled() -> bool:
    return _installed.tracer is not None


class SpanExport:
    """Spans sent to an OTLP collector, from :func:`export_spans` until :meth:`shutdown`."""

    def __init__(self, provider: SdkTracerProvider) -> None:
        self.provider = provider

    def shutdown(self) -> None:
        """Send what is still queued, then stop recording (unless another provider was
        installed meanwhile, which stays)."""
        if _installed.provider is self.provider:
            install_tracer_provider(None)
        self.provider.shutdown()


def export_spans(endpoint: str | None, *, service_name: str) -> SpanExport | None:
    """Record spans and send them to the OTLP/HTTP collector at ``endpoint`` (its base URL,
    e.g. ``http://collector:4318``, or its full ``/v1/traces`` URL), in batches from a
    thread of their own. None, and nothing installed, when ``endpoint`` is empty: export
    is off by default.

    The exporter reads the standard ``OTEL_EXPORTER_OTLP_*`` variables for what is not
    given here (headers, timeout, certificates, compression), and the provider
    ``OTEL_TRACES_SAMPLER`` and ``OTEL_RESOURCE_ATTRIBUTES``."""
    if not endpoint or not endpoint.strip():
        return None
    # Imported here: the SDK and the exporter (protobuf, requests) are for a server that
    # exports; one that does not never loads them.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = SdkTracerProvider(
        resource=Resource.create({"service.name": service_name, "service.version": __version__})
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(endpoint))))
    install_tracer_provider(provider)
    return SpanExport(provider)


def traces_url(endpoint: str) -> str:
    """The collector's traces URL: OTLP/HTTP sends spans to ``/v1/traces`` under its base."""
    endpoint = endpoint.strip().rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


class _NoSpan:
    """What :func:`span` gives while tracing is off: one shared object, entered and left
    at the cost of two method calls, whose span ignores whatever is set on it."""

    __slots__ = ()

    def __enter__(self) -> Span:
        return INVALID_SPAN

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None


_NO_SPAN: Final = _NoSpan()


class _CurrentSpan:
    """A started span, current within the ``with`` block and ended when it is left."""

    __slots__ = ("_span", "_token")

    def __init__(self, span: Span) -> None:
        self._span = span
        self._token: object = None

    def __enter__(self) -> Span:
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        return self._span

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if error is not None:
                mark_failed(self._span, error)
        finally:
            otel_context.detach(self._token)  # type: ignore[arg-type]
            self._span.end()


def span(
    name: str,
    attributes: Attributes | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    parent: otel_context.Context | None = None,
) -> _CurrentSpan | _NoSpan:
    """``with span("token.read", {...}) as current:`` a span, child of the current one (or
    of ``parent``, an extracted remote context), current inside the block. An exception
    leaving the block marks it failed, by the exception's type only. While tracing is
    off, ``current`` is a span that records nothing."""
    tracer = _installed.tracer
    if tracer is None:
        return _NO_SPAN
    return _CurrentSpan(tracer.start_span(name, context=parent, kind=kind, attributes=attributes))


def mark_failed(current: Span, error: BaseException) -> None:
    """The span failed: its status says so, and ``error.type`` names the exception's
    class. The message stays out (see the module's description)."""
    current.set_attribute("error.type", type(error).__qualname__)
    current.set_status(Status(StatusCode.ERROR))


def extract_remote_context(traceparent: str, tracestate: str | None) -> otel_context.Context:
    """The context an incoming request's W3C trace context headers continue (an empty one
    when ``traceparent`` is malformed: the request then starts a trace of its own)."""
    carrier = {"traceparent": traceparent}
    if tracestate is not None:
        carrier["tracestate"] = tracestate
    return _PROPAGATOR.extract(carrier)


def inject_trace_context(headers: MutableMapping[str, str]) -> None:
    """Set ``traceparent`` (and ``tracestate``) of the current span on an outgoing request's
    ``headers``, replacing any there; nothing while tracing is off."""
    if _installed.tracer is not None:
        _PROPAGATOR.inject(headers)


def with_trace_context(headers: Sequence[tuple[str, str]]) -> Sequence[tuple[str, str]]:
    """``headers`` (as name-value pairs) with the current span's trace context instead of
    any the caller sent; ``headers`` themselves while tracing is off, so the proxy relays a
    caller's ``traceparent`` untouched when it records no trace of its own."""
    if _installed.tracer is None:
        return headers
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    if not carrier:
        return headers
    kept = [(name, value) for name, value in headers if name.lower() not in TRACE_HEADERS]
    return [*kept, *carrier.items()]


__all__ = [
    "TRACE_HEADERS",
    "Attributes",
    "SpanExport",
    "export_spans",
    "extract_remote_context",
    "inject_trace_context",
    "install_tracer_provider",
    "mark_failed",
    "span",
    "traces_url",
    "tracing_enabled",
    "with_trace_context",
]
