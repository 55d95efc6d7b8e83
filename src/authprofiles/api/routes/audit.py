"""/api/v1/audit: the workspace's audit log, a page at a time or exported whole (admins
only). Entries never hold a secret; a token handed out is counted per connection, caller
and minute (one `token.issued` entry with the count), not logged per token."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from authprofiles.api.deps import CurrentPrincipal, ServicesDep
from authprofiles.api.paging import Page, page_responses
from authprofiles.api.problems import problem_responses
from authprofiles.core.errors import FieldError, ValidationFailed
from authprofiles.services.audit import MAX_FILTER_LENGTH, AuditFilters, AuditRecord, parse_time

router = APIRouter(prefix="/audit", tags=["audit"])

_ADMIN_ONLY = "Only a workspace admin may read the audit log"
NDJSON = "application/x-ndjson"
_EXAMPLE_ID = "0194b2c4-6f1e-7a3b-9c2d-5e8f0a1b2c3d"


class AuditActor(BaseModel):
    """Who acted."""

    type: Literal["user", "api_key", "agent", "system"] = Field(
        description="`user` (a person, signed in), `api_key`, `agent` (an agent grant) or "
        "`system` (the server itself: the background refresher, the command line)",
        examples=["api_key"],
    )
    id: str | None = Field(
        description="The user's, key's or grant's id; null for the system",
        examples=["0b5f1c9e-3a7d-4e2b-9c61-58d2f0a4b7e3"],
    )
    name: str = Field(description="Its name (a person's name or email)", examples=["ci-deploy"])


class AuditTarget(BaseModel):
    """What was acted on."""

    type: str = Field(
        description="`profile`, `connection`, `user`, `team`, `api_key`, `webhook` or `workspace`",
        examples=["profile"],
    )
    id: str | None = Field(description="Its id", examples=["5d0c8e3a-1f2b-4c6d-8e9f-0a1b2c3d4e5f"])
    name: str | None = Field(description="Its name then, if it has one", examples=["billing"])


class AuditEntryPublic(BaseModel):
    """One line of the audit log: who did what to which thing, when, from where."""

    id: str = Field(description="The entry's id", examples=[_EXAMPLE_ID])
    at: datetime = Field(
        description="When (ISO 8601, UTC); for `token.issued`, when the minute's count was written",
        examples=["2025-01-31T09:30:00.123456Z"],
    )
    actor: AuditActor
    action: str = Field(
        description="What was done, dotted: `profile.created|updated|deleted|tested|"
        "access_changed`, `connection.created|authorized|reauthorized|deleted`, "
        "`token.issued` (one entry per connection, caller and minute, `detail.count` "
        "tokens), `token.refresh_failed`, `user.signed_in|created|disabled`, "
        "`api_key.created|revoked`, `keys.rotated`, `webhook.created|deleted`, ...",
        examples=["profile.tested"],
    )
    workspace_id: str = Field(description="The workspace it happened in", examples=["default"])
    target: AuditTarget | None = Field(description="What was acted on, if anything")
    ip: str | None = Field(
        description="The address the request came from (null when not a request)",
        examples=["203.0.113.7"],
    )
    profile_id: str | None = Field(
        description="The profile it concerns, if any",
        examples=["5d0c8e3a-1f2b-4c6d-8e9f-0a1b2c3d4e5f"],
    )
    detail: dict[str, str | int | float | bool | None] = Field(
        description="Particulars, never a secret",
        examples=[{"ok": False, "stage": "token", "status_code": 401}],
    )

    @classmethod
    def of(cls, record: AuditRecord) -> AuditEntryPublic:
        return cls.model_validate(record.as_json())


def _filters(
    actor: Annotated[
        str | None,
        Query(
            description="Only this actor's: a user's, API key's or agent's id, its name, or "
            "a person's email",
            examples=["ci-deploy"],
            max_length=MAX_FILTER_LENGTH,
        ),
    ] = None,
    profile_id: Annotated[
        str | None,
        Query(
            description="Only entries about this profile",
            examples=["5d0c8e3a-1f2b-4c6d-8e9f-0a1b2c3d4e5f"],
            max_length=MAX_FILTER_LENGTH,
        ),
    ] = None,
    action: Annotated[
        str | None,
        Query(
            description="Only this action (`profile.created`), or every action under a "
            "prefix (`profile.` or `profile.*`)",
            examples=["profile.*"],
            max_length=MAX_FILTER_LENGTH,
        ),
    ] = None,
    since: Annotated[
        str | None,
        Query(
            description="Only entries at or after this time (RFC 3339 / ISO 8601, with `Z` "
            "or an offset)",
            examples=["2025-01-31T00:00:00Z"],
            json_schema_extra={"format": "date-time"},
        ),
    ] = None,
    until: Annotated[
        str | None,
        Query(
            description="Only entries before this time (RFC 3339 / ISO 8601, with `Z` or "
            "an offset)",
            examples=["2025-02-01T00:00:00Z"],
            json_schema_extra={"format": "date-time"},
        ),
    ] = None,
) -> AuditFilters:
    """The filters, times read strictly (the schema says `date-time`); all bad ones at once."""
    times: dict[str, datetime | None] = {"since": None, "until": None}
    errors: list[FieldError] = []
    for name, value in (("since", since), ("until", until)):
        if value is None:
            continue
        try:
            times[name] = parse_time(value, name, strict=True)
        except ValidationFailed as exc:
            errors += exc.errors
    if errors:
        raise ValidationFailed(errors)
    return AuditFilters(
        actor=actor,
        profile_id=profile_id,
        action=action,
        since=times["since"],
        until=times["until"],
    )


Filters = Annotated[AuditFilters, Depends(_filters)]


def by_time(record: AuditRecord) -> list[str]:
    """The cursor key of a list newest first: ``at``, then ``id``."""
    return [record.at.isoformat(), record.id]


@router.get(
    "",
    response_model=list[AuditEntryPublic],
    responses={
        **page_responses("A page of audit entries, newest first"),
        **problem_responses({403: _ADMIN_ONLY}),
    },
)
def list_audit_entries(
    request: Request,
    response: Response,
    services: ServicesDep,
    principal: CurrentPrincipal,
    page: Page,
    filters: Filters,
) -> list[AuditEntryPublic]:
    """The workspace's audit log, newest first, a page at a time (see `limit` and
    `cursor`), filtered by actor, profile, action and time."""
    after = page.after_created()
    records = services.audit_log.query(principal, filters, after=after, limit=page.fetch)
    return [AuditEntryPublic.of(r) for r in page.page(request, response, records, by_time)]


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Every matching entry, oldest first, one JSON object a line "
            "(JSON Lines), each as `GET /audit` lists it",
            "content": {
                NDJSON: {"schema": {"$ref": "#/components/schemas/AuditEntryPublic"}},
            },
        },
        **problem_responses({403: _ADMIN_ONLY}),
    },
)
def export_audit_entries(
    services: ServicesDep, principal: CurrentPrincipal, filters: Filters
) -> StreamingResponse:
    """Every entry of the workspace's audit log that matches the filters, oldest first,
    as JSON Lines (`application/x-ndjson`), streamed as it is read."""
    records = services.audit_log.export(principal, filters)  # checks before answering
    return StreamingResponse(
        _lines(records),
        media_type=NDJSON,
        headers={"Content-Disposition": 'attachment; filename="audit.jsonl"'},
    )


def _lines(records: Iterator[AuditRecord]) -> Iterator[bytes]:
    for record in records:
        yield json.dumps(record.as_json(), separators=(",", ":")).encode() + b"\n"
