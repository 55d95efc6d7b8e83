"""Console pages: the admin's (item 8 of the console issue).

- ``/console/users``: the workspace's members: invite, change a role, disable or enable,
  a password reset link (shown once), remove;
- ``/console/teams``: named groups of members: create, rename, change members, delete;
- ``/console/api-keys``: API keys (an admin sees the workspace's, anyone else their
  own): create (the key shown once), revoke;
- ``/console/notifications``: webhooks (the secret shown once, recent deliveries, a
  signed test event) and email (the SMTP settings without the password, the signed-in
  person's own choice of emailed events, a test email);
- ``/console/audit``: the audit log, filtered and paged, with its export.

Pages read through the services with the person's principal; changes go through the
JSON API from the page (``console.js``). Two actions have no API route, so they are
console-only JSON endpoints here, for a signed-in admin with the session's CSRF token in
``X-CSRF-Token`` (as the API asks of a session): ``POST
/console/notifications/test-email`` and ``POST
/console/notifications/webhooks/{id}/test`` (what ``authprofiles notifications test``
does).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from authprofiles.api.paging import by_creation
from authprofiles.api.problems import domain_problem
from authprofiles.api.routes.audit import by_time
from authprofiles.composition import Services
from authprofiles.core.audit import Action
from authprofiles.core.callers import Principal, Role, has_role, require_role
from authprofiles.core.errors import (
    DomainError,
    FieldError,
    Forbidden,
    NotFound,
    Unauthenticated,
    ValidationFailed,
)
from authprofiles.core.notices import EVENT_NAMES
from authprofiles.notify.smtp import smtp_sender
from authprofiles.services.api_keys import ApiKeyInfo
from authprofiles.services.audit import AuditFilters, AuditRecord, parse_time
from authprofiles.services.notifications import Delivery, WebhookInfo, send_test_email
from authprofiles.services.people import Member
from authprofiles.services.signin.sessions import CSRF_HEADER, ActiveSession, csrf_matches
from authprofiles.web.console.base import (
    ConsolePage,
    console_page,
    notices,
    with_console_headers,
)
from authprofiles.web.console.views import Paging, page_url
from authprofiles.web.pages import services_of
from authprofiles.web.signin import current_session

router = APIRouter(include_in_schema=False)

notices(
    user_invited="User invited. Send them a reset link so they can set a password.",
    user_updated="Role saved.",
    user_disabled="User disabled: their sessions and API keys here stopped working.",
    user_enabled="User enabled again.",
    user_removed="User removed from the workspace.",
    reset_link_created="Reset link created. It works once; send it to the person yourself.",
    team_created="Team created.",
    team_saved="Team saved.",
    team_deleted="Team deleted.",
    api_key_created="API key created.",
    api_key_revoked="API key revoked: it no longer works.",
    webhook_created="Webhook added.",
    webhook_deleted="Webhook deleted.",
    email_preferences_saved="Your email preferences are saved.",
)

#: Deliveries shown under each webhook.
RECENT_DELIVERIES = 5
#: Profiles offered in the audit log's profile filter.
PROFILE_CHOICES = 500
#: What people call each role, and what it may do.
ROLE_HINTS = {
    Role.ADMIN: "manages profiles, sharing, members, teams, webhooks and the audit log",
    Role.DEVELOPER: "uses the profiles shared with them and makes their own connections",
    Role.VIEWER: "reads profiles and their statuses",
}
#: The events of webhooks and emails, in words.
EVENT_LABELS = {
    "profile.failing": "A profile starts failing",
    "profile.recovered": "A profile recovers",
    "connection.needs_reauth": "A connection needs to be authorized again",
    "profile.access_granted": "Someone is invited to a profile",
    "approval.requested": "An agent's call waits for a person to approve it",
}
#: The email preference field of each event (``PUT /me/notifications`` takes these).
PREFERENCE_FIELDS = {event: event.replace(".", "_") for event in EVENT_NAMES}
MAX_EMAIL_LENGTH = 320


# -- users ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemberRow:
    member: Member
    last_sign_in: datetime | None
    is_me: bool


def _member_rows(
    services: Services, principal: Principal, paging: Paging
) -> tuple[list[MemberRow], bool]:
    members, more = paging.split(
        services.people.members(principal, after=paging.after, limit=paging.fetch)
    )
    # When each member of the page last signed in: one query for the page.
    signed_in = services.audit_log.last_done(
        principal, Action.USER_SIGNED_IN, [member.id for member in members]
    )
    rows = [
        MemberRow(
            member=member,
            last_sign_in=signed_in.get(member.id),
            is_me=member.id == principal.user_id,
        )
        for member in members
    ]
    return rows, more


@router.get("/console/users")
async def users_page(request: Request, page: ConsolePage = Depends(console_page)) -> Response:
    page.require(Role.ADMIN)
    paging = Paging.of(request)
    rows, more = await page.call(_member_rows, page.services, page.principal, paging)
    return page.render(
        "users.html",
        {
            "rows": rows,
            "roles": list(Role),
            "role_hints": ROLE_HINTS,
            **paging.links("/console/users", rows, more, lambda row: by_creation(row.member)),
        },
        active="users",
        title="Users",
    )


# -- teams ----------------------------------------------------------------------------------


def _all_members(services: Services, principal: Principal) -> list[Member]:
    return services.people.members(principal)


@router.get("/console/teams")
async def teams_page(request: Request, page: ConsolePage = Depends(console_page)) -> Response:
    page.require(Role.ADMIN)
    paging = Paging.of(request)
    teams, more = paging.split(
        await page.call(
            page.services.people.list_teams,
            page.principal,
            after=paging.after,
            limit=paging.fetch,
        )
    )
    members = await page.call(_all_members, page.services, page.principal)
    by_id = {member.id: member for member in members}
    return page.render(
        "teams.html",
        {
            "teams": teams,
            "members": members,
            "by_id": by_id,
            **paging.links("/console/teams", teams, more, by_creation),
        },
        active="teams",
        title="Teams",
    )


# -- API keys -------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyRow:
    key: ApiKeyInfo
    user: str | None
    mine: bool


def _key_rows(
    services: Services, principal: Principal, paging: Paging
) -> tuple[list[KeyRow], bool]:
    keys, more = paging.split(
        services.api_keys.list_for(principal, after=paging.after, limit=paging.fetch)
    )
    if has_role(principal, Role.ADMIN):
        people = {m.id: m.name or m.email for m in services.people.members(principal)}
    else:
        me = services.people.me(principal)
        people = {me.user_id: me.name or me.email or "you"} if me.user_id else {}
    return [
        KeyRow(
            key=key,
            user=people.get(key.user_id) if key.user_id else None,
            mine=key.user_id is not None and key.user_id == principal.user_id,
        )
        for key in keys
    ], more


@router.get("/console/api-keys")
async def api_keys_page(request: Request, page: ConsolePage = Depends(console_page)) -> Response:
    page.require(Role.DEVELOPER)
    paging = Paging.of(request)
    rows, more = await page.call(_key_rows, page.services, page.principal, paging)
    return page.render(
        "api_keys.html",
        {
            "rows": rows,
            "roles": [role for role in Role if page.allows(role)],
            "role_hints": ROLE_HINTS,
            **paging.links("/console/api-keys", rows, more, lambda row: by_creation(row.key)),
        },
        active="api-keys",
        title="API keys",
    )


# -- webhooks and email ---------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookRow:
    hook: WebhookInfo
    deliveries: list[Delivery]


@dataclass(frozen=True)
class EmailSettings:
    configured: bool
    host: str | None
    port: int
    security: str
    sender: str
    username: str | None
    #: Whether a password is set: never the password.
    password_set: bool


def _webhook_rows(services: Services, principal: Principal) -> list[WebhookRow]:
    hooks = services.webhooks.list(principal)
    return [
        WebhookRow(
            hook=hook,
            deliveries=services.webhooks.deliveries(principal, hook.id, limit=RECENT_DELIVERIES),
        )
        for hook in hooks
    ]


def _email_settings(services: Services) -> EmailSettings:
    settings = services.settings
    return EmailSettings(
        configured=bool(settings.smtp_host),
        host=settings.smtp_host,
        port=settings.smtp_port,
        security=settings.smtp_security,
        sender=settings.smtp_from,
        username=settings.smtp_username or None,
        password_set=settings.smtp_password is not None
        and bool(settings.smtp_password.get_secret_value()),
    )


@router.get("/console/notifications")
async def notifications_page(
    request: Request, page: ConsolePage = Depends(console_page)
) -> Response:
    page.require(Role.ADMIN)
    hooks = await page.call(_webhook_rows, page.services, page.principal)
    choices = await page.call(page.services.notification_preferences.get, page.principal)
    return page.render(
        "notifications.html",
        {
            "hooks": hooks,
            "events": EVENT_NAMES,
            "event_labels": EVENT_LABELS,
            "preference_fields": PREFERENCE_FIELDS,
            "choices": choices,
            "email": _email_settings(page.services),
            "allow_private": page.services.settings.webhook_allow_private,
        },
        active="notifications",
        title="Webhooks & email",
    )


def _admin_of(request: Request, session: ActiveSession | None) -> Principal:
    """The signed-in admin behind a console JSON call, who sent the session's CSRF token
    (a cross-site page can make the browser send the cookie, never the header)."""
    if session is None:
        raise Unauthenticated("sign in to the console first")
    if not csrf_matches(session.csrf_token, request.headers.get(CSRF_HEADER)):
        raise Forbidden(
            f"a console request that changes something must send the session's CSRF "
            f"token in the {CSRF_HEADER} header"
        )
    require_role(session.principal, Role.ADMIN)
    return session.principal


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ValidationFailed([], detail="the body must be a JSON object")
    return body


def _recipient(body: dict[str, Any]) -> str:
    to = body.get("to")
    if not isinstance(to, str) or not to.strip():
        raise ValidationFailed([FieldError("to", "an email address is required")])
    to = to.strip()
    if len(to) > MAX_EMAIL_LENGTH or "@" not in to or any(c.isspace() for c in to):
        raise ValidationFailed([FieldError("to", "must be an email address, e.g. ada@example.com")])
    return to


async def _console_json(request: Request, services: Services, answer: Any) -> Response:
    """Run ``answer(principal)`` for a signed-in admin; its dict as JSON, or the problem."""
    session = await current_session(request, services)
    try:
        principal = _admin_of(request, session)
        response: Response = JSONResponse(await answer(principal))
    except DomainError as exc:
        response = domain_problem(exc)
    return with_console_headers(response, session, services)


@router.post("/console/notifications/test-email")
async def send_test_email_now(
    request: Request, services: Services = Depends(services_of)
) -> Response:
    """A test email now, through the SMTP settings (``notifications test --to``)."""

    async def send(principal: Principal) -> dict[str, Any]:
        to = _recipient(await _json_body(request))
        settings = services.settings
        await run_in_threadpool(
            send_test_email, smtp_sender(settings), to, settings.public_base_url
        )
        return {"sent": True, "to": to, "server": f"{settings.smtp_host}:{settings.smtp_port}"}

    return await _console_json(request, services, send)


@router.post("/console/notifications/webhooks/{webhook_id}/test")
async def send_test_webhook_now(
    webhook_id: str, request: Request, services: Services = Depends(services_of)
) -> Response:
    """A signed test event (``webhook.test``) to one of the workspace's webhooks now
    (``notifications test --webhook``)."""

    def send(principal: Principal) -> int:
        # Another workspace's webhook answers as unknown (the deliveries check that).
        services.webhooks.deliveries(principal, webhook_id, limit=1)
        return services.deliveries.send_test_webhook(webhook_id)

    async def answer(principal: Principal) -> dict[str, Any]:
        if len(webhook_id) > 64:
            raise NotFound(f"no webhook with id {webhook_id[:64]!r} in this workspace")
        status = await run_in_threadpool(send, principal)
        return {"sent": True, "status_code": status}

    return await _console_json(request, services, answer)


# -- audit ----------------------------------------------------------------------------------

#: Filters offered on the audit page: each action, and every action of a kind.
ACTION_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
    (
        kind,
        tuple(action.value for action in Action if action.value.split(".")[0] == kind),
    )
    for kind in dict.fromkeys(action.value.split(".")[0] for action in Action)
)
KIND_LABELS = {
    "profile": "Profiles",
    "connection": "Connections",
    "token": "Tokens",
    "user": "Users",
    "team": "Teams",
    "workspace": "Workspaces",
    "api_key": "API keys",
    "keys": "Master keys",
    "webhook": "Webhooks",
}
ACTOR_LABELS = {"user": "Person", "api_key": "API key", "agent": "Agent", "system": "System"}
FILTER_NAMES = ("actor", "action", "profile_id", "since", "until")


def _filter_values(request: Request) -> dict[str, str]:
    return {name: request.query_params.get(name, "").strip() for name in FILTER_NAMES}


def _input_time(values: dict[str, str], filters: AuditFilters) -> dict[str, str]:
    """The filter values as the form shows them: times as a datetime-local input takes
    them (``2025-01-31T09:30``, UTC), whatever form the link gave."""
    shown = dict(values)
    for name, when in (("since", filters.since), ("until", filters.until)):
        if when is not None:
            utc = when.astimezone(UTC)
            shown[name] = utc.strftime("%Y-%m-%dT%H:%M:%S" if utc.second else "%Y-%m-%dT%H:%M")
    return shown


def _local_time(value: str) -> str:
    """A datetime-local input's value (``2025-01-31T09:30``: UTC here) or any ISO time,
    as RFC 3339 in UTC (what the API's export link takes)."""
    return parse_time(value, "time").isoformat().replace("+00:00", "Z")


def _audit_filters(values: dict[str, str]) -> tuple[AuditFilters, list[FieldError]]:
    errors: list[FieldError] = []
    times: dict[str, datetime | None] = {"since": None, "until": None}
    for name in ("since", "until"):
        if values[name]:
            try:
                times[name] = parse_time(values[name], name)
            except ValidationFailed as exc:
                errors += exc.errors
    filters = AuditFilters(
        actor=values["actor"] or None,
        profile_id=values["profile_id"] or None,
        action=values["action"] or None,
        since=times["since"],
        until=times["until"],
    )
    try:
        filters.check()
    except ValidationFailed as exc:
        errors += exc.errors
    return filters, errors


@dataclass(frozen=True)
class AuditPage:
    records: list[AuditRecord]
    more: bool
    profiles: list[tuple[str, str]]


def _audit_page(
    services: Services,
    principal: Principal,
    filters: AuditFilters | None,
    paging: Paging,
    chosen: str | None = None,
) -> AuditPage:
    profiles = [
        (profile.id, profile.name)
        for profile in services.profiles.list(principal, limit=PROFILE_CHOICES)
    ]
    if chosen and all(chosen != id_ for id_, _ in profiles):
        # Beyond the choices offered: the chosen one is offered too, while it exists (a
        # deleted one is said to be so).
        try:
            found = services.profiles.get(principal, chosen)
        except DomainError:
            pass  # deleted (or never there)
        else:
            profiles.append((found.id, found.name))
    if filters is None:
        return AuditPage([], False, profiles)
    records, more = paging.split(
        services.audit_log.query(principal, filters, after=paging.after, limit=paging.fetch)
    )
    return AuditPage(records, more, profiles)


def _detail_text(record: AuditRecord) -> str:
    return ", ".join(f"{key}: {value}" for key, value in record.detail.items())


@router.get("/console/audit")
async def audit_page(request: Request, page: ConsolePage = Depends(console_page)) -> Response:
    page.require(Role.ADMIN)
    paging = Paging.of(request)
    values = _filter_values(request)
    filters, errors = _audit_filters(values)
    shown = await page.call(
        _audit_page,
        page.services,
        page.principal,
        None if errors else filters,
        paging,
        values["profile_id"] or None,
    )
    records = shown.records
    export: dict[str, str] = {
        name: values[name] for name in ("actor", "action", "profile_id") if values[name]
    }
    if not errors:
        export.update(
            {name: _local_time(values[name]) for name in ("since", "until") if values[name]}
        )
    filtered = any(values.values())
    profile_names = dict(shown.profiles)
    return page.render(
        "audit.html",
        {
            "records": records,
            "values": _input_time(values, filters),
            "errors": {error.field: error.message for error in errors},
            "action_groups": ACTION_GROUPS,
            "kind_labels": KIND_LABELS,
            "actor_labels": ACTOR_LABELS,
            "profiles": shown.profiles,
            "profile_names": profile_names,
            "detail_text": _detail_text,
            **paging.links("/console/audit", records, shown.more, by_time, values),
            "export_url": page_url("/api/v1/audit/export", export),
            "clear_url": "/console/audit" if filtered else None,
            "limit": paging.params.get("limit"),
        },
        active="audit",
        title="Audit log",
    )


__all__ = ["router"]
