"""Dependencies shared by the routers: the services and the calling principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from authprofiles.services.access import Principal
from authprofiles.services.container import Services

_bearer = HTTPBearer(auto_error=False, description="An API key from `authprofiles api-keys create`")


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_principal(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    presented = credentials.credentials if credentials else None
    # A key seen in the last seconds is checked in memory, without a thread hop.
    if presented and (principal := services.api_keys.cached(presented)) is not None:
        return principal
    return await run_in_threadpool(services.api_keys.authenticate, presented)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
