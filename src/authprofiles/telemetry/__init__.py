"""Traces and metrics: OpenTelemetry spans and Prometheus metrics, neither carrying a secret.

Spans (:mod:`.tracing`) are recorded only once a tracer provider is installed: by the
server when ``AUTHPROFILES_OTLP_ENDPOINT`` is set, by a test with an in-memory exporter.
Metrics (:mod:`.metrics`) are always counted, and served at ``GET /metrics``. The request
middleware (:mod:`.asgi`) is imported by the app alone.

This package imports nothing else of the project, so that every layer may use it: the
use cases open spans and count, the forwarder and the OAuth engine pass the trace on.
"""

from __future__ import annotations

from authprofiles.telemetry.metrics import (
    count_idp_error,
    count_refresh,
    count_token_fetch,
    observe_proxy_latency,
    set_approvals_pending_source,
)
from authprofiles.telemetry.tracing import (
    SpanExport,
    export_spans,
    inject_trace_context,
    install_tracer_provider,
    span,
    tracing_enabled,
    with_trace_context,
)

__all__ = [
    "SpanExport",
    "count_idp_error",
    "count_refresh",
    "count_token_fetch",
    "export_spans",
    "inject_trace_context",
    "install_tracer_provider",
    "observe_proxy_latency",
    "set_approvals_pending_source",
    "span",
    "tracing_enabled",
    "with_trace_context",
]
