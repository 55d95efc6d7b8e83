"""/api/v1/webhooks: endpoints called on the workspace's events, signed, with a delivery
log (admins only); /api/v1/me/notifications: the caller's choice of emailed events.

A webhook's secret is shown once, in the answer that creates it. Each delivery carries
`X-AuthProfiles-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">` keyed
with the secret's UTF-8 bytes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from authprofiles.api.deps import CurrentPrincipal, ServicesDep
from authprofiles.api.paging import Page, by_creation, page_responses
from authprofiles.api.problems import problem_responses
from authprofiles.core.notices import NoticeEvent
from authprofiles.services.notifications import CreatedWebhook, Delivery, WebhookInfo
from authprofiles.services.notifications.urls import MAX_URL_LENGTH

router = APIRouter(tags=["webhooks"])

_ADMIN_ONLY = "Only an admin may do this"
_NOT_FOUND = "No webhook of that id in the caller's workspace"
_EXAMPLE_ID = "7c1e2d3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
_EXAMPLE_URL = "https://hooks.example.com/authprofiles"
_EVENTS = (
    "`profile.failing` (a profile stopped working wherever it is used: once per "
    "incident), `profile.recovered` (it works again), `connection.needs_reauth` (a "
    "connection must be authorized again), `profile.access_granted` (people were "
    "invited to a profile), `approval.requested` (an agent's call waits for a person's "
    "approval)"
)
_TIME_EXAMPLE = "2025-01-31T09:30:00Z"


class WebhookCreate(BaseModel):
    """A new webhook: where to send, and which events."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"url": _EXAMPLE_URL, "events": ["profile.failing", "profile.recovered"]}]
        },
    )

    url: str = Field(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="Where deliveries are POSTed: an http or https URL. Loopback and "
        "private addresses are refused unless the server allows them "
        "(AUTHPROFILES_WEBHOOK_ALLOW_PRIVATE)",
        examples=[_EXAMPLE_URL],
    )
    events: list[NoticeEvent] = Field(
        min_length=1,
        description=f"The events to deliver: {_EVENTS}",
        examples=[["profile.failing", "profile.recovered"]],
    )


class WebhookPublic(BaseModel):
    """A webhook as lists show it: never its secret."""

    id: str = Field(
        description="The webhook's id, for `DELETE /webhooks/{id}`", examples=[_EXAMPLE_ID]
    )
    url: str = Field(description="Where deliveries are POSTed", examples=[_EXAMPLE_URL])
    events: list[NoticeEvent] = Field(
        description="The events delivered to it", examples=[["profile.failing"]]
    )
    created_at: datetime = Field(
        description="When it was made (ISO 8601, UTC)", examples=[_TIME_EXAMPLE]
    )

    @classmethod
    def of(cls, info: WebhookInfo) -> WebhookPublic:
        return cls(
            id=info.id,
            url=info.url,
            events=[NoticeEvent(e) for e in info.events],
            created_at=info.created_at,
        )


class WebhookCreated(WebhookPublic):
    """The new webhook and its signing secret: this answer is the only one that holds it."""

    secret: str = Field(
        description="The signing secret: the HMAC-SHA256 key is its UTF-8 bytes. Shown "
        "this once: store it now",
        examples=["whsec_3f9c0d1e2a4b...redacted"],
    )

    @classmethod
    def of_created(cls, created: CreatedWebhook) -> WebhookCreated:
        return cls(**WebhookPublic.of(created).model_dump(), secret=created.secret)


class DeliveryPublic(BaseModel):
    """One message to a webhook: what was sent, and how it went."""

    id: str = Field(
        description="The delivery's id: the body's `id`, the same on every retry",
        examples=["5d0c8e3a-1f2b-4c6d-8e9f-0a1b2c3d4e5f"],
    )
    webhook_id: str = Field(description="The webhook it went to", examples=[_EXAMPLE_ID])
    event: str = Field(description="The event it tells of", examples=["profile.failing"])
    status: Literal["pending", "sent", "failed"] = Field(
        description="`pending` (not yet delivered: tried again at `next_attempt_at`), "
        "`sent` (the receiver answered 2xx) or `failed` (given up after the last retry)",
        examples=["sent"],
    )
    attempts: int = Field(description="Attempts made so far", examples=[1])
    created_at: datetime = Field(
        description="When the event happened (ISO 8601, UTC)", examples=[_TIME_EXAMPLE]
    )
    next_attempt_at: datetime | None = Field(
        description="When it is tried next (pending only), or null", examples=[None]
    )
    sent_at: datetime | None = Field(
        description="When the receiver accepted it, or null", examples=["2025-01-31T09:30:01Z"]
    )
    last_status_code: int | None = Field(
        description="The receiver's HTTP status at the last attempt, or null when it gave none",
        examples=[200],
    )
    last_error: str | None = Field(
        description="Why the last attempt failed, or null", examples=[None]
    )

    @classmethod
    def of(cls, delivery: Delivery) -> DeliveryPublic:
        return cls(
            id=delivery.id,
            webhook_id=delivery.webhook_id,
            event=delivery.event,
            status=delivery.status,
            attempts=delivery.attempts,
            created_at=delivery.created_at,
            next_attempt_at=delivery.next_attempt_at,
            sent_at=delivery.sent_at,
            last_status_code=delivery.last_status_code,
            last_error=delivery.last_error,
        )


_WebhookId = Annotated[
    str, Path(description="The webhook's `id`, as listed", examples=[_EXAMPLE_ID])
]


@router.get(
    "/webhooks",
    response_model=list[WebhookPublic],
    responses={
        **page_responses("A page of webhooks, oldest first"),
        **problem_responses({403: _ADMIN_ONLY}),
    },
)
def list_webhooks(
    request: Request,
    response: Response,
    services: ServicesDep,
    principal: CurrentPrincipal,
    page: Page,
) -> list[WebhookPublic]:
    """The workspace's webhooks, oldest first, a page at a time (see `limit` and
    `cursor`). Never their secrets."""
    hooks = services.webhooks.list(principal, after=page.after_created(), limit=page.fetch)
    return [WebhookPublic.of(info) for info in page.page(request, response, hooks, by_creation)]


@router.post(
    "/webhooks",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookCreated,
    responses=problem_responses({403: _ADMIN_ONLY}),
)
def create_webhook(
    body: WebhookCreate, services: ServicesDep, principal: CurrentPrincipal
) -> WebhookCreated:
    """Register a webhook in the caller's workspace. The answer's `secret` is the only
    time it is shown: store it to check each delivery's `X-AuthProfiles-Signature`."""
    created = services.webhooks.create(
        principal, url=body.url, events=[event.value for event in body.events]
    )
    return WebhookCreated.of_created(created)


@router.delete(
    "/webhooks/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses({403: _ADMIN_ONLY, 404: _NOT_FOUND}),
)
def delete_webhook(
    webhook_id: _WebhookId, services: ServicesDep, principal: CurrentPrincipal
) -> Response:
    """Delete a webhook: nothing more is sent to it, deliveries still pending included,
    and its delivery log goes with it."""
    services.webhooks.delete(principal, webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/webhooks/{webhook_id}/deliveries",
    response_model=list[DeliveryPublic],
    responses={
        **page_responses("A page of the webhook's deliveries, newest first"),
        **problem_responses({403: _ADMIN_ONLY, 404: _NOT_FOUND}),
    },
)
def list_deliveries(
    webhook_id: _WebhookId,
    request: Request,
    response: Response,
    services: ServicesDep,
    principal: CurrentPrincipal,
    page: Page,
) -> list[DeliveryPublic]:
    """The webhook's delivery log, newest first: each event sent to it, its attempts,
    the receiver's last status and the last error. Failed deliveries are retried with
    exponential backoff, and given up after 10 attempts."""
    deliveries = services.webhooks.deliveries(
        principal, webhook_id, before=page.after_created(), limit=page.fetch
    )
    shown = page.page(request, response, deliveries, by_creation)
    return [DeliveryPublic.of(delivery) for delivery in shown]


# -- the caller's email choices ------------------------------------------------------------


class EmailChoices(BaseModel):
    """Whether each event is emailed to the caller (every one is, unless turned off)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    profile_failing: bool = Field(
        alias="profile.failing",
        description="A profile the caller administers started failing",
        examples=[True],
    )
    profile_recovered: bool = Field(
        alias="profile.recovered",
        description="A profile the caller administers recovered",
        examples=[True],
    )
    connection_needs_reauth: bool = Field(
        alias="connection.needs_reauth",
        description="A connection of the caller's needs to be authorized again",
        examples=[True],
    )
    profile_access_granted: bool = Field(
        alias="profile.access_granted",
        description="The caller was invited to use a profile",
        examples=[False],
    )
    approval_requested: bool = Field(
        alias="approval.requested",
        description="An agent's call waits for the caller's approval (their grant's, or as "
        "an admin)",
        examples=[True],
    )


class EmailChoicesUpdate(BaseModel):
    """The events to turn on (true) or off (false); those left out stay as they are."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={"examples": [{"profile.access_granted": False}]},
    )

    profile_failing: bool | None = Field(
        default=None,
        alias="profile.failing",
        description="Email the caller when a profile starts failing",
        examples=[True],
    )
    profile_recovered: bool | None = Field(
        default=None,
        alias="profile.recovered",
        description="Email the caller when a profile recovers",
        examples=[True],
    )
    connection_needs_reauth: bool | None = Field(
        default=None,
        alias="connection.needs_reauth",
        description="Email the caller when a connection of theirs needs authorizing again",
        examples=[True],
    )
    profile_access_granted: bool | None = Field(
        default=None,
        alias="profile.access_granted",
        description="Email the caller when they are invited to a profile",
        examples=[False],
    )
    approval_requested: bool | None = Field(
        default=None,
        alias="approval.requested",
        description="Email the caller when an agent's call waits for their approval",
        examples=[True],
    )


class NotificationSettings(BaseModel):
    """The caller's notification settings."""

    model_config = ConfigDict(extra="forbid")

    email: EmailChoices = Field(description="Which events are emailed to the caller")


class NotificationSettingsUpdate(BaseModel):
    """A change to the caller's notification settings."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"email": {"profile.access_granted": False}}]},
    )

    email: EmailChoicesUpdate = Field(description="The events to turn on or off by email")


_NO_USER = "The caller acts for no user (an API key made before its workspace had an admin)"


@router.get(
    "/me/notifications",
    response_model=NotificationSettings,
    tags=["notifications"],
    responses=problem_responses({409: _NO_USER}),
)
def get_notification_settings(
    services: ServicesDep, principal: CurrentPrincipal
) -> NotificationSettings:
    """Which events are emailed to the caller. Every event is, until turned off."""
    choices = services.notification_preferences.get(principal)
    return NotificationSettings(email=EmailChoices.model_validate(choices))


@router.put(
    "/me/notifications",
    response_model=NotificationSettings,
    tags=["notifications"],
    responses=problem_responses({409: _NO_USER}),
)
def put_notification_settings(
    body: NotificationSettingsUpdate, services: ServicesDep, principal: CurrentPrincipal
) -> NotificationSettings:
    """Turn emails about each event on or off for the caller; the events left out stay
    as they are. Answers every event's setting."""
    given = body.email.model_dump(by_alias=True, exclude_none=True)
    choices = services.notification_preferences.set(principal, given)
    return NotificationSettings(email=EmailChoices.model_validate(choices))
