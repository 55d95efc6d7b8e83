"""The composition root: builds the FastAPI application from the services."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from authprofiles import __version__
from authprofiles.agent_mcp.authorization import router as mcp_authorization
from authprofiles.agent_mcp.server import AgentMcpServer
from authprofiles.api import docs, problems, schemas
from authprofiles.api.access_log import AccessLog
from authprofiles.api.bodies import RequestBodyGuard
from authprofiles.api.caller import BearerCredentials, CallerMiddleware
from authprofiles.api.routes import (
    agent_grants,
    api_keys,
    audit,
    connections,
    discovery,
    health,
    metrics,
    people,
    profiles,
    proxy,
    testing,
    webhooks,
)
from authprofiles.composition import Services
from authprofiles.services.tokens import BackgroundRefresher
from authprofiles.settings import Settings, get_settings
from authprofiles.telemetry import export_spans, set_approvals_pending_source
from authprofiles.telemetry.asgi import RequestTelemetry
from authprofiles.web import console, home, signin
from authprofiles.web import routes as web_routes

log = logging.getLogger("authprofiles")

API_PREFIX = "/api/v1"


def create_app(
    settings: Settings | None = None,
    *,
    services: Services | None = None,
    migrate: bool = True,
    background_refresh: bool = True,
    freeze_startup_objects: bool = False,
) -> FastAPI:
    settings = settings or (services.settings if services else get_settings())
    # httpx logs every request line at INFO; a proxied URL may carry an injected credential
    # in its query string, so those lines never reach the log.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    owned = services is None
    services = services or Services(settings)
    mcp_server = AgentMcpServer(services)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if migrate:
            services.db.migrate()
        keyring_watcher = services.watch_keyring()
        refreshers = []
        if background_refresh:
            # Renewals in a thread of their own: a storm of them (a full batch is followed
            # by the next at once) holds up no cleanup.
            refreshers = [
                BackgroundRefresher(settings.background_refresh_interval_seconds, each)
                for each in (services.tokens.renew_due, services.connections.expire_abandoned)
            ]
            for refresher in refreshers:
                refresher.start()
        # Always on: a person approving a device code waits on it (each tick is one
        # indexed read when nothing is due).
        poller = BackgroundRefresher(
            settings.authorization_poll_tick_seconds, services.connections.poll_pending
        )
        poller.start()
        # Always on: the outbox's emails and webhook calls go out within seconds of the event,
        # each kind in its own thread, so an SMTP server that never answers delays no webhook.
        deliveries = [
            BackgroundRefresher(settings.notification_tick_seconds, send)
            for send in (services.deliveries.deliver_webhooks, services.deliveries.deliver_emails)
        ]
        for delivery in deliveries:
            delivery.start()
        # The audit log's count of tokens handed out: each ended minute written within seconds.
        audit_flusher = BackgroundRefresher(
            settings.audit_flush_seconds, services.token_counter.flush
        )
        audit_flusher.start()
        # Agents' calls, one audit entry each, written together every few seconds.
        agent_call_flusher = BackgroundRefresher(
            settings.audit_flush_seconds, services.agent_calls.flush
        )
        agent_call_flusher.start()
        if freeze_startup_objects:
            # What importing and starting left behind (modules, schemas, mappers: millions
            # of objects) lives as long as the process. Left in the collector's oldest
            # generation, each full collection walked all of it: 100-110 ms pauses every
            # few seconds under load, a p99 of ~90 ms at 16 concurrent calls. Frozen,
            # a full collection takes about 2 ms.
            gc.collect()
            gc.freeze()
        # Spans are recorded and sent only when a collector is named (export is off by
        # default); each worker sends its own, from a thread of its own.
        span_export = export_spans(settings.otlp_endpoint, service_name=settings.otlp_service_name)
        # Held calls waiting for a person, counted when /metrics is read.
        set_approvals_pending_source(services.approvals.pending_count)
        await mcp_server.start()  # the MCP face's transport (/mcp)
        try:
            yield
        finally:
            await mcp_server.stop()
            for refresher in refreshers:
                refresher.stop()
            poller.stop()
            for delivery in deliveries:
                delivery.stop()
            audit_flusher.stop()
            services.token_counter.flush_all()  # the current minute too: nothing is lost
            agent_call_flusher.stop()
            services.agent_calls.flush()
            if keyring_watcher:
                keyring_watcher.stop()
            await services.transports.aclose()
            if services.db.async_reads is not None:
                await services.db.async_reads.close()
            if owned:
                services.close()
            set_approvals_pending_source(None)
            if span_export is not None:
                span_export.shutdown()  # sends what is still queued

    app = AuthProfilesAPI(
        title="authprofiles",
        version=__version__,
        summary="Authorization Profiles for AI agents and automations",
        lifespan=lifespan,
        docs_url=None,  # served by api.docs, from this server rather than a CDN
        redoc_url=None,
    )
    app.state.services = services
    problems.install(app)
    app.add_middleware(
        RequestBodyGuard,
        max_bytes=settings.max_body_bytes,
        api_prefix=API_PREFIX,
        exempt=proxy.mount_path(API_PREFIX),
    )
    app.add_middleware(
        CallerMiddleware,
        keys=BearerCredentials(services.api_keys, services.agent_grants),
        sessions=services.sessions,
    )
    app.add_middleware(problems.ContainUnexpected)
    app.add_middleware(AccessLog)  # added last: the outermost, so it sees the 500s too
    # Outside even the access log: the request's span encloses everything served for it.
    app.add_middleware(RequestTelemetry, proxy_prefix=proxy.mount_path(API_PREFIX) + "/")
    app.include_router(health.router)
    app.include_router(metrics.router)  # at the root, as scrapers expect it
    # The MCP face and its OAuth metadata and token endpoint, at the root as MCP clients
    # (RFC 9728, RFC 8414) look for them.
    app.include_router(mcp_server.router)
    app.include_router(mcp_authorization)
    docs.install(app)
    app.include_router(web_routes.router)
    app.include_router(signin.router)
    app.include_router(home.router)
    console.install(app)
    for module in (
        profiles,
        connections,
        discovery,
        proxy,
        testing,
        api_keys,
        audit,
        people,
        webhooks,
        agent_grants,
    ):
        app.include_router(module.router, prefix=API_PREFIX)
    # The hot paths, matched before the others (``api.hot`` says why); described in the
    # schema from their declarations like every other route.
    app.router.routes[:0] = [
        *health.hot.routes(),
        *connections.hot.routes(API_PREFIX),
        *proxy.hot.routes(API_PREFIX),
    ]
    return app


class AuthProfilesAPI(FastAPI):
    """The app, whose OpenAPI schema also documents what FastAPI cannot see in the routes'
    signatures: the bodies read by hand (``schemas.document_bodies``) and every error
    answer as a problem (``problems.document_problems``)."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is not None:
            return self.openapi_schema
        schema = super().openapi()  # kept as openapi_schema: this runs once
        schemas.document_bodies(schema)
        problems.document_problems(schema)
        return schema


def create_default_app() -> FastAPI:
    """Factory for ``uvicorn --factory`` (each worker process builds its own).

    ``authprofiles serve`` migrates once before starting workers and says so.
    """
    import os

    # Each worker logs in the format `serve` set up (uvicorn applies it there); a warning
    # is a log line like any other.
    logging.captureWarnings(True)
    return create_app(
        migrate=os.environ.get("AUTHPROFILES_SKIP_MIGRATE") != "1", freeze_startup_objects=True
    )
