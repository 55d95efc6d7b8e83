"""Dependencies shared by the routers: the services and the calling principal."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPBearer

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
        return await authenticate(request.app.state.services, request.headers)


async def authenticate(services: Services, headers: Mapping[str, str]) -> Principal:
    """The caller's principal from its `Authorization: Bearer` API key (lowercase keys, as
    Starlette's headers give them); raises Unauthenticated."""
    scheme, _, presented = headers.get("authorization", "").partition(" ")
    key = presented.strip() if scheme.lower() == "bearer" else None
    # A key seen in the last seconds is checked in memory, without a thread hop.
    if key and (principal := services.api_keys.cached(key)) is not None:
        return principal
    return await run_in_threadpool(services.api_keys.authenticate, key or None)


CurrentPrincipal = Annotated[Principal, Depends(ApiKeyAuth())]
