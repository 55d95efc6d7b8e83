"""Console pages of seed 004: a profile's **Sharing** (Save login credentials, Invite
roles, who may use it) for admins, and **My settings > OAuth connections** for everyone.

The pages read through the services with the signed-in person's principal and render
only what a connection shows through the API (status, expiry, the last error): never a
token, a password or a field value. Connecting, reconnecting, disconnecting and saving
invitations go through the JSON API from ``static/connections.js``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from authprofiles.core.auth_types import AUTH_TYPES, AuthType
from authprofiles.core.callers import Role
from authprofiles.core.connections import SHARED_OWNER
from authprofiles.core.errors import NotFound
from authprofiles.core.profiles import (
    AuthorizationMode,
    FormFieldType,
    FormFieldVisibility,
    Profile,
    ProfileStatus,
)
from authprofiles.services.people import Member, Team
from authprofiles.web.console.base import ConsolePage, console_page, notices
from authprofiles.web.console.views import ConnectionView, missing_profile

router = APIRouter(include_in_schema=False)

notices(
    connection_connected="Connected. The connection is active.",
    connection_disconnected="Disconnected. Its tokens were revoked and forgotten.",
    connection_reconnected="Reconnected. The same connection is active again.",
    shared_saved="Login credentials saved: the shared connection is active.",
    shared_disconnected="The shared connection was disconnected.",
    access_saved="Invitations saved.",
)


# -- how a profile connects --------------------------------------------------------------
class Flow(StrEnum):
    """What connecting through a profile asks of the person."""

    #: Authorization code: to the identity provider's login page and back.
    REDIRECT = "redirect"
    #: Device code: a code to type on the identity provider's page, polled until done.
    DEVICE = "device"
    #: Password grant: a User ID and Password (in user mode, asked every time).
    PASSWORD = "password"  # noqa: S105 - a flow's name
    #: Client credentials: the client's own credentials, one click.
    CLIENT = "client"


def flow_of(profile: Profile) -> Flow:
    if profile.auth_type is AuthType.AUTHORIZATION_CODE:
        return Flow.REDIRECT
    if profile.auth_type is AuthType.DEVICE_CODE:
        return Flow.DEVICE
    if profile.auth_type is AuthType.PASSWORD:
        return Flow.PASSWORD
    return Flow.CLIENT


def user_connects(profile: Profile) -> bool:
    """Whether people connect their own (user-specific) connection through the profile;
    otherwise everyone uses its shared connection (client credentials, and the password
    grant pre-authorized by an admin: seed 003)."""
    if profile.auth_type is AuthType.CLIENT_CREDENTIALS:
        return False
    if profile.auth_type is AuthType.PASSWORD:
        return profile.authorization_mode is not AuthorizationMode.PREAUTHORIZED
    return True


@dataclass(frozen=True)
class Input:
    """One input of the connect form: the tenant, a form field, an authorization field
    without a value, or the password grant's User ID and Password.

    ``name`` is the request's member; a field's value goes into the map ``fields`` by
    its key (``map_key``), which may hold dots: the input is named by ``data-map`` and
    ``data-key`` rather than a dotted name (which the console's script would nest)."""

    name: str
    label: str
    hint: str = ""
    kind: str = "text"
    required: bool = False
    autocomplete: str = "off"
    map_key: str | None = None


def field_input(key: str, label: str, hint: str, *, kind: str, required: bool) -> Input:
    """The input of a value of the map ``fields`` (``POST .../connections``)."""
    return Input("fields", label, hint, kind=kind, required=required, map_key=key)


def connect_inputs(profile: Profile, *, shared: bool) -> list[Input]:
    """What connecting through ``profile`` asks for (``POST /profiles/{id}/connections``)."""
    inputs: list[Input] = []
    if profile.tenancy:
        inputs.append(
            Input(
                "tenant",
                "Tenant",
                "The subdomain of your organization in the provider's URLs",
                required=True,
            )
        )
    for form_field in profile.form_fields:
        if form_field.visibility is FormFieldVisibility.HIDDEN and not form_field.mandatory:
            continue
        inputs.append(
            field_input(
                form_field.key,
                form_field.title,
                form_field.hint,
                kind="password" if form_field.type is FormFieldType.PASSWORD else "text",
                required=form_field.mandatory,
            )
        )
    for auth_field in profile.authorization_fields:
        if auth_field.value is None:
            inputs.append(
                field_input(
                    auth_field.key,
                    auth_field.key,
                    f"Sent in the request's {auth_field.type.value}",
                    kind="text",
                    required=True,
                )
            )
    inputs.extend(credential_inputs(profile, shared=shared, reconnect=False))
    return inputs


def credential_inputs(profile: Profile, *, shared: bool, reconnect: bool) -> list[Input]:
    """The password grant's User ID and Password: needed in user mode; in pre-authorized
    mode they replace the ones stored (left blank, the stored ones are used)."""
    if profile.auth_type is not AuthType.PASSWORD:
        return []
    spec = AUTH_TYPES[profile.auth_type]
    if profile.authorization_mode is AuthorizationMode.PREAUTHORIZED:
        hint = (
            "Leave blank to keep the ones this connection uses."
            if reconnect
            else "Leave blank to use the ones stored on the profile."
        )
        return [
            Input("username", spec.label_of("username"), hint, autocomplete="off"),
            Input("password", spec.label_of("password"), hint, kind="password"),
        ]
    hint = (
        "Used once to get a token; not kept."
        if not shared
        else "Used once to get the shared token; in user mode they are not kept."
    )
    return [
        Input("username", spec.label_of("username"), required=True, autocomplete="username"),
        Input(
            "password",
            spec.label_of("password"),
            hint,
            kind="password",
            required=True,
            autocomplete="current-password",
        ),
    ]


@dataclass(frozen=True)
class ProfileView:
    """A profile as these pages show it: never its secrets."""

    id: str
    name: str
    identity_provider: str
    auth_type: str
    auth_type_label: str
    configured: bool
    failing_reason: str | None
    flow: Flow
    user_connects: bool
    tenancy: bool
    #: Inputs of the connect form (user-specific), and of the reconnect form.
    inputs: list[Input]
    reconnect_inputs: list[Input]
    #: The same for the shared connection (Save login credentials).
    shared_inputs: list[Input]
    shared_reconnect_inputs: list[Input]

    @classmethod
    def of(cls, profile: Profile) -> ProfileView:
        return cls(
            id=profile.id,
            name=profile.name,
            identity_provider=profile.identity_provider or profile.name,
            auth_type=profile.auth_type.value,
            auth_type_label=AUTH_TYPES[profile.auth_type].label,
            configured=profile.status is not ProfileStatus.NOT_CONFIGURED,
            failing_reason=profile.failing_reason,
            flow=flow_of(profile),
            user_connects=user_connects(profile),
            tenancy=bool(profile.tenancy),
            inputs=connect_inputs(profile, shared=False),
            reconnect_inputs=credential_inputs(profile, shared=False, reconnect=True),
            shared_inputs=connect_inputs(profile, shared=True),
            shared_reconnect_inputs=credential_inputs(profile, shared=True, reconnect=True),
        )


@dataclass(frozen=True)
class Row:
    """A row of My connections: a profile and one of the person's connections on it (or
    none yet), with the profile's shared connections."""

    profile: ProfileView
    connection: ConnectionView | None
    shared: list[ConnectionView]
    #: The first row of its profile (the others are the same profile's other tenants).
    first: bool = True
    #: False for a connection kept on a profile no longer shared with the person: they
    #: may still disconnect it, not use or reconnect it.
    shared_with_me: bool = True


# -- My settings > OAuth connections -----------------------------------------------------
@router.get("/console/connections")
async def my_connections(page: ConsolePage = Depends(console_page)) -> Response:
    rows: list[Row] = []
    if page.allows(Role.DEVELOPER) and page.principal.user_id is not None:
        rows = await page.call(_rows, page)
    return page.render(
        "connections.html",
        {
            "rows": rows,
            "viewer": not page.allows(Role.DEVELOPER),
            "user_id": page.principal.user_id,
        },
        active="connections",
        title="OAuth connections",
    )


def _rows(page: ConsolePage) -> list[Row]:
    """A row per profile the person may use (every one for an admin, the ones they or a
    team of theirs were invited to for a developer) and per connection of theirs on it;
    then their connections on profiles no longer shared with them (to disconnect)."""
    services, principal = page.services, page.principal
    user_id = principal.user_id
    assert user_id is not None
    now = datetime.now(UTC)
    profiles = services.profiles.list(principal)
    if page.allows(Role.ADMIN):
        usable = {p.id for p in profiles}
    else:
        usable = services.people.usable_profiles(principal.workspace_id, user_id)
    mine = services.connections.list(principal, owner=user_id)
    shared = services.connections.list(principal, owner=SHARED_OWNER)
    rows: list[Row] = []
    former: list[Row] = []
    for profile in profiles:
        own = [ConnectionView.of(c, now) for c in mine if c.profile_id == profile.id]
        if profile.id not in usable:
            former.extend(
                Row(ProfileView.of(profile), c, [], first=False, shared_with_me=False) for c in own
            )
            continue
        view = ProfileView.of(profile)
        shared_here = [ConnectionView.of(c, now) for c in shared if c.profile_id == profile.id]
        if not own:
            rows.append(Row(view, None, shared_here))
        for index, connection in enumerate(own):
            rows.append(Row(view, connection, shared_here, first=index == 0))
    return rows + former


# -- a profile's Sharing (seed 004) ---------------------------------------------------------
@dataclass(frozen=True)
class Person:
    id: str
    name: str
    email: str
    role: str
    disabled: bool

    @classmethod
    def of(cls, member: Member) -> Person:
        return cls(member.id, member.name, member.email, member.role.value, member.disabled)

    @property
    def label(self) -> str:
        return self.name or self.email


@dataclass(frozen=True)
class TeamView:
    id: str
    name: str
    members: list[Person]
    invited: bool


@dataclass(frozen=True)
class MayUse:
    """Someone who may use the profile, and why (admin, invited, a team's member)."""

    person: Person
    reasons: list[str]


@dataclass(frozen=True)
class Sharing:
    profile: ProfileView
    shared: list[ConnectionView]
    teams: list[TeamView]
    people: list[Person]
    invited_users: set[str]
    #: Who may use the profile: admins always; the invited users and teams' members.
    admins: list[Person]
    invited_people: list[Person]
    invited_teams: list[TeamView]
    #: Everyone who may use it, once each (viewers excluded: they use no credential).
    may_use: list[MayUse]


@router.get("/console/profiles/{profile_id}/sharing")
async def sharing(profile_id: str, page: ConsolePage = Depends(console_page)) -> Response:
    page.require(Role.ADMIN)
    try:
        found = await page.call(_sharing, page, profile_id)
    except NotFound:
        return missing_profile(page)
    return page.render(
        "sharing.html",
        {
            "sharing": found,
            "profile": found.profile,
            "shared_owner": SHARED_OWNER,
            "here": f"/console/profiles/{found.profile.id}/sharing",
        },
        active="profiles",
        title=f"Sharing: {found.profile.name}",
    )


def _sharing(page: ConsolePage, profile_id: str) -> Sharing:
    services, principal = page.services, page.principal
    now = datetime.now(UTC)
    profile = services.profiles.get(principal, profile_id)
    shared = [
        ConnectionView.of(c, now)
        for c in services.connections.list(principal, profile.id, owner=SHARED_OWNER)
    ]
    members = [Person.of(m) for m in services.people.members(principal)]
    by_id = {person.id: person for person in members}
    access = services.people.profile_access(principal, profile.id)
    invited_teams = set(access.teams)
    teams = [_team(t, by_id, t.id in invited_teams) for t in services.people.list_teams(principal)]
    teams.sort(key=lambda t: t.name.lower())
    people = sorted(members, key=lambda p: (p.label.lower(), p.email))
    invited_users = set(access.users)
    admins = [p for p in people if p.role == Role.ADMIN.value and not p.disabled]
    invited_people = [p for p in people if p.id in invited_users]
    chosen_teams = [t for t in teams if t.invited]
    may_use: dict[str, MayUse] = {p.id: MayUse(p, ["Admin"]) for p in admins}
    because = [(p, "Invited") for p in invited_people] + [
        (m, f"Team {t.name}") for t in chosen_teams for m in t.members
    ]
    for person, reason in because:
        if person.role != Role.VIEWER.value and not person.disabled:
            may_use.setdefault(person.id, MayUse(person, [])).reasons.append(reason)
    return Sharing(
        profile=ProfileView.of(profile),
        shared=shared,
        teams=teams,
        people=[p for p in people if not p.disabled or p.id in invited_users],
        invited_users=invited_users,
        admins=admins,
        invited_people=invited_people,
        invited_teams=chosen_teams,
        may_use=sorted(may_use.values(), key=lambda m: (m.person.label.lower(), m.person.email)),
    )


def _team(team: Team, people: dict[str, Person], invited: bool) -> TeamView:
    members = sorted(
        (people[m] for m in team.members if m in people), key=lambda p: p.label.lower()
    )
    return TeamView(team.id, team.name, members, invited)


__all__ = ["Flow", "ProfileView", "router"]
