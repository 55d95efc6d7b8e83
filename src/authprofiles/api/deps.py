"""Dependencies shared by the routers: the services and the calling principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPBearer
from starlette.requests import HTTPConnection

from authprofiles.api.access_log import CALLER_NAME
from authprofiles.services.access import Principal
from authprofiles.services.container import Services


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


class ApiKeyAuth(HTTPBearer):
    """`Authorization: Bearer <api key>` to the calling principal, in one dependency
    (it runs on every request, so it stays small), published as the OpenAPI scheme."""

    def __init__(self) -> None:
        super().__init__(
            auto_error=False, description="An API key from `authprofiles api-keys create`"
        )

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        return await authenticate(request.app.state.services, request)


async def authenticate(services: Services, request: HTTPConnection) -> Principal:
    """The caller's principal from its `Authorization: Bearer` API key; raises
    Unauthenticated. The principal's name is left in the scope's state for the access
    log (``access_log.CALLER_NAME``)."""
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    key = presented.strip() if scheme.lower() == "bearer" else None
    # A key seen in the last seconds is checked in memory, without a thread hop.
    principal = services.api_keys.cached(key) if key else None
    if principal is None:
        principal = await run_in_threadpool(services.api_keys.authenticate, key or None)
    request.scope.setdefault("state", {})[CALLER_NAME] = principal.name
    return principal


CurrentPrincipal = Annotated[Principal, Depends(ApiKeyAuth())]
