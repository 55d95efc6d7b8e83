"""/api/v1/me, /users, /teams and /profiles/{id}/access: people, their roles, their teams,
and who may use each profile (seed 004's "Invite roles").

Members, teams and access lists are an admin's ("Manage connections"); `GET /me` is
everyone's. Another workspace's user, team or profile answers 404, never 403.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from authprofiles.api.deps import CurrentPrincipal, ServicesDep
from authprofiles.api.paging import Page, by_creation, page_responses
from authprofiles.api.problems import problem_responses
from authprofiles.core.callers import Role
from authprofiles.services.people import Me, Member, ProfileAccess, Team

router = APIRouter(tags=["people"])

_ADMIN_ONLY = "The caller is not an admin of the workspace"
_EXAMPLE_ID = "7d1c4b2a-9e8f-4a6b-8c5d-3e2f1a0b9c8d"
_ROLE = (
    "`admin` manages connections (profiles, sharing), members, teams and webhooks; "
    "`developer` uses the profiles shared with them and makes their own connections; "
    "`viewer` reads profiles and statuses"
)
UserId = Annotated[str, Path(description="The user's id", examples=[_EXAMPLE_ID])]
TeamId = Annotated[str, Path(description="The team's id", examples=[_EXAMPLE_ID])]


# -- /me ----------------------------------------------------------------------------------
class UserRef(BaseModel):
    id: str = Field(description="The user's id", examples=[_EXAMPLE_ID])
    email: str = Field(description="Their email address", examples=["ada@example.com"])
    name: str = Field(description="Their display name", examples=["Ada Lovelace"])


class WorkspaceRef(BaseModel):
    id: str = Field(description="The workspace's id", examples=["default"])
    name: str = Field(description="Its name", examples=["default"])


class WorkspaceMembership(WorkspaceRef):
    role: Role = Field(description=f"The user's role there: {_ROLE}", examples=["admin"])


class MePublic(BaseModel):
    """The caller: the user (a signed-in person, or the API key's user), the workspace it
    acts in, and its role there."""

    user: UserRef | None = Field(
        description="The user; null for an API key made before the workspace had an admin"
    )
    workspace: WorkspaceRef = Field(description="The workspace the caller acts in")
    role: Role = Field(description=f"What the caller may do: {_ROLE}", examples=["developer"])
    workspaces: list[WorkspaceMembership] = Field(
        description="Every workspace the user belongs to, with their role in each"
    )

    @classmethod
    def of(cls, me: Me) -> MePublic:
        user = (
            UserRef(id=me.user_id, email=me.email or "", name=me.name or "") if me.user_id else None
        )
        return cls(
            user=user,
            workspace=WorkspaceRef(id=me.workspace_id, name=me.workspace_name),
            role=me.role,
            workspaces=[
                WorkspaceMembership(id=w.id, name=w.name, role=w.role) for w in me.workspaces
            ],
        )


@router.get("/me", response_model=MePublic)
def get_me(services: ServicesDep, principal: CurrentPrincipal) -> MePublic:
    """Who the caller is, where, and with which role."""
    return MePublic.of(services.people.me(principal))


# -- /users -------------------------------------------------------------------------------
class UserCreate(BaseModel):
    """A new member of the caller's workspace (an existing user of another workspace
    joins with this role)."""

    model_config = ConfigDict(extra="forbid")

    email: str = Field(
        max_length=320, description="Their email address", examples=["ada@example.com"]
    )
    name: str = Field(default="", max_length=200, description="Display name", examples=["Ada"])
    role: Role = Field(description=_ROLE, examples=["developer"])


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        default=None, max_length=200, description="Display name", examples=["Ada Lovelace"]
    )
    role: Role | None = Field(default=None, description=_ROLE)
    disabled: StrictBool | None = Field(
        default=None,
        description="Disable the member in this workspace (true: their sessions and API "
        "keys here stop working at once) or enable them again (false)",
        examples=[True],
    )


class UserPublic(BaseModel):
    """A member as admins see them: never a password."""

    id: str = Field(description="The user's id", examples=[_EXAMPLE_ID])
    email: str = Field(description="Email address", examples=["ada@example.com"])
    name: str = Field(description="Display name", examples=["Ada Lovelace"])
    role: Role = Field(description=_ROLE, examples=["developer"])
    disabled: bool = Field(
        description="Whether they are disabled here (or everywhere, by `users disable`)",
        examples=[False],
    )
    has_password: bool = Field(
        description="Whether they set a password (else: a reset link, `users reset`, or "
        "single sign-on)",
        examples=[True],
    )
    created_at: datetime = Field(
        description="When they joined the workspace (UTC)", examples=["2026-01-31T09:30:00Z"]
    )

    @classmethod
    def of(cls, member: Member) -> UserPublic:
        return cls(
            id=member.id,
            email=member.email,
            name=member.name,
            role=member.role,
            disabled=member.disabled,
            has_password=member.has_password,
            created_at=member.created_at,
        )


@router.get(
    "/users",
    response_model=list[UserPublic],
    responses={
        **page_responses("A page of members, oldest first"),
        **problem_responses({403: _ADMIN_ONLY}),
    },
)
def list_users(
    request: Request,
    response: Response,
    services: ServicesDep,
    principal: CurrentPrincipal,
    page: Page,
) -> list[UserPublic]:
    """The workspace's members, oldest first, a page at a time."""
    members = services.people.members(principal, after=page.after_created(), limit=page.fetch)
    return [UserPublic.of(m) for m in page.page(request, response, members, by_creation)]


@router.post(
    "/users",
    status_code=status.HTTP_201_CREATED,
    response_model=UserPublic,
    responses=problem_responses({403: _ADMIN_ONLY, 409: "Already a member"}),
)
def create_user(body: UserCreate, services: ServicesDep, principal: CurrentPrincipal) -> UserPublic:
    """Add a member at once. They set a password through a reset link (`POST
    /users/{id}/reset-link`, or `authprofiles users reset`) or sign in with single
    sign-on; API keys can be made for them before that."""
    member = services.people.invite(
        principal, email=body.email, name=body.name, role=body.role.value
    )
    return UserPublic.of(member)


@router.get(
    "/users/{user_id}",
    response_model=UserPublic,
    responses=problem_responses({403: _ADMIN_ONLY}),
)
def get_user(user_id: UserId, services: ServicesDep, principal: CurrentPrincipal) -> UserPublic:
    return UserPublic.of(services.people.member(principal, user_id))


@router.patch(
    "/users/{user_id}",
    response_model=UserPublic,
    responses=problem_responses(
        {
            403: f"{_ADMIN_ONLY}, or a new name for someone who belongs to other workspaces",
            409: "The workspace's last admin",
        }
    ),
)
def update_user(
    user_id: UserId, body: UserUpdate, services: ServicesDep, principal: CurrentPrincipal
) -> UserPublic:
    """Change a member's role, or disable them in this workspace (their API keys and
    sessions here stop at once); a name only for someone who belongs to this workspace
    alone. The workspace keeps at least one admin who is not disabled."""
    member = services.people.update_member(
        principal,
        user_id,
        name=body.name,
        role=body.role.value if body.role else None,
        disabled=body.disabled,
    )
    return UserPublic.of(member)


@router.delete(
    "/users/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses({403: _ADMIN_ONLY, 409: "The workspace's last admin"}),
)
def delete_user(user_id: UserId, services: ServicesDep, principal: CurrentPrincipal) -> Response:
    """Remove the member from the workspace: their teams and invitations here go, and
    their API keys for this workspace stop working."""
    services.people.remove_member(principal, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class ResetLinkPublic(BaseModel):
    url: str = Field(
        description="The one-time page where the person sets a password",
        examples=["https://authprofiles.example.com/reset/3q2-9xYb..."],
    )
    expires_at: datetime = Field(
        description="When the link stops working (UTC)", examples=["2026-02-01T09:30:00Z"]
    )


@router.post(
    "/users/{user_id}/reset-link",
    status_code=status.HTTP_201_CREATED,
    response_model=ResetLinkPublic,
    responses=problem_responses(
        {403: f"{_ADMIN_ONLY}, or the member belongs to other workspaces too"}
    ),
)
def create_reset_link(
    user_id: UserId, services: ServicesDep, principal: CurrentPrincipal
) -> ResetLinkPublic:
    """A one-time link for the member to set a password (a new member has none; one who
    forgot theirs gets a new one). Send it to them yourself; using it ends their other
    sessions. It works once, for `AUTHPROFILES_PASSWORD_RESET_HOURS`."""
    # An admin's, for a member of this workspace alone: the link sets the person's one
    # password, which another workspace's admin must not be able to take over.
    services.people.reset_link_allowed(principal, user_id)
    link = services.signin.reset_link(user_id, principal.workspace_id)
    return ResetLinkPublic(url=link.url, expires_at=link.expires_at)


# -- /teams -------------------------------------------------------------------------------
class TeamCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=200, description="The team's name", examples=["payments"])
    members: list[str] = Field(
        default_factory=list,
        max_length=10_000,
        description="User ids of its members",
        examples=[[_EXAMPLE_ID]],
    )


class TeamUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        default=None, max_length=200, description="A new name", examples=["payments-eu"]
    )
    members: list[str] | None = Field(
        default=None,
        max_length=10_000,
        description="Its members, replacing the ones it has",
        examples=[[_EXAMPLE_ID]],
    )


class TeamPublic(BaseModel):
    id: str = Field(description="The team's id", examples=[_EXAMPLE_ID])
    name: str = Field(description="The team's name", examples=["payments"])
    members: list[str] = Field(description="User ids of its members", examples=[[_EXAMPLE_ID]])
    created_at: datetime = Field(
        description="When it was made (UTC)", examples=["2026-01-31T09:30:00Z"]
    )

    @classmethod
    def of(cls, team: Team) -> TeamPublic:
        return cls(id=team.id, name=team.name, members=team.members, created_at=team.created_at)


@router.get(
    "/teams",
    response_model=list[TeamPublic],
    responses={
        **page_responses("A page of teams, oldest first"),
        **problem_responses({403: _ADMIN_ONLY}),
    },
)
def list_teams(
    request: Request,
    response: Response,
    services: ServicesDep,
    principal: CurrentPrincipal,
    page: Page,
) -> list[TeamPublic]:
    """The workspace's teams (named groups of members), oldest first."""
    teams = services.people.list_teams(principal, after=page.after_created(), limit=page.fetch)
    return [TeamPublic.of(t) for t in page.page(request, response, teams, by_creation)]


@router.post(
    "/teams",
    status_code=status.HTTP_201_CREATED,
    response_model=TeamPublic,
    responses=problem_responses({403: _ADMIN_ONLY, 409: "A team of that name exists"}),
)
def create_team(body: TeamCreate, services: ServicesDep, principal: CurrentPrincipal) -> TeamPublic:
    return TeamPublic.of(
        services.people.create_team(principal, name=body.name, members=body.members)
    )


@router.get(
    "/teams/{team_id}", response_model=TeamPublic, responses=problem_responses({403: _ADMIN_ONLY})
)
def get_team(team_id: TeamId, services: ServicesDep, principal: CurrentPrincipal) -> TeamPublic:
    return TeamPublic.of(services.people.get_team(principal, team_id))


@router.patch(
    "/teams/{team_id}",
    response_model=TeamPublic,
    responses=problem_responses({403: _ADMIN_ONLY, 409: "A team of that name exists"}),
)
def update_team(
    team_id: TeamId, body: TeamUpdate, services: ServicesDep, principal: CurrentPrincipal
) -> TeamPublic:
    """Rename the team or replace its members; people who join it are told of the
    profiles it was invited to."""
    team = services.people.update_team(principal, team_id, name=body.name, members=body.members)
    return TeamPublic.of(team)


@router.delete(
    "/teams/{team_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses({403: _ADMIN_ONLY}),
)
def delete_team(team_id: TeamId, services: ServicesDep, principal: CurrentPrincipal) -> Response:
    """Delete the team; the profiles it was invited to are no longer shared through it."""
    services.people.delete_team(principal, team_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- /profiles/{id}/access ----------------------------------------------------------------
class ProfileAccessBody(BaseModel):
    """Who may use a profile: its shared connection, and user-specific connections of
    their own on it (seed 004's "Invite roles"). Admins always may."""

    model_config = ConfigDict(extra="forbid")

    users: list[str] = Field(
        default_factory=list,
        max_length=10_000,
        description="User ids invited",
        examples=[[_EXAMPLE_ID]],
    )
    teams: list[str] = Field(
        default_factory=list,
        max_length=10_000,
        description="Team ids invited",
        examples=[[_EXAMPLE_ID]],
    )

    @classmethod
    def of(cls, access: ProfileAccess) -> ProfileAccessBody:
        return cls(users=access.users, teams=access.teams)


@router.get(
    "/profiles/{profile_id}/access",
    response_model=ProfileAccessBody,
    responses=problem_responses({403: _ADMIN_ONLY}),
)
def get_profile_access(
    profile_id: str, services: ServicesDep, principal: CurrentPrincipal
) -> ProfileAccessBody:
    return ProfileAccessBody.of(services.people.profile_access(principal, profile_id))


@router.put(
    "/profiles/{profile_id}/access",
    response_model=ProfileAccessBody,
    responses=problem_responses(
        {403: _ADMIN_ONLY, 422: "A user or team that is not of this workspace"}
    ),
)
def put_profile_access(
    profile_id: str, body: ProfileAccessBody, services: ServicesDep, principal: CurrentPrincipal
) -> ProfileAccessBody:
    """Exactly these users and teams may use the profile from now on. The people newly
    invited are told (email, per their preferences)."""
    access = services.people.set_profile_access(
        principal, profile_id, users=body.users, teams=body.teams
    )
    return ProfileAccessBody.of(access)
