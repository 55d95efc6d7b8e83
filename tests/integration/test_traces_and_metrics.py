"""Traces and metrics end to end: the real app over HTTP, the real IdP, the echo upstream.

A proxied call that brings a ``traceparent`` is one trace, from the request through the
policy decision, the token read and the upstream call, and the upstream continues it; a
refresh is a span of its own; ``/metrics`` counts what happened; the metrics token guards
it when set; and no span or metric carries a token, a secret or a query string.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from pydantic import SecretStr

from authprofiles import telemetry
from authprofiles.composition import Services
from tests.support.app import Live, oauth_profile
from tests.support.echo import EchoServer
from tests.support.idp import IdP
from tests.support.telemetry import SpanCollector, metric_value, metrics_text

pytestmark = pytest.mark.idp

SQLITE_ONLY = True

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN_ID = "b7ad6b7169203331"
QUERY_SECRET = "query-secret-4f1d9c"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """Tracing and counting are the same on every database: one kind is enough."""
    return f"sqlite:///{tmp_path / 'telemetry.db'}"


def _proxied_connection(live: Live, idp: IdP, echo_server: EchoServer) -> tuple[str, str]:
    """A client-credentials connection to the echo upstream: (its id, the client secret)."""
    profile, client = oauth_profile(
        live,
        idp,
        "client-credentials",
        api_base_url=echo_server.url,
        authorization_fields=[{"type": "query", "key": "api_key", "value": QUERY_SECRET}],
    )
    connection_id = str(live.connect(profile["id"])["connection_id"])
    return connection_id, client.client_secret


def _hex_trace(span: ReadableSpan) -> str:
    return f"{span.context.trace_id:032x}"


def test_a_proxied_call_is_one_trace_that_the_upstream_continues(
    live: Live, idp: IdP, echo_server: EchoServer, collected_spans: SpanCollector
) -> None:
    connection_id, client_secret = _proxied_connection(live, idp, echo_server)
    token = live.token(connection_id).json()["access_token"]
    collected_spans.clear()

    response = live.http.get(
        f"/api/v1/proxy/{connection_id}/items/1?caller={QUERY_SECRET}",
        headers={"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01", "tracestate": "c=1"},
    )
    assert response.status_code == 200, response.text
    echoed = response.json()

    request = collected_spans.one("GET /api/v1/proxy/{connection_id}/{path}")
    decision = collected_spans.one("policy.decide")
    reading = collected_spans.one("token.read")
    upstream = collected_spans.one("upstream.call")
    for span in (request, decision, reading, upstream):
        assert _hex_trace(span) == TRACE_ID, span.name
    assert request.kind is SpanKind.SERVER
    assert request.parent is not None and f"{request.parent.span_id:016x}" == CALLER_SPAN_ID
    assert reading.parent is not None and reading.parent.span_id == request.context.span_id
    assert decision.parent is not None and decision.parent.span_id == reading.context.span_id
    assert upstream.parent is not None and upstream.parent.span_id == request.context.span_id
    assert upstream.kind is SpanKind.CLIENT

    # The upstream saw this server's call as the parent, not the caller's span.
    sent = echoed["headers"]["traceparent"]
    assert sent.startswith(f"00-{TRACE_ID}-{upstream.context.span_id:016x}-")
    assert echoed["headers"]["tracestate"] == "c=1"  # W3C: the trace's state goes along

    assert (request.attributes or {})["http.response.status_code"] == 200
    assert (request.attributes or {})["authprofiles.connection_id"] == connection_id
    assert (reading.attributes or {})["authprofiles.connection_id"] == connection_id
    assert (reading.attributes or {})["authprofiles.purpose"] == "proxy"
    assert (decision.attributes or {})["authprofiles.purpose"] == "proxy"
    upstream_attributes = upstream.attributes or {}
    assert upstream_attributes["http.response.status_code"] == 200
    assert upstream_attributes["server.address"] == "127.0.0.1"
    assert upstream_attributes["http.request.method"] == "GET"

    carried = collected_spans.text()
    api_key = live.http.headers["Authorization"].removeprefix("Bearer ")
    for secret in (token, client_secret, QUERY_SECRET, api_key):
        assert secret not in carried


def test_a_refresh_is_a_span_and_a_count(
    live: Live, idp: IdP, echo_server: EchoServer, collected_spans: SpanCollector
) -> None:
    connection_id, _ = _proxied_connection(live, idp, echo_server)
    before = metrics_text(live.url)
    live.expire(connection_id)
    collected_spans.clear()

    response = live.token(connection_id)
    assert response.status_code == 200, response.text

    refresh = collected_spans.one("token.refresh")
    reading = collected_spans.one("token.read")
    assert _hex_trace(refresh) == _hex_trace(reading)
    attributes = refresh.attributes or {}
    assert attributes["authprofiles.outcome"] == "ok"
    assert attributes["authprofiles.connection_id"] == connection_id
    assert response.json()["access_token"] not in collected_spans.text()

    after = metrics_text(live.url)
    refreshes = "authprofiles_token_refreshes_total"
    assert metric_value(after, refreshes, outcome="ok") == (
        metric_value(before, refreshes, outcome="ok") + 1
    )


def test_metrics_count_token_fetches_proxy_latency_and_idp_errors(
    live: Live, idp: IdP, echo_server: EchoServer
) -> None:
    connection_id, _ = _proxied_connection(live, idp, echo_server)
    before = metrics_text(live.url)

    assert live.token(connection_id).status_code == 200
    assert live.http.get(f"/api/v1/proxy/{connection_id}/a").status_code == 200
    assert live.http.delete(f"/api/v1/proxy/{connection_id}/status/404").status_code == 404
    assert live.token("no-such-connection").status_code == 404
    wrong_secret, _ = oauth_profile(live, idp, "client-credentials", client_secret="wrong")
    refused = live.http.post(f"/api/v1/profiles/{wrong_secret['id']}/connections", json={})
    assert refused.status_code >= 400

    after = metrics_text(live.url)

    def grew(sample: str, **labels: str) -> float:
        return metric_value(after, sample, **labels) - metric_value(before, sample, **labels)

    fetches = "authprofiles_token_fetches_total"
    assert grew(fetches, purpose="token", outcome="ok") == 1
    assert grew(fetches, purpose="token", outcome="not_found") == 1
    assert grew(fetches, purpose="proxy", outcome="ok") == 2
    latency = "authprofiles_proxy_latency_seconds_count"
    assert grew(latency, method="GET", status_class="2xx") == 1
    assert grew(latency, method="DELETE", status_class="4xx") == 1
    assert grew("authprofiles_idp_errors_total", kind="invalid_client") >= 1
    assert metric_value(after, "authprofiles_approvals_pending") >= 0
    assert QUERY_SECRET not in after


def test_with_a_metrics_token_set_metrics_need_it(live: Live) -> None:
    live.services.settings.metrics_token = SecretStr("scrape-token-9c1b")
    plain = httpx.get(f"{live.url}/metrics", timeout=30, trust_env=False)
    assert plain.status_code == 401
    assert plain.headers["content-type"] == "application/problem+json"
    # An API key is not the metrics token.
    assert live.http.get("/metrics").status_code == 401
    assert "authprofiles_token_fetches_total" in metrics_text(live.url, "scrape-token-9c1b")


class OtlpCollector:
    """An OTLP/HTTP receiver on a loopback port: each export request it got, decoded."""

    def __init__(self) -> None:
        self.received: list[ExportTraceServiceRequest] = []
        self.paths: list[str] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                collector.paths.append(self.path)
                collector.received.append(ExportTraceServiceRequest.FromString(body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def span_names(self) -> list[str]:
        return [
            span.name
            for request in self.received
            for resources in request.resource_spans
            for scopes in resources.scope_spans
            for span in scopes.spans
        ]


@pytest.fixture
def otlp_collector(services: Services, monkeypatch: pytest.MonkeyPatch) -> Iterator[OtlpCollector]:
    """A collector the app (``live``, started after this) sends its spans to."""
    collector = OtlpCollector()
    services.settings.otlp_endpoint = collector.url
    services.settings.otlp_service_name = "authprofiles-under-test"
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")  # batches go out within 50 ms
    yield collector
    collector.close()


def test_spans_are_sent_to_the_collector_the_setting_names(
    otlp_collector: OtlpCollector, live: Live
) -> None:
    assert telemetry.tracing_enabled()
    response = live.http.get("/api/v1/connections/no-such-connection/token")
    assert response.status_code == 404
    deadline = time.monotonic() + 15
    while "token.read" not in otlp_collector.span_names() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "GET /api/v1/connections/{connection_id}/token" in otlp_collector.span_names()
    assert "token.read" in otlp_collector.span_names()
    assert set(otlp_collector.paths) == {"/v1/traces"}
    resource = otlp_collector.received[0].resource_spans[0].resource
    attributes = {item.key: item.value.string_value for item in resource.attributes}
    assert attributes["service.name"] == "authprofiles-under-test"
    api_key = live.http.headers["Authorization"].removeprefix("Bearer ")
    assert all(api_key.encode() not in r.SerializeToString() for r in otlp_collector.received)
