"""The server's metrics, in Prometheus' text format at ``GET /metrics``.

They live in a registry of their own (:data:`REGISTRY`), not prometheus_client's default
one: nothing a library registers there is served, and importing this module twice (it
never is) could not register a metric twice. They are made once per process; the tests,
which start many apps in one process, compare values before and after.

Every label has a small, fixed set of values (outcomes, kinds, methods, status classes):
no id, host, path or anything a caller chose becomes a label, so no secret can, and the
number of series stays bounded however the server is used.

Each worker process counts its own. With several workers (``serve --workers N``) a
scrape is answered by one of them, with that worker's numbers, unless
``PROMETHEUS_MULTIPROC_DIR`` names an empty directory the workers share (prometheus_client's
multiprocess mode, set before the server starts): every worker then writes its values
there and a scrape adds them up.

What others report:

- :func:`count_token_fetch`, :func:`count_refresh`, :func:`count_idp_error`: the use cases.
- :func:`observe_proxy_latency`: the request middleware, for every proxied call.
- :func:`set_approvals_pending_source`: whoever keeps held calls, once at start; the
  gauge calls it at each scrape.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("authprofiles.telemetry")

#: The classic text format (0.0.4), which every Prometheus version reads.
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

REGISTRY: Final = CollectorRegistry(auto_describe=True)

# -- token fetches ------------------------------------------------------------------------
#: What a fetch is for: the token endpoint (``token``) or a proxied call (``proxy``).
FETCH_PURPOSES: Final = ("token", "proxy")
#: How a fetch ended: a token (``ok``), refused by the policy (``refused``), no such
#: connection (``not_found``), the connection needs authorizing again (``needs_reauth``),
#: anything else (``error``).
FETCH_OUTCOMES: Final = ("ok", "refused", "not_found", "needs_reauth", "error")

TOKEN_FETCHES: Final = Counter(
    "authprofiles_token_fetches",
    "Tokens asked for, by the token endpoint or a proxied call, by how each ended.",
    ("purpose", "outcome"),
    registry=REGISTRY,
)

# -- refreshes ----------------------------------------------------------------------------
#: ``ok``: new tokens; ``needs_reauth``: the grant was refused (``invalid_grant``: a person
#: must authorize again); ``client_refused``: the client was (``invalid_client``: the
#: profile is failing); ``error``: the identity provider was unreachable, timed out or
#: answered something unreadable (the current token is served while it lasts).
REFRESH_OUTCOMES: Final = ("ok", "needs_reauth", "client_refused", "error")

TOKEN_REFRESHES: Final = Counter(
    "authprofiles_token_refreshes",
    "Refreshes asked of an identity provider (on demand and in the background), by outcome.",
    ("outcome",),
    registry=REGISTRY,
)

# -- identity provider errors -----------------------------------------------------------
#: ``timeout``, ``unavailable`` (no connection, 5xx, 429, an unreadable answer), or the
#: RFC 6749 section 5.2 / RFC 7009 / RFC 8628 error code it answered; ``other`` for a
#: code none of those define (or a bare 4xx).
IDP_ERROR_KINDS: Final = (
    "timeout",
    "unavailable",
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "unsupported_token_type",
    "access_denied",
    "expired_token",
    "other",
)

IDP_ERRORS: Final = Counter(
    "authprofiles_idp_errors",
    "Calls to an identity provider that failed (each attempt of a retried call), by kind.",
    ("kind",),
    registry=REGISTRY,
)

# -- proxy latency ------------------------------------------------------------------------
#: Methods named as they are; any other becomes ``OTHER`` (a caller picks the method).
PROXY_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)

PROXY_LATENCY: Final = Histogram(
    "authprofiles_proxy_latency_seconds",
    "Time from a proxied call's arrival to the start of its answer: the policy, the "
    "token, the upstream's wait (and a refresh and retry, when the token was refused); "
    "a streamed body's transfer is not included. By method and status class (2xx...).",
    ("method", "status_class"),
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)

# The children of the labelled metrics, found by plain dict lookups: prometheus_client's
# ``labels()`` checks and locks on every call, on the token endpoint's and the proxy's path.
_fetches = {
    (purpose, outcome): TOKEN_FETCHES.labels(purpose, outcome)
    for purpose in FETCH_PURPOSES
    for outcome in FETCH_OUTCOMES
}
_refreshes = {outcome: TOKEN_REFRESHES.labels(outcome) for outcome in REFRESH_OUTCOMES}
_idp_errors = {kind: IDP_ERRORS.labels(kind) for kind in IDP_ERROR_KINDS}
_STATUS_CLASSES: Final = ("1xx", "2xx", "3xx", "4xx", "5xx")
_latencies: dict[tuple[str, int], Histogram] = {}


def count_token_fetch(purpose: str, outcome: str) -> None:
    """One token asked for (:data:`FETCH_PURPOSES`), and how it ended
    (:data:`FETCH_OUTCOMES`; anything else counts as ``error``)."""
    _fetches[(purpose, outcome if outcome in FETCH_OUTCOMES else "error")].inc()


def count_refresh(outcome: str) -> None:
    """One refresh asked of an identity provider, and how it ended (:data:`REFRESH_OUTCOMES`)."""
    _refreshes.get(outcome, _refreshes["error"]).inc()


def count_idp_error(kind: str) -> None:
    """One failed call to an identity provider (:data:`IDP_ERROR_KINDS`; an error code
    outside them counts as ``other``)."""
    _idp_errors.get(kind, _idp_errors["other"]).inc()


def observe_proxy_latency(method: str, status: int, seconds: float) -> None:
    """A proxied call's answer started ``seconds`` after the call came in."""
    hundreds = status // 100
    child = _latencies.get((method, hundreds))
    if child is None:
        known_method = method if method in PROXY_METHODS else "OTHER"
        status_class = _STATUS_CLASSES[hundreds - 1] if 1 <= hundreds <= 5 else "other"
        child = PROXY_LATENCY.labels(known_method, status_class)
        if known_method == method:  # a method from the fixed set: remembered
            _latencies[(method, hundreds)] = child
    child.observe(seconds)


# -- approvals pending --------------------------------------------------------------------
_approvals_pending: list[Callable[[], int] | None] = [None]


def set_approvals_pending_source(count: Callable[[], int] | None) -> None:
    """Where ``authprofiles_approvals_pending`` comes from: ``count()`` is called at each
    scrape (from a thread of the pool: it may read the database) and answers how many
    held calls await a decision now. None: the gauge says 0."""
    _approvals_pending[0] = count


class _ApprovalsPending(Collector):
    """The gauge of held calls, read from its source when scraped rather than kept up to
    date on every change: the number lives in the database, where every worker sees it."""

    def collect(self) -> Iterable[Metric]:
        count = _approvals_pending[0]
        value = 0
        if count is not None:
            try:
                value = count()
            except Exception:
                # The other metrics are still worth answering: this one is left out.
                log.exception("reading the number of pending approvals for /metrics failed")
                return
        yield GaugeMetricFamily(
            "authprofiles_approvals_pending",
            "Held calls (rules with approval) awaiting a person's decision.",
            value=value,
        )


REGISTRY.register(_ApprovalsPending())


def render() -> bytes:
    """Every metric in Prometheus' text format (:data:`CONTENT_TYPE`); in multiprocess mode
    (``PROMETHEUS_MULTIPROC_DIR``), every worker's counts added up. Blocking: the
    approvals gauge may read the database."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return generate_latest(REGISTRY)
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, directory)  # type: ignore[no-untyped-call]
    registry.register(_ApprovalsPending())
    return generate_latest(registry)


__all__ = [
    "CONTENT_TYPE",
    "FETCH_OUTCOMES",
    "FETCH_PURPOSES",
    "IDP_ERROR_KINDS",
    "REFRESH_OUTCOMES",
    "REGISTRY",
    "count_idp_error",
    "count_refresh",
    "count_token_fetch",
    "observe_proxy_latency",
    "render",
    "set_approvals_pending_source",
]
