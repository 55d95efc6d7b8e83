"""/api/v1/api-keys: list, create and revoke API keys (admins only).

A key is shown once, in the answer that creates it; only its hash is stored, and no
answer after that one holds it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from authprofiles.api.deps import CurrentPrincipal, ServicesDep
from authprofiles.api.paging import Page, by_creation, page_responses
from authprofiles.api.problems import problem_responses
from authprofiles.services.access import Role
from authprofiles.services.api_keys import MAX_KEY_NAME_LENGTH, ApiKeyInfo, CreatedApiKey

router = APIRouter(prefix="/api-keys", tags=["api-keys"])

_NOT_AN_AGENT = "An agent (or a key made before the workspace had people, unless admin)"
_EXAMPLE_ID = "0b5f1c9e-3a7d-4e2b-9c61-58d2f0a4b7e3"
_ROLE = (
    "`admin` manages profiles and keys, `developer` uses profiles (connections, tokens, "
    "the proxy), `viewer` reads"
)


class ApiKeyCreate(BaseModel):
    """A new API key: what it is for, and what it may do."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "billing-agent", "role": "developer"}]},
    )

    name: str = Field(
        min_length=1,
        max_length=MAX_KEY_NAME_LENGTH,
        description="What the key is for, shown in lists",
        examples=["billing-agent"],
    )
    role: Role = Field(
        description=f"{_ROLE}; no higher than the caller's own", examples=["developer"]
    )


class ApiKeyPublic(BaseModel):
    """An API key as lists show it: never the key itself."""

    id: str = Field(description="The key's id, for `DELETE /api-keys/{id}`", examples=[_EXAMPLE_ID])
    name: str = Field(description="What the key is for", examples=["billing-agent"])
    role: Role = Field(description=_ROLE, examples=["developer"])
    created_at: datetime = Field(
        description="When it was made (ISO 8601, UTC)", examples=["2025-01-31T09:30:00Z"]
    )
    revoked_at: datetime | None = Field(
        description="When it was revoked (it no longer works), or null", examples=[None]
    )
    user_id: str | None = Field(
        default=None,
        description="The user the key acts for (with the lower of its role and theirs); "
        "null for a key made before the workspace had an admin",
        examples=[_EXAMPLE_ID],
    )

    @classmethod
    def of(cls, info: ApiKeyInfo) -> ApiKeyPublic:
        return cls(
            id=info.id,
            name=info.name,
            role=info.role,
            created_at=info.created_at,
            revoked_at=info.revoked_at,
            user_id=info.user_id,
        )


class ApiKeyCreated(ApiKeyPublic):
    """The new key, and the key itself: this answer is the only one that holds it."""

    key: str = Field(
        description="The API key, for `Authorization: Bearer <key>`. Shown this once: "
        "only its hash is stored",
        examples=["ap_3f9c0d1e2a4b5c6d_Xb2...redacted"],
    )

    @classmethod
    def of_created(cls, created: CreatedApiKey) -> ApiKeyCreated:
        return cls(
            id=created.id,
            name=created.name,
            role=created.role,
            created_at=created.created_at,
            revoked_at=None,
            key=created.key,
            user_id=created.user_id,
        )


@router.get(
    "",
    response_model=list[ApiKeyPublic],
    responses={
        **page_responses("A page of API keys, oldest first"),
        **problem_responses({403: _NOT_AN_AGENT}),
    },
)
def list_api_keys(
    request: Request,
    response: Response,
    services: ServicesDep,
    principal: CurrentPrincipal,
    page: Page,
) -> list[ApiKeyPublic]:
    """API keys, revoked ones included, oldest first, a page at a time (see `limit` and
    `cursor`): an admin sees the workspace's, anyone else their own. Never the keys
    themselves."""
    keys = services.api_keys.list_for(principal, after=page.after_created(), limit=page.fetch)
    return [ApiKeyPublic.of(info) for info in page.page(request, response, keys, by_creation)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses=problem_responses({403: "A role higher than the caller's own"}),
)
def create_api_key(
    body: ApiKeyCreate, services: ServicesDep, principal: CurrentPrincipal
) -> ApiKeyCreated:
    """Create an API key in the caller's workspace. The answer's `key` is the only time
    the key is shown: store it now."""
    created = services.api_keys.issue(principal, name=body.name, role=body.role.value)
    return ApiKeyCreated.of_created(created)


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(
        {403: _NOT_AN_AGENT, 404: "No active API key of that id the caller may revoke"}
    ),
)
def revoke_api_key(
    key_id: Annotated[str, Path(description="The key's `id`, as listed", examples=[_EXAMPLE_ID])],
    services: ServicesDep,
    principal: CurrentPrincipal,
) -> Response:
    """Revoke an API key (an admin any of the workspace's, anyone else their own): this
    server refuses it at once, every other worker within seconds. A revoked key stays
    listed, with `revoked_at`."""
    services.api_keys.revoke(key_id, principal.workspace_id, by=principal)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
