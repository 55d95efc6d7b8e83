"""Dependencies shared by the routers: the services and the calling principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from authprofiles.api.caller import principal_of
from authprofiles.composition import Services
from authprofiles.core.agent_grants import AgentRefused
from authprofiles.core.callers import Principal
from authprofiles.services.agent_grants import for_audience


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
        principal = await principal_of(request)
        if principal.is_agent:
            # An agent never reads a token nor manages anything: it calls through.
            raise AgentRefused(
                "an agent grant's token works only on the proxy (/api/v1/proxy/...) and "
                "on /mcp; use an API key here"
            )
        return principal


class ProxyAuth(ApiKeyAuth):
    """The caller of the proxy: an API key, a session, or an agent grant (whose access
    tokens must have been issued for the proxy)."""

    def __init__(self) -> None:
        HTTPBearer.__init__(
            self,
            auto_error=False,
            description="An API key, or an agent grant's token (or an access token issued "
            "for the proxy by the server's token endpoint)",
        )

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        principal = await principal_of(request)
        if principal.audience is not None:  # an access token: issued for the proxy?
            return for_audience(principal, proxy_resource(request))
        return principal


def proxy_resource(request: Request) -> str:
    """The proxy as an OAuth resource (RFC 8707): what its access tokens name."""
    services: Services = request.app.state.services
    return services.settings.public_base_url + "/api/v1/proxy"


CurrentPrincipal = Annotated[Principal, Depends(ApiKeyAuth())]
#: The proxy's caller, who may be an agent.
ProxyCaller = Annotated[Principal, Depends(ProxyAuth())]
