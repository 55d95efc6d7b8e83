"""Liveness and readiness, without an API key."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from authprofiles.api.deps import ServicesDep
from authprofiles.api.hot import HotRouter

router = APIRouter(tags=["health"])
#: Served ahead of the app's routing (``api.hot``): probes hit it constantly, and it is the
#: benchmarks' "bare endpoint", which must cost no more than the cheapest route there is.
hot = HotRouter(tags=["health"])

_ALIVE = b'{"status":"ok"}'


@hot.get("/healthz", response_model=dict[str, str])
async def healthz(_request: Request) -> Response:
    """200 while the process serves."""
    return Response(_ALIVE, media_type="application/json")


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
