"""/api/v1/profiles: create, list, read, change and delete Authorization Profiles."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from authprofiles.api.deps import CurrentPrincipal, ServicesDep
from authprofiles.api.paging import Page, page_responses
from authprofiles.api.problems import problem_responses
from authprofiles.api.schemas import (
    ProfileCreate,
    ProfileListItem,
    ProfilePublic,
    ProfileUpdate,
    RevocationPublic,
    documented_body,
)
from authprofiles.core.validation import MAX_NAME_LENGTH
from authprofiles.services.profiles import public_view

router = APIRouter(prefix="/profiles", tags=["profiles"])

_ADMIN_ONLY = "Only an admin's API key may do this"
#: A profile's body as sent, any JSON object: the service checks it, and reports a value of a
#: wrong type together with every rule the rest breaks (FastAPI, parsing it as a model,
#: would stop at the types). ``documented_body`` says in the schema what it takes.
ProfileBody = Annotated[dict[str, Any], Body()]
_INCOMPLETE = Query(
    default=False,
    description="Store even with mandatory fields empty; the profile is then `not_configured`.",
)


def _public(services: Any, profile: Any) -> ProfilePublic:
    return ProfilePublic.model_validate(public_view(profile, services.settings.callback_url))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ProfilePublic,
    openapi_extra=documented_body(ProfileCreate),
    responses=problem_responses(
        {403: _ADMIN_ONLY, 409: "A profile of that name exists (`errors` names `name`)"}
    ),
)
def create_profile(
    body: ProfileBody,
    services: ServicesDep,
    principal: CurrentPrincipal,
    allow_incomplete: bool = _INCOMPLETE,
) -> ProfilePublic:
    """Create a profile. Every rule violated is reported at once, each naming its field."""
    profile = services.profiles.create(principal, body, allow_incomplete=allow_incomplete)
    return _public(services, profile)


@router.get(
    "",
    response_model=list[ProfileListItem],
    responses=page_responses("A page of profiles, by name"),
)
def list_profiles(
    request: Request,
    response: Response,
    services: ServicesDep,
    principal: CurrentPrincipal,
    page: Page,
    name: Annotated[
        str | None, Query(max_length=MAX_NAME_LENGTH, description="Only the profile of this name")
    ] = None,
) -> list[ProfileListItem]:
    """The workspace's profiles by name, a page at a time (see `limit` and `cursor`)."""
    profiles = services.profiles.list(principal, name=name, after=page.after(), limit=page.fetch)
    return [
        ProfileListItem(
            id=p.id,
            name=p.name,
            auth_type=p.auth_type,
            identity_provider=p.identity_provider,
            status=p.status,
        )
        for p in page.page(request, response, profiles, key=lambda p: [p.name, p.id])
    ]


@router.get("/{profile_id}", response_model=ProfilePublic)
def get_profile(
    profile_id: str, services: ServicesDep, principal: CurrentPrincipal
) -> ProfilePublic:
    return _public(services, services.profiles.get(principal, profile_id))


@router.patch(
    "/{profile_id}",
    response_model=ProfilePublic,
    openapi_extra=documented_body(ProfileUpdate),
    responses=problem_responses({403: _ADMIN_ONLY}),
)
def update_profile(
    profile_id: str,
    body: ProfileBody,
    services: ServicesDep,
    principal: CurrentPrincipal,
    allow_incomplete: bool = _INCOMPLETE,
) -> ProfilePublic:
    """Change any field but `name` and `auth_type`. A secret left out keeps its stored value;
    `null` clears it."""
    profile = services.profiles.update(
        principal,
        profile_id,
        body,
        allow_incomplete=allow_incomplete,
    )
    return _public(services, profile)


@router.delete(
    "/{profile_id}",
    response_model=RevocationPublic,
    responses=problem_responses({403: _ADMIN_ONLY}),
)
async def delete_profile(
    profile_id: str, services: ServicesDep, principal: CurrentPrincipal
) -> RevocationPublic:
    """Delete the profile, its connections and tokens; revoke tokens where the IdP can."""
    report = await run_in_threadpool(services.profiles.delete, principal, profile_id)
    return RevocationPublic(deleted=True, revoked=report.revoked, revocation_errors=report.errors)
