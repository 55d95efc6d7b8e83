"""Traces and metrics without sockets or a database: the metrics' text and its labels, the
metrics token on ``GET /metrics``, the spans the policy and the request middleware make,
the trace context passed on, and no secret in any span."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import SecretStr

from authprofiles import telemetry
from authprofiles.api import problems
from authprofiles.api.routes import metrics as metrics_route
from authprofiles.core.callers import CredentialRequest, Principal, Purpose, Role
from authprofiles.core.errors import Forbidden
from authprofiles.oauth.engine import ClientSettings, OAuthEngine
from authprofiles.oauth.errors import GrantRefused, IdPUnavailable
from authprofiles.oauth.transport import Transports
from authprofiles.services.access import RolePolicy
from authprofiles.telemetry import metrics, tracing
from authprofiles.telemetry.asgi import RequestTelemetry
from tests.support.telemetry import SpanCollector, metric_value

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01"
SECRET = "sk-live-do-not-leak-0123456789"


# == metrics ====================================================================================


def test_counts_show_in_the_metrics_text_under_their_labels() -> None:
    before = metrics.render().decode()
    telemetry.count_token_fetch("token", "ok")
    telemetry.count_token_fetch("proxy", "refused")
    telemetry.count_refresh("needs_reauth")
    telemetry.count_idp_error("invalid_grant")
    telemetry.observe_proxy_latency("POST", 201, 0.003)
    after = metrics.render().decode()

    def grew(sample: str, **labels: str) -> float:
        return metric_value(after, sample, **labels) - metric_value(before, sample, **labels)

    assert grew("authprofiles_token_fetches_total", purpose="token", outcome="ok") == 1
    assert grew("authprofiles_token_fetches_total", purpose="proxy", outcome="refused") == 1
    assert grew("authprofiles_token_refreshes_total", outcome="needs_reauth") == 1
    assert grew("authprofiles_idp_errors_total", kind="invalid_grant") == 1
    latency = {"method": "POST", "status_class": "2xx"}
    assert grew("authprofiles_proxy_latency_seconds_count", **latency) == 1
    assert grew("authprofiles_proxy_latency_seconds_bucket", le="0.005", **latency) == 1
    assert grew("authprofiles_proxy_latency_seconds_bucket", le="0.0025", **latency) == 0


def test_label_values_stay_within_their_fixed_sets() -> None:
    before = metrics.render().decode()
    telemetry.count_idp_error("made_up_by_the_idp_" + SECRET)
    telemetry.count_refresh("whatever")
    telemetry.count_token_fetch("proxy", "something-new")
    telemetry.observe_proxy_latency("BREW", 999, 0.01)
    after = metrics.render().decode()

    assert SECRET not in after
    assert metric_value(after, "authprofiles_idp_errors_total", kind="other") == (
        metric_value(before, "authprofiles_idp_errors_total", kind="other") + 1
    )
    assert metric_value(after, "authprofiles_token_refreshes_total", outcome="error") == (
        metric_value(before, "authprofiles_token_refreshes_total", outcome="error") + 1
    )
    assert metric_value(
        after, "authprofiles_token_fetches_total", purpose="proxy", outcome="error"
    ) == (
        metric_value(before, "authprofiles_token_fetches_total", purpose="proxy", outcome="error")
        + 1
    )
    assert "BREW" not in after
    assert (
        metric_value(
            after, "authprofiles_proxy_latency_seconds_count", method="OTHER", status_class="other"
        )
        >= 1
    )


@pytest.fixture
def approvals_source() -> Any:
    yield metrics.set_approvals_pending_source
    metrics.set_approvals_pending_source(None)


def test_approvals_pending_is_read_from_its_source_at_each_scrape(approvals_source: Any) -> None:
    assert metric_value(metrics.render().decode(), "authprofiles_approvals_pending") == 0
    pending = [3]
    approvals_source(lambda: pending[0])
    assert metric_value(metrics.render().decode(), "authprofiles_approvals_pending") == 3
    pending[0] = 1
    assert metric_value(metrics.render().decode(), "authprofiles_approvals_pending") == 1


def test_a_failing_approvals_source_leaves_only_that_gauge_out(
    approvals_source: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> int:
        raise RuntimeError("database down")

    approvals_source(broken)
    text = metrics.render().decode()
    assert "authprofiles_approvals_pending" not in text
    assert "authprofiles_token_fetches_total" in text
    assert "pending approvals" in caplog.text


# == GET /metrics ==============================================================================


def _metrics_app(token: str | None) -> TestClient:
    app = FastAPI()
    problems.install(app)
    settings = SimpleNamespace(metrics_token=SecretStr(token) if token is not None else None)
    app.state.services = SimpleNamespace(settings=settings)
    app.include_router(metrics_route.router)
    return TestClient(app)


def test_metrics_need_no_key_when_no_metrics_token_is_set() -> None:
    with _metrics_app(None) as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "# TYPE authprofiles_token_fetches_total counter" in response.text
    assert "authprofiles_approvals_pending" in response.text


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", f"Basic {SECRET}", f"Bearer {SECRET}x", f"Bearer {SECRET[:-1]}"],
)
def test_with_a_metrics_token_set_anything_else_is_refused(authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    with _metrics_app(SECRET) as client:
        response = client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "AUTHPROFILES_METRICS_TOKEN" in response.json()["detail"]
    assert SECRET not in response.text


def test_with_a_metrics_token_set_the_token_reads_the_metrics() -> None:
    with _metrics_app(SECRET) as client:
        response = client.get("/metrics", headers={"Authorization": f"bearer {SECRET}"})
    assert response.status_code == 200
    assert "authprofiles_proxy_latency_seconds" in response.text


# == spans =====================================================================================


def test_tracing_is_off_until_a_provider_is_installed() -> None:
    assert not telemetry.tracing_enabled()
    with telemetry.span("anything", {"a": 1}) as current:
        assert not current.is_recording()
    headers = [("traceparent", TRACEPARENT), ("x-other", "1")]
    # Off, the proxy relays the caller's trace context as it came.
    assert telemetry.with_trace_context(headers) is headers
    carrier: dict[str, str] = {}
    telemetry.inject_trace_context(carrier)
    assert carrier == {}


def test_export_is_off_without_an_endpoint() -> None:
    assert telemetry.export_spans(None, service_name="authprofiles") is None
    assert telemetry.export_spans("  ", service_name="authprofiles") is None
    assert not telemetry.tracing_enabled()


def test_an_endpoint_becomes_its_traces_url() -> None:
    assert tracing.traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert tracing.traces_url("http://collector:4318/") == "http://collector:4318/v1/traces"
    assert tracing.traces_url("https://c.example/v1/traces") == "https://c.example/v1/traces"


def test_export_installs_a_provider_until_shut_down() -> None:
    # Nothing listens there: the batch is dropped at shutdown, after a short wait.
    export = telemetry.export_spans("http://127.0.0.1:9", service_name="authprofiles-test")
    assert export is not None
    try:
        assert telemetry.tracing_enabled()
        resource = export.provider.resource.attributes
        assert resource["service.name"] == "authprofiles-test"
    finally:
        export.provider.force_flush(timeout_millis=1)
        export.shutdown()
    assert not telemetry.tracing_enabled()


def test_a_failure_is_named_by_its_type_never_its_message(
    collected_spans: SpanCollector,
) -> None:
    with pytest.raises(ValueError), telemetry.span("work"):
        raise ValueError(f"could not reach https://api.example/?key={SECRET}")
    span = collected_spans.one("work")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None and span.attributes["error.type"] == "ValueError"
    assert span.events == ()  # no exception event: it would carry the message
    assert SECRET not in collected_spans.text()


def _request() -> CredentialRequest:
    return CredentialRequest(
        connection_id="conn-1",
        connection_owner="shared",
        purpose=Purpose.PROXY,
        method="GET",
        host="api.example.com",
        path=f"/v1/items?key={SECRET}",
        profile_id="prof-1",
    )


def test_each_policy_decision_is_a_span_naming_what_was_decided(
    collected_spans: SpanCollector,
) -> None:
    admin = Principal(workspace_id="ws", role=Role.ADMIN, name="admin")
    RolePolicy().authorize(admin, _request())
    decision = collected_spans.one("policy.decide")
    assert dict(decision.attributes or {}) == {
        "authprofiles.connection_id": "conn-1",
        "authprofiles.profile_id": "prof-1",
        "authprofiles.purpose": "proxy",
        "http.request.method": "GET",
        "server.address": "api.example.com",
    }
    assert decision.status.status_code is StatusCode.UNSET


def test_a_refusal_fails_the_decision_span_without_its_reason(
    collected_spans: SpanCollector,
) -> None:
    viewer = Principal(workspace_id="ws", role=Role.VIEWER, name="viewer")
    with pytest.raises(Forbidden):
        RolePolicy().authorize(viewer, _request())
    decision = collected_spans.one("policy.decide")
    assert decision.status.status_code is StatusCode.ERROR
    assert (decision.attributes or {})["error.type"] == "Forbidden"
    assert SECRET not in collected_spans.text()


def test_the_trace_context_sent_on_is_the_current_spans_not_the_callers(
    collected_spans: SpanCollector,
) -> None:
    headers = [("Traceparent", TRACEPARENT), ("tracestate", "caller=1"), ("X-Kept", "yes")]
    with telemetry.span("upstream.call", kind=SpanKind.CLIENT) as current:
        sent = list(telemetry.with_trace_context(headers))
        context = current.get_span_context()
    names = [name.lower() for name, _ in sent]
    assert names.count("traceparent") == 1
    assert "tracestate" not in names  # the caller's state belonged to the caller's span
    assert ("X-Kept", "yes") in sent
    traceparent = dict(sent)["traceparent"]
    # The flags may say more than "sampled" (W3C level 2's random trace id).
    assert traceparent.startswith(f"00-{context.trace_id:032x}-{context.span_id:016x}-")


def _traced_app() -> FastAPI:
    """An app whose routes look like the server's, behind the request middleware."""
    app = FastAPI()

    @app.api_route("/api/v1/proxy/{connection_id}/{path:path}", methods=["GET", "POST"])
    async def proxied(connection_id: str, path: str, request: Request) -> Response:
        with telemetry.span("inner"):
            pass
        return Response(status_code=202 if request.method == "POST" else 200)

    @app.get("/reset/{token}")
    async def reset(token: str) -> Response:
        raise RuntimeError(f"broken with {token}")

    app.add_middleware(RequestTelemetry, proxy_prefix="/api/v1/proxy/")
    return app


def test_a_request_continues_the_callers_trace_under_its_route_template(
    collected_spans: SpanCollector,
) -> None:
    with TestClient(_traced_app()) as client:
        response = client.get(
            f"/api/v1/proxy/conn-1/items/{SECRET}?api_key={SECRET}",
            headers={"traceparent": TRACEPARENT, "Authorization": f"Bearer {SECRET}"},
        )
    assert response.status_code == 200
    server = collected_spans.one("GET /api/v1/proxy/{connection_id}/{path}")
    inner = collected_spans.one("inner")
    assert server.kind is SpanKind.SERVER
    assert f"{server.context.trace_id:032x}" == TRACE_ID
    assert server.parent is not None and f"{server.parent.span_id:016x}" == CALLER_SPAN_ID
    assert inner.parent is not None and inner.parent.span_id == server.context.span_id
    assert dict(server.attributes or {}) == {
        "http.request.method": "GET",
        "url.scheme": "http",
        "http.route": "/api/v1/proxy/{connection_id}/{path}",
        "authprofiles.connection_id": "conn-1",
        "http.response.status_code": 200,
    }
    assert SECRET not in collected_spans.text()


def test_a_request_without_a_traceparent_starts_a_trace_and_a_500_fails_it(
    collected_spans: SpanCollector,
) -> None:
    with TestClient(_traced_app(), raise_server_exceptions=False) as client:
        assert client.get(f"/reset/{SECRET}").status_code == 500
        assert client.get("/api/v1/proxy/c/x", headers={"traceparent": "garbage"}).is_success
    failed = collected_spans.one("GET /reset/{token}")
    assert failed.parent is None
    assert failed.status.status_code is StatusCode.ERROR
    started = collected_spans.one("GET /api/v1/proxy/{connection_id}/{path}")
    assert started.parent is None  # a malformed traceparent is ignored
    assert SECRET not in collected_spans.text()


def test_proxied_calls_are_timed_with_tracing_off_too() -> None:
    before = metrics.render().decode()
    with TestClient(_traced_app()) as client:
        started = time.perf_counter()
        assert client.post("/api/v1/proxy/conn-1/items").status_code == 202
        elapsed = time.perf_counter() - started
        assert client.get("/healthz-elsewhere").status_code == 404
    after = metrics.render().decode()
    labels = {"method": "POST", "status_class": "2xx"}
    count = "authprofiles_proxy_latency_seconds_count"
    assert metric_value(after, count, **labels) == metric_value(before, count, **labels) + 1
    total = "authprofiles_proxy_latency_seconds_sum"
    observed = metric_value(after, total, **labels) - metric_value(before, total, **labels)
    assert 0 < observed <= elapsed
    # Only the proxy is timed.
    assert metric_value(after, count, method="GET", status_class="4xx") == metric_value(
        before, count, method="GET", status_class="4xx"
    )


def test_in_multiprocess_mode_a_scrape_adds_up_every_workers_counts(tmp_path: Path) -> None:
    count = (
        "from authprofiles import telemetry\ntelemetry.count_token_fetch('proxy', 'needs_reauth')\n"
    )
    scrape = (
        count + "from authprofiles.telemetry import metrics\nprint(metrics.render().decode())\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", count], env=env, check=True, timeout=60)
    scraped = subprocess.run(
        [sys.executable, "-c", scrape], env=env, check=True, timeout=60, capture_output=True
    ).stdout.decode()
    labels = {"purpose": "proxy", "outcome": "needs_reauth"}
    assert metric_value(scraped, "authprofiles_token_fetches_total", **labels) == 2
    assert metric_value(scraped, "authprofiles_approvals_pending") == 0


# == the identity provider's side ================================================================


def _engine(*responses: httpx.Response, seen: list[httpx.Request]) -> OAuthEngine:
    """An OAuth engine whose identity provider answers ``responses`` in turn (the last
    one again and again), each request it got in ``seen``."""
    queue = list(responses)

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return queue.pop(0) if len(queue) > 1 else queue[0]

    class Answering(Transports):
        def sync(self, egress_proxy_url: str | None) -> httpx.HTTPTransport:
            return httpx.MockTransport(answer)  # type: ignore[return-value]

    return OAuthEngine(Answering(timeout=5), retries=2, backoff_seconds=0, sleep=lambda _s: None)


IDP = ClientSettings(
    client_id="client-1",
    client_secret=SECRET,
    auth_method="client_secret_basic",
    token_url="https://idp.test/token",
    refresh_url="https://idp.test/token",
    redirect_uri="https://app.test/oauth/callback",
)


def test_the_identity_provider_continues_the_refreshs_trace(
    collected_spans: SpanCollector,
) -> None:
    seen: list[httpx.Request] = []
    engine = _engine(
        httpx.Response(200, json={"access_token": SECRET, "token_type": "Bearer"}), seen=seen
    )
    with telemetry.span("token.refresh") as refreshing:
        engine.fetch_token(IDP, "the refresh", grant_type="client_credentials")
        context = refreshing.get_span_context()
    assert (
        seen[0]
        .headers["traceparent"]
        .startswith(f"00-{context.trace_id:032x}-{context.span_id:016x}-")
    )
    assert SECRET not in collected_spans.text()


def test_no_trace_context_goes_to_the_identity_provider_while_tracing_is_off() -> None:
    seen: list[httpx.Request] = []
    engine = _engine(
        httpx.Response(200, json={"access_token": "t", "token_type": "Bearer"}), seen=seen
    )
    engine.fetch_token(IDP, "the refresh", grant_type="client_credentials")
    assert "traceparent" not in seen[0].headers


def test_identity_provider_errors_are_counted_by_kind_each_attempt() -> None:
    before = metrics.render().decode()
    seen: list[httpx.Request] = []
    refusing = _engine(httpx.Response(400, json={"error": "invalid_grant"}), seen=seen)
    with pytest.raises(GrantRefused):
        refusing.fetch_token(IDP, "the refresh", grant_type="refresh_token")
    waiting = _engine(httpx.Response(400, json={"error": "authorization_pending"}), seen=seen)
    with pytest.raises(GrantRefused):
        waiting.fetch_token(IDP, "a poll", grant_type="device_code")
    down = _engine(httpx.Response(503), seen=seen)
    with pytest.raises(IdPUnavailable):
        down.fetch_token(IDP, "the refresh", grant_type="refresh_token")
    after = metrics.render().decode()

    def grew(kind: str) -> float:
        errors = "authprofiles_idp_errors_total"
        return metric_value(after, errors, kind=kind) - metric_value(before, errors, kind=kind)

    assert grew("invalid_grant") == 1
    assert grew("unavailable") == 3  # the first attempt and both retries
    assert "authorization_pending" not in after  # a device flow waiting is no error
