"""Liveness and readiness, without an API key."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.routing import Route

from authprofiles.api.deps import ServicesDep

router = APIRouter(tags=["health"])

_ALIVE = b'{"status":"ok"}'


async def healthz_endpoint(_request: Request) -> Response:
    return Response(_ALIVE, media_type="application/json")


def liveness_route() -> Route:
    """``GET /healthz`` as a plain Starlette route, for the app to match first like the
    token route: probes hit it constantly, and it is the benchmarks' "bare endpoint",
    which must cost no more than the cheapest route the server has. ``DESCRIBED``
    documents it."""
    return Route("/healthz", healthz_endpoint, methods=["GET"])


DESCRIBED = APIRouter(tags=["health"])


@DESCRIBED.get("/healthz")
async def healthz() -> dict[str, str]:
    """200 while the process serves."""
    raise NotImplementedError("served by healthz_endpoint")


@router.get(
    "/readyz",
    responses={
        200: {"description": "The database answers and every migration is applied"},
        503: {
            "description": "Not ready: `database` says why",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
    },
)
async def readyz(services: ServicesDep) -> JSONResponse:
    try:
        migrated = await run_in_threadpool(services.db.is_migrated)
    except Exception:
        return JSONResponse({"status": "unavailable", "database": "not answering"}, status_code=503)
    if not migrated:
        return JSONResponse(
            {"status": "unavailable", "database": "migrations pending"}, status_code=503
        )
    return JSONResponse({"status": "ok"})
