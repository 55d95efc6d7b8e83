"""Connections: start one through a profile, read it, disconnect it, get its token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from authprofiles.api.deps import CurrentPrincipal, ServicesDep
from authprofiles.api.hot import HotRouter
from authprofiles.api.paging import Page, by_creation, page_responses
from authprofiles.api.problems import problem_responses
from authprofiles.api.schemas import (
    ConnectionPublic,
    ConnectionStarted,
    RevocationPublic,
    TokenPublic,
)
from authprofiles.core.connections import ConnectionStatus
from authprofiles.services.connections import (
    ConnectionPatch,
    ConnectionRequest,
    ReauthorizeRequest,
)
from authprofiles.services.tokens import IssuedToken

router = APIRouter(tags=["connections"])
#: Served ahead of the app's routing (``api.hot``): agents ask for tokens far more than for
#: anything else, and through FastAPI's dependency solving a token cost about twice what
#: a bare endpoint does (measured at 32 concurrent callers).
hot = HotRouter(tags=["connections"])

#: What asking for a connection's token can answer besides the token.
TOKEN_PROBLEMS = {
    400: "The identity provider refused the refresh, or the credentials cannot be applied",
    403: "A viewer's API key, or another user's connection",
    409: "The connection needs authorization again (`connection_status`, `last_error`)",
    502: "The identity provider could not be reached to refresh the token",
    504: "The identity provider did not answer the refresh in time",
}
#: What starting a grant (creating or reauthorizing a connection) can answer besides it.
_GRANT_PROBLEMS = {
    400: "The identity provider refused the client or the credentials (`idp_error`)",
    403: "A viewer's API key, or another user's connection",
    409: "The profile is not configured (mandatory fields empty)",
    502: "The identity provider could not be reached or answered nonsense",
    504: "The identity provider did not answer in time",
}


_NO_STORE = {"Cache-Control": "no-store"}


@hot.get(
    "/connections/{connection_id}/token",
    response_model=TokenPublic,
    responses=problem_responses(TOKEN_PROBLEMS),
)
async def get_token(
    connection_id: str, principal: CurrentPrincipal, services: ServicesDep
) -> Response:
    """A valid access token, refreshed first if it expires within the skew, with where to
    put it and the profile's authorization fields (`inject`)."""
    rendered = await services.token_issuing.issue(principal, connection_id, _token_json)
    return Response(rendered.json, media_type="application/json", headers=_NO_STORE)


def _token_json(issued: IssuedToken) -> bytes:
    return TokenPublic.of(issued).model_dump_json().encode()


@router.post(
    "/profiles/{profile_id}/connections",
    status_code=status.HTTP_201_CREATED,
    response_model=ConnectionStarted,
    responses=problem_responses(_GRANT_PROBLEMS),
)
def create_connection(
    profile_id: str,
    body: ConnectionRequest,
    services: ServicesDep,
    principal: CurrentPrincipal,
) -> ConnectionStarted:
    """Authorization code: returns the `authorization_url` to send the user to (state and
    PKCE included). Client credentials and password: fetches a token now."""
    started = services.connections.create(principal, profile_id, body)
    return ConnectionStarted.of(started.connection, started.next_step)


@router.get(
    "/connections",
    response_model=list[ConnectionPublic],
    responses=page_responses("A page of connections, oldest first"),
)
def list_connections(
    request: Request,
    response: Response,
    services: ServicesDep,
    principal: CurrentPrincipal,
    page: Page,
    profile_id: Annotated[
        str | None, Query(max_length=200, description="Only the connections of this profile")
    ] = None,
    owner: Annotated[
        str | None,
        Query(max_length=200, description="Only those of this owner: `shared` or a user id"),
    ] = None,
    status_: Annotated[
        ConnectionStatus | None, Query(alias="status", description="Only those in this status")
    ] = None,
) -> list[ConnectionPublic]:
    """The connections the caller may see (its workspace's), oldest first, a page at a
    time (see `limit` and `cursor`)."""
    connections = services.connections.list(
        principal,
        profile_id,
        owner=owner,
        status=status_,
        after=page.after_created(),
        limit=page.fetch,
    )
    return [ConnectionPublic.of(c) for c in page.page(request, response, connections, by_creation)]


@router.post(
    "/connections/{connection_id}/reauthorize",
    response_model=ConnectionStarted | ConnectionPublic,
    responses=problem_responses(
        {
            **_GRANT_PROBLEMS,
            422: "Credentials missing for the password grant in user mode, or given for "
            "another grant",
        }
    ),
)
def reauthorize_connection(
    connection_id: str,
    services: ServicesDep,
    principal: CurrentPrincipal,
    body: ReauthorizeRequest | None = None,
) -> ConnectionStarted | ConnectionPublic:
    """The same connection, authorized again (after `needs_reauth`, or to replace its
    grant). Authorization code: `{id, authorization_url}` to send the user to; device
    code: `{id, user_code, verification_uri, ...}`; the connection keeps its status and
    tokens until the person's answer stores the new ones on it.
    Client credentials and password: a new grant now, and the connection as it is then
    (the password grant in user mode needs `username` and `password` again)."""
    started = services.connections.reauthorize(
        principal, connection_id, body or ReauthorizeRequest()
    )
    if started.next_step is not None:
        return ConnectionStarted.of(started.connection, started.next_step)
    return ConnectionPublic.of(started.connection)


@router.patch(
    "/connections/{connection_id}",
    response_model=ConnectionPublic,
    responses=problem_responses(
        {
            403: "A viewer, another user's connection, or a shared one for a developer",
            422: "Credentials for a connection that keeps none, or unknown or missing fields",
        }
    ),
)
def update_connection(
    connection_id: str, body: ConnectionPatch, services: ServicesDep, principal: CurrentPrincipal
) -> ConnectionPublic:
    """Change what the connection keeps: a preauthorized password connection's `username`
    and `password`, or the connection's field values (`fields`). Write-only: the answer
    is the connection, never these values. Used from the next token on."""
    return ConnectionPublic.of(services.connections.update(principal, connection_id, body))


@router.get(
    "/profiles/{profile_id}/connections",
    response_model=list[ConnectionPublic],
    responses=page_responses("A page of connections, oldest first"),
)
def list_profile_connections(
    profile_id: str,
    request: Request,
    response: Response,
    services: ServicesDep,
    principal: CurrentPrincipal,
    page: Page,
) -> list[ConnectionPublic]:
    """The profile's connections, oldest first, a page at a time (see `limit` and `cursor`)."""
    page.after()  # a malformed cursor is named before the profile is looked up
    services.profiles.get(principal, profile_id)
    after = page.after_created()
    connections = services.connections.list(principal, profile_id, after=after, limit=page.fetch)
    return [ConnectionPublic.of(c) for c in page.page(request, response, connections, by_creation)]


@router.get("/connections/{connection_id}", response_model=ConnectionPublic)
def get_connection(
    connection_id: str, services: ServicesDep, principal: CurrentPrincipal
) -> ConnectionPublic:
    return ConnectionPublic.of(services.connections.get(principal, connection_id))


@router.delete(
    "/connections/{connection_id}",
    response_model=RevocationPublic,
    responses=problem_responses({403: "A viewer's API key, or another user's connection"}),
)
async def delete_connection(
    connection_id: str, services: ServicesDep, principal: CurrentPrincipal
) -> RevocationPublic:
    """Disconnect: revoke at the IdP where it offers revocation, then forget the tokens."""
    report = await run_in_threadpool(services.connections.delete, principal, connection_id)
    return RevocationPublic(deleted=True, revoked=report.revoked, revocation_errors=report.errors)
