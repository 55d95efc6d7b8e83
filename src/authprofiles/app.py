"""The composition root: builds the FastAPI application from the services."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi

from authprofiles import __version__
from authprofiles.api import docs, problems, schemas
from authprofiles.api.access_log import AccessLog
from authprofiles.api.bodies import RequestBodyGuard
from authprofiles.api.routes import (
    api_keys,
    connections,
    discovery,
    health,
    profiles,
    proxy,
    testing,
)
from authprofiles.services.container import Services
from authprofiles.services.tokens import BackgroundRefresher
from authprofiles.settings import Settings, get_settings
from authprofiles.web import home
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

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if migrate:
            services.db.migrate()
        keyring_watcher = services.watch_keyring()
        refresher = None
        if background_refresh:
            refresher = BackgroundRefresher(
                settings.background_refresh_interval_seconds,
                services.tokens.refresh_expiring,
                services.connections.expire_abandoned,
            )
            refresher.start()
        if freeze_startup_objects:
            # What importing and starting left behind (modules, schemas, mappers: millions
            # of objects) lives as long as the process. Left in the collector's oldest
            # generation, each full collection walked all of it: 100-110 ms pauses every
            # few seconds under load, a p99 of ~90 ms at 16 concurrent calls. Frozen,
            # a full collection takes about 2 ms.
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            if refresher:
                refresher.stop()
            if keyring_watcher:
                keyring_watcher.stop()
            await services.transports.aclose()
            if owned:
                services.close()

    app = FastAPI(
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
    app.add_middleware(problems.ContainUnexpected)
    app.add_middleware(AccessLog)  # added last: the outermost, so it sees the 500s too
    app.include_router(health.router)
    docs.install(app)
    app.include_router(web_routes.router)
    app.include_router(home.router)
    for module in (profiles, connections, discovery, proxy, testing, api_keys):
        app.include_router(module.router, prefix=API_PREFIX)
    # The hot paths, plain Starlette routes matched before FastAPI's (each says why).
    app.router.routes[:0] = [
        health.liveness_route(),
        connections.token_route(API_PREFIX),
        proxy.proxy_route(API_PREFIX),
    ]
    _describe(
        app,
        [
            (proxy.DESCRIBED, API_PREFIX),
            (connections.DESCRIBED, API_PREFIX),
            (health.DESCRIBED, ""),
        ],
    )
    return app


def _describe(app: FastAPI, described: list[tuple[APIRouter, str]]) -> None:
    """Add to the OpenAPI schema the operations served outside FastAPI's routing (the hot
    paths), which it cannot see: ``described`` holds them, with their prefixes, as routes
    never routed to."""
    prefixed = APIRouter()
    for router, prefix in described:
        prefixed.include_router(router, prefix=prefix)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=[*app.routes, *prefixed.routes],
            )
            schemas.document_bodies(app.openapi_schema)
            problems.document_problems(app.openapi_schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented hook


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
