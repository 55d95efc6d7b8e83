"""GET /metrics: the server's metrics in Prometheus' text format, for a scraper.

No API key: a scraper has none. When ``AUTHPROFILES_METRICS_TOKEN`` is set, the scraper
sends it as a bearer token instead (Prometheus' ``authorization`` setting), compared in
constant time. The metrics are counts and timings labelled by outcome, kind, method and
status class, so they carry no secret either way; the token keeps the server's load and
error rates to the people who run it.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from authprofiles.api.caller import bearer_key
from authprofiles.api.deps import ServicesDep
from authprofiles.api.problems import problem_responses
from authprofiles.core.errors import Unauthenticated
from authprofiles.telemetry import metrics

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Every metric, in the Prometheus text format (version 0.0.4)",
            "content": {
                "text/plain": {
                    "schema": {"type": "string"},
                    "example": "# TYPE authprofiles_token_fetches_total counter\n"
                    'authprofiles_token_fetches_total{outcome="ok",purpose="token"} 42.0\n',
                }
            },
        },
        **problem_responses(
            {401: "AUTHPROFILES_METRICS_TOKEN is set and this request did not send it"}
        ),
    },
)
async def get_metrics(request: Request, services: ServicesDep) -> Response:
    """Token fetches, refreshes and identity provider errors by outcome, the proxy's
    latency, and the calls awaiting approval: this worker's counts (or every worker's, in
    prometheus_client's multiprocess mode). No key unless `AUTHPROFILES_METRICS_TOKEN` is
    set; then `Authorization: Bearer <that token>`."""
    expected = services.settings.metrics_token
    if expected is not None and not _presents(request, expected.get_secret_value()):
        raise Unauthenticated(
            "this server's metrics need its metrics token: send "
            "`Authorization: Bearer <AUTHPROFILES_METRICS_TOKEN>`"
        )
    # In the thread pool: the approvals gauge may read the database.
    body = await run_in_threadpool(metrics.render)
    return Response(body, media_type=metrics.CONTENT_TYPE)


def _presents(request: Request, expected: str) -> bool:
    presented = bearer_key(request.scope)
    return presented is not None and hmac.compare_digest(
        presented.encode("utf-8"), expected.encode("utf-8")
    )


__all__ = ["router"]
