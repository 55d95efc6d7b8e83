"""Dependencies shared by the routers: the services and the calling principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from authprofiles.api.caller import principal_of
from authprofiles.composition import Services
from authprofiles.core.callers import Principal


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


class ApiKeyAuth(HTTPBearer):
    """The calling principal, as the caller middleware resolved it (``api.caller``),
    published as the OpenAPI security scheme its API keys use."""

    def __init__(self) -> None:
        super().__init__(
            auto_error=False, description="An API key from `authprofiles api-keys create`"
        )

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        return await principal_of(request)


CurrentPrincipal = Annotated[Principal, Depends(ApiKeyAuth())]
