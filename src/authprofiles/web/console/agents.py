"""Console pages of the agents issue: what agents may do, and the calls they wait on.

- ``/console/agents``: agent grants (an admin sees the workspace's, anyone else the ones
  they made): the agent, its connections, rules, calls made against its budget, when it
  ends; mint one (its token shown once), revoke one, or every grant of an agent at once;
- ``/console/approvals``: the calls agents made that a rule holds for a person, pending
  ones first (or those in another state), each linking to its page;
- ``/console/approvals/{id}``: one held call, the page an agent's ``approval_url`` and
  the ``approval.requested`` email link to: who asks, where to, the body's (redacted)
  beginning, and Approve / Deny for the people who may decide (admins, and the grant's
  maker; never an agent).

As every console page, these read through the services with the person's principal and
change nothing themselves: minting, revoking and deciding go through the JSON API
(``/api/v1/agent-grants``, ``/api/v1/approvals/{id}/approve|deny``) from ``console.js``
with the session's CSRF token, so validation, permissions and problems are the API's.
Nothing here holds a connection's token: connections are shown by their profile and
owner only, and a held call's body preview was redacted when it was stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from authprofiles.api.paging import by_creation
from authprofiles.composition import Services
from authprofiles.core.agent_grants import MAX_AGENT_NAME, MAX_RULES, RULE_METHODS, AgentGrant
from authprofiles.core.callers import Principal, Role, has_role
from authprofiles.core.connections import SHARED_OWNER
from authprofiles.core.errors import DomainError
from authprofiles.services.approvals import PREVIEW_BYTES, STATUSES, Approval
from authprofiles.web.console.base import ConsolePage, console_page, notices
from authprofiles.web.console.views import Moment, Paging

router = APIRouter(include_in_schema=False)

notices(
    agent_grant_created="Agent grant made. Give the agent its token: it works on the proxy "
    "and /mcp only.",
    agent_grant_revoked="Agent grant revoked: its token no longer works.",
    agent_revoked="Every grant of that agent is revoked: none of its tokens works any more.",
    approval_approved="Approved. The agent's next identical call goes through, once.",
    approval_denied="Denied. The call never reaches the upstream.",
)

#: How long a new grant lives, as the form offers it (``ttl_seconds``), the default first.
TTL_CHOICES: tuple[tuple[int, str], ...] = (
    (86_400, "1 day"),
    (3_600, "1 hour"),
    (8 * 3_600, "8 hours"),
    (7 * 86_400, "7 days"),
    (30 * 86_400, "30 days (the most)"),
)
#: The methods a rule may name, in the order people think of them.
METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
assert set(METHOD_ORDER) == RULE_METHODS
#: The held calls' states, as the filter and the badges say them: (label, badge kind).
APPROVAL_STATES: dict[str, tuple[str, str]] = {
    "pending": ("Waiting for a decision", "warning"),
    "approved": ("Approved, not made yet", "success"),
    "denied": ("Denied", "danger"),
    "used": ("Approved and made", "info"),
    "expired": ("Expired", "plain"),
}
assert set(APPROVAL_STATES) == set(STATUSES)
#: The filter tabs of the held calls: a state, or every one.
APPROVAL_FILTERS: tuple[tuple[str, str], ...] = (
    ("pending", "Pending"),
    ("approved", "Approved"),
    ("denied", "Denied"),
    ("used", "Made"),
    ("expired", "Expired"),
    ("all", "All"),
)
GRANT_STATES: dict[str, tuple[str, str]] = {
    "active": ("Active", "success"),
    "expired": ("Expired", "plain"),
    "revoked": ("Revoked", "danger"),
}


# -- connections, by their profile and owner (never a token) --------------------------------


@dataclass(frozen=True)
class ConnectionLabel:
    """A connection as these pages name it: its profile, tenant and whose it is."""

    id: str
    label: str
    #: Whether the person may hand it to an agent: the shared connection of a profile
    #: they may use, or their own (an admin may not use another person's).
    usable: bool
    active: bool


def _past(when: datetime | None, now: datetime) -> Moment | None:
    """A moment that has passed (made, decided) as people read it: "just now" for one a
    moment ago, never "in under a minute" (the relative time rounds toward zero)."""
    if when is None:
        return None
    return Moment.of(when, max(now, _aware(when) + timedelta(seconds=1)))


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _connection_labels(services: Services, principal: Principal) -> dict[str, ConnectionLabel]:
    """Every connection the person sees, by id, named (nothing of it secret is kept)."""
    if not has_role(principal, Role.DEVELOPER):
        return {}
    profiles = {profile.id: profile.name for profile in services.profiles.list(principal)}
    people: dict[str, str] = {}
    if has_role(principal, Role.ADMIN):
        people = {m.id: m.name or m.email for m in services.people.members(principal)}
    labels: dict[str, ConnectionLabel] = {}
    for connection in services.connections.list(principal):
        name = profiles.get(connection.profile_id, "a deleted profile")
        if connection.tenant:
            name += f" ({connection.tenant})"
        if connection.owner == SHARED_OWNER:
            whose = "shared connection"
        elif connection.owner == principal.user_id:
            whose = "your connection"
        else:
            whose = f"{people.get(connection.owner, 'another person')}'s connection"
        labels[connection.id] = ConnectionLabel(
            id=connection.id,
            label=f"{name}: {whose}",
            usable=connection.owner in (SHARED_OWNER, principal.user_id),
            active=connection.status.value == "active",
        )
    return labels


def _label_of(labels: dict[str, ConnectionLabel], connection_id: str) -> str:
    found = labels.get(connection_id)
    return found.label if found else f"connection {connection_id[:8]}… (not visible to you)"


# -- agent grants ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleView:
    methods: tuple[str, ...]
    path: str
    host: str | None
    approval: bool


@dataclass(frozen=True)
class GrantRow:
    grant: AgentGrant
    state: str
    state_label: str
    state_kind: str
    connections: list[str]
    rules: list[RuleView]
    maker: str | None
    expires_at: Moment | None
    created_at: Moment | None

    @property
    def active(self) -> bool:
        return self.state == "active"


def grant_state(grant: AgentGrant, now: datetime) -> str:
    """``active``, ``expired`` or ``revoked``, as ``GET /agent-grants`` says it."""
    if grant.revoked_at is not None:
        return "revoked"
    return "active" if grant.active_at(now) else "expired"


@dataclass(frozen=True)
class AgentsPage:
    rows: list[GrantRow]
    more: bool
    choices: list[ConnectionLabel]


def _people(services: Services, principal: Principal) -> Callable[[str | None], str | None]:
    """How a page names a person by id: "you", their name (an admin sees the members), or
    "another person"; None for no one."""
    names: dict[str, str] = {}
    if has_role(principal, Role.ADMIN):
        names = {m.id: m.name or m.email for m in services.people.members(principal)}

    def name(user_id: str | None) -> str | None:
        if user_id is None:
            return None
        return "you" if user_id == principal.user_id else names.get(user_id, "another person")

    return name


def _agents_page(services: Services, principal: Principal, paging: Paging) -> AgentsPage:
    grants, more = paging.split(
        services.agent_grants.list_for(principal, after=paging.after, limit=paging.fetch)
    )
    labels = _connection_labels(services, principal)
    person = _people(services, principal)
    now = datetime.now(UTC)
    rows = []
    for grant in grants:
        state = grant_state(grant, now)
        label, kind = GRANT_STATES[state]
        maker = person(grant.created_by)
        rows.append(
            GrantRow(
                grant=grant,
                state=state,
                state_label=label,
                state_kind=kind,
                connections=sorted(_label_of(labels, c) for c in grant.connection_ids),
                rules=[RuleView(r.methods, r.path, r.host, r.approval) for r in grant.rules],
                maker=maker,
                expires_at=Moment.of(grant.expires_at, now),
                created_at=_past(grant.created_at, now),
            )
        )
    choices = sorted(
        (c for c in labels.values() if c.usable), key=lambda c: (c.label.lower(), c.id)
    )
    return AgentsPage(rows, more, choices)


@router.get("/console/agents")
async def agents_page(request: Request, page: ConsolePage = Depends(console_page)) -> Response:
    page.require(Role.DEVELOPER)
    paging = Paging.of(request)
    found = await page.call(_agents_page, page.services, page.principal, paging)
    return page.render(
        "agents.html",
        {
            "rows": found.rows,
            "choices": found.choices,
            "ttl_choices": TTL_CHOICES,
            "methods": METHOD_ORDER,
            "max_agent_name": MAX_AGENT_NAME,
            "max_rules": MAX_RULES,
            **paging.links(
                "/console/agents", found.rows, found.more, lambda r: by_creation(r.grant)
            ),
        },
        active="agents",
        title="Agents",
    )


# -- held calls --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApprovalView:
    """A held call as its page and the list show it."""

    approval: Approval
    state_label: str
    state_kind: str
    connection: str
    #: The body's beginning as text (pretty-printed when it is whole JSON), or None.
    body: str | None
    body_truncated: bool
    created_at: Moment | None
    expires_at: Moment | None
    decided_at: Moment | None
    decided_by: str | None

    @property
    def pending(self) -> bool:
        return self.approval.status == "pending"


def body_text(preview: str) -> str | None:
    """The stored preview (credentials already hidden) as shown: JSON indented, anything
    else as it is; None for no body."""
    if not preview:
        return None
    try:
        document = json.loads(preview)
    except ValueError:
        return preview
    if not isinstance(document, dict | list):
        return preview
    return json.dumps(document, indent=2, ensure_ascii=False)


def _views(
    services: Services, principal: Principal, approvals: Iterable[Approval]
) -> list[ApprovalView]:
    labels = _connection_labels(services, principal)
    person = _people(services, principal)
    now = datetime.now(UTC)
    views = []
    for approval in approvals:
        label, kind = APPROVAL_STATES.get(approval.status, (approval.status, "plain"))
        decided_by = person(approval.decided_by)
        views.append(
            ApprovalView(
                approval=approval,
                state_label=label,
                state_kind=kind,
                connection=_label_of(labels, approval.connection_id),
                body=body_text(approval.body_preview),
                body_truncated=len(approval.body_preview.encode()) >= PREVIEW_BYTES,
                created_at=_past(approval.created_at, now),
                expires_at=Moment.of(approval.expires_at, now),
                decided_at=_past(approval.decided_at, now),
                decided_by=decided_by,
            )
        )
    return views


def _approvals_list(
    services: Services, principal: Principal, status: str | None, paging: Paging
) -> tuple[list[ApprovalView], bool]:
    found, more = paging.split(
        services.approvals.list_for(
            principal, status=status, after=paging.after, limit=paging.fetch
        )
    )
    return _views(services, principal, found), more


@router.get("/console/approvals")
async def approvals_page(request: Request, page: ConsolePage = Depends(console_page)) -> Response:
    asked = request.query_params.get("status", "pending")
    shown = asked if asked in STATUSES or asked == "all" else "pending"
    paging = Paging.of(request)
    views, more = await page.call(
        _approvals_list,
        page.services,
        page.principal,
        None if shown == "all" else shown,
        paging,
    )
    params = {} if shown == "pending" else {"status": shown}
    return page.render(
        "approvals.html",
        {
            "views": views,
            "shown": shown,
            "filters": APPROVAL_FILTERS,
            **paging.links(
                "/console/approvals", views, more, lambda v: by_creation(v.approval), params
            ),
        },
        active="approvals",
        title="Approvals",
    )


def _one_approval(services: Services, principal: Principal, approval_id: str) -> ApprovalView:
    return _views(services, principal, [services.approvals.get(principal, approval_id)])[0]


@router.get("/console/approvals/{approval_id}")
async def approval_page(approval_id: str, page: ConsolePage = Depends(console_page)) -> Response:
    try:
        view = await page.call(_one_approval, page.services, page.principal, approval_id)
    except DomainError:
        # Unknown, another workspace's, or not this person's to decide: as unknown.
        view = None
    if view is None:
        return page.render(
            "approval_missing.html",
            active="approvals",
            status_code=404,
            title="No such held call",
        )
    return page.render(
        "approval.html",
        {"view": view, "approval": view.approval},
        active="approvals",
        title=f"{view.approval.method} call by {view.approval.agent}",
    )


__all__ = ["body_text", "grant_state", "router"]
