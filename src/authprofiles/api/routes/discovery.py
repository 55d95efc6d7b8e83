"""GET /discovery: prefill a profile from RFC 8414 / OpenID Connect metadata."""

from __future__ import annotations

from fastapi import APIRouter, Query

from authprofiles.api.deps import CurrentPrincipal, ServicesDep
from authprofiles.api.problems import problem_responses
from authprofiles.api.schemas import DiscoveryPublic
from authprofiles.oauth.discovery import DiscoveryFailed, discover
from authprofiles.oauth.errors import OAuthFailure
from authprofiles.services.access import Role, require_role
from authprofiles.services.errors import DiscoveryError, from_oauth

router = APIRouter(tags=["discovery"])


@router.get(
    "/discovery",
    response_model=DiscoveryPublic,
    responses=problem_responses(
        {
            403: "Only an admin's API key may do this",
            422: "No usable metadata at that issuer (or `issuer` is not a URL)",
            502: "The issuer could not be reached or answered nonsense",
            504: "The issuer did not answer in time",
        }
    ),
)
def get_discovery(
    services: ServicesDep,
    principal: CurrentPrincipal,
    issuer: str = Query(description="The authorization server's issuer identifier URL"),
) -> DiscoveryPublic:
    require_role(principal, Role.ADMIN)
    try:
        metadata = discover(services.transports, issuer)
    except DiscoveryFailed as exc:
        raise DiscoveryError(exc.detail) from None
    except OAuthFailure as exc:
        raise from_oauth(exc) from None
    return DiscoveryPublic(**metadata.__dict__)
