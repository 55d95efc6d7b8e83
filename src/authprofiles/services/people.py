"""People: users, their workspaces and roles, teams, and who may use each profile.

A user is a person (one email across the installation); a membership gives them one role
in one workspace. Admins add members (``POST /users``: at once, the person sets a password
through a reset link or ``users reset``), group them in teams (seed 004's "roles") and
invite users and teams to profiles (``PUT /profiles/{id}/access``). The command line
bootstraps: ``users create --admin`` makes the first admin, who adopts the workspace's
keys made before there was one.

Every change here is in the audit log; an invitation tells the people invited.
"""

from __future__ import annotations

import builtins
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from authprofiles.core.audit import Action, AuditEntry, Target
from authprofiles.core.callers import Principal, Role, require_role
from authprofiles.core.errors import (
    AlreadyExists,
    Conflict,
    FieldError,
    Forbidden,
    NotFound,
    ValidationFailed,
)
from authprofiles.core.notices import Notice, NoticeEvent
from authprofiles.core.ports import AuditTrail, Clock, Notifier
from authprofiles.core.validation import hidden_character
from authprofiles.services.passwords import hash_password
from authprofiles.store.db import ConstraintViolated, Database, UnitOfWork
from authprofiles.store.models import MembershipRow, TeamRow, UserRow
from authprofiles.store.people import AccessStore, TeamStore, UserStore, normalise_email
from authprofiles.store.profiles import ProfileStore

MAX_EMAIL_LENGTH = 320
MAX_NAME_LENGTH = 200
# Deliberately loose (RFC 5321's full grammar is not what people type): one @, a dot in
# the domain, no spaces.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class Member:
    """A user as a workspace's members list shows them: never a password or its hash."""

    id: str
    email: str
    name: str
    role: Role
    disabled: bool
    created_at: datetime
    has_password: bool = False

    @classmethod
    def of(cls, user: UserRow, membership: MembershipRow) -> Member:
        return cls(
            id=user.id,
            email=user.email,
            name=user.name,
            role=Role(membership.role),
            disabled=user.disabled_at is not None or membership.disabled_at is not None,
            created_at=membership.created_at,
            has_password=user.password_hash is not None,
        )


@dataclass(frozen=True)
class Team:
    id: str
    name: str
    members: list[str]
    created_at: datetime

    @classmethod
    def of(cls, row: TeamRow, members: list[str]) -> Team:
        return cls(id=row.id, name=row.name, members=members, created_at=row.created_at)


@dataclass(frozen=True)
class ProfileAccess:
    users: list[str]
    teams: list[str]


@dataclass(frozen=True)
class WorkspaceRole:
    id: str
    name: str
    role: Role


@dataclass(frozen=True)
class Me:
    user_id: str | None
    email: str | None
    name: str | None
    workspace_id: str
    workspace_name: str
    role: Role
    workspaces: list[WorkspaceRole]


def _could_be_id(value: str) -> bool:
    """Ids here are UUIDs; anything longer, or with a NUL (which PostgreSQL refuses in
    text), is no id of anything, and is not looked up."""
    return 0 < len(value) <= 36 and "\x00" not in value


def _role(value: str, field: str = "role") -> Role:
    try:
        return Role(value)
    except ValueError:
        raise ValidationFailed(
            [FieldError(field, f"{value!r} is not one of: admin, developer, viewer")]
        ) from None


def _email_problem(email: str) -> str | None:
    if not email.strip():
        return "an email address is required"
    if len(email.strip()) > MAX_EMAIL_LENGTH:
        return f"must be at most {MAX_EMAIL_LENGTH} characters"
    if not _EMAIL.match(email.strip()):
        return "is not an email address like name@example.com"
    return None


def _name_problem(name: str, *, required: bool) -> str | None:
    if required and not name.strip():
        return "a name is required"
    if len(name.strip()) > MAX_NAME_LENGTH:
        return f"must be at most {MAX_NAME_LENGTH} characters"
    if hidden_character(name, multiline=False):
        return "may not hold control or invisible formatting characters"
    return None


class PeopleService:
    def __init__(
        self,
        *,
        db: Database,
        profile_store: ProfileStore,
        audit: AuditTrail,
        notifier: Notifier,
        clock: Clock,
        on_access_changed: Callable[[], None] = lambda: None,
        on_user_changed: Callable[[str], None] = lambda _user_id: None,
    ) -> None:
        self.db = db
        self.users = UserStore()
        self.teams = TeamStore()
        self.access = AccessStore()
        self.profile_store = profile_store
        self.audit = audit
        self.notifier = notifier
        self.clock = clock
        # Workers remember invitations and keys for a few seconds: tell them at once.
        self._access_changed = on_access_changed
        self._user_changed = on_user_changed

    # -- the command line's bootstrap --------------------------------------------------------
    def workspace_id_of(self, name_or_id: str | None) -> str:
        """A workspace named, or with that id (None: the first one, ``default``)."""
        with self.db.read() as session:
            return self.users.workspace_id_named(session, name_or_id)

    def create_user(
        self,
        *,
        email: str,
        name: str = "",
        role: str = Role.DEVELOPER.value,
        workspace: str | None = None,
        password: str | None = None,
    ) -> Member:
        """`users create`: a new user (or an existing one joining another workspace) with a
        role in a workspace. The workspace's first admin adopts the keys made before it."""
        workspace_id = self.workspace_id_of(workspace)
        parsed = _role(role)
        password_hash = hash_password(password) if password is not None else None
        with self.db.session() as session:
            member = self._add_member(session, workspace_id, email, name, parsed, password_hash)
            if parsed is Role.ADMIN and len(self.users.admins(session, workspace_id)) == 1:
                self.users.adopt_keys(session, workspace_id, member.id)
            self.audit.record(
                AuditEntry.by_caller_or_system(
                    None,
                    workspace_id,
                    Action.USER_CREATED,
                    Target("user", member.id, member.email),
                    detail={"role": parsed.value},
                ),
                session,
            )
        self._user_changed(member.id)
        return member

    def create_workspace(self, name: str, admin_email: str) -> WorkspaceRole:
        """`workspaces create NAME --admin EMAIL`: the admin must exist already."""
        if problem := _name_problem(name, required=True):
            raise ValidationFailed([FieldError("name", problem)])
        with self.db.session() as session:
            if self.users.workspace_by_name(session, name.strip()) is not None:
                raise AlreadyExists([FieldError("name", f"a workspace named {name!r} exists")])
            user = self.users.by_email(session, admin_email)
            if user is None:
                raise NotFound(
                    f"no user with email {admin_email!r}; make them first with `users create`"
                )
            workspace = self.users.add_workspace(session, str(uuid.uuid4()), name.strip())
            self.users.set_membership(session, workspace.id, user.id, Role.ADMIN.value)
            self.audit.record(
                AuditEntry.by_caller_or_system(
                    None,
                    workspace.id,
                    Action.WORKSPACE_CREATED,
                    Target("workspace", workspace.id, workspace.name),
                    detail={"admin": user.email},
                ),
                session,
            )
        return WorkspaceRole(workspace.id, workspace.name, Role.ADMIN)

    def set_password(self, email: str, password: str) -> None:
        """`users reset`: a new password; every session of theirs ends."""
        password_hash = hash_password(password)
        with self.db.session() as session:
            user = self._user_by_email(session, email)
            user.password_hash = password_hash
            user.session_epoch += 1
            # In each workspace of theirs: each one's admins read only their own log.
            for workspace, _role_name in self.users.workspaces_of(session, user.id):
                self.audit.record(
                    AuditEntry.by_caller_or_system(
                        None,
                        workspace.id,
                        Action.USER_PASSWORD_RESET,
                        Target("user", user.id, user.email),
                    ),
                    session,
                )
        self._user_changed(user.id)

    def disable_by_email(self, email: str) -> None:
        """`users disable`: the person can no longer sign in, nor can their keys act."""
        with self.db.session() as session:
            user = self._user_by_email(session, email)
            self._disable_everywhere(session, user)
        self._user_changed(user.id)

    def list_all(self, workspace: str | None = None) -> builtins.list[Member]:
        """`users list`: the members of a workspace (the first one unless named)."""
        workspace_id = self.workspace_id_of(workspace)
        with self.db.read() as session:
            return [Member.of(u, m) for u, m in self.users.members(session, workspace_id)]

    def user_id(self, email: str) -> str:
        with self.db.read() as session:
            return self._user_by_email(session, email).id

    def user_id_by_email(self, email: str, workspace_id: str) -> str:
        with self.db.read() as session:
            user = self._user_by_email(session, email)
            if self.users.membership(session, workspace_id, user.id) is None:
                raise NotFound(f"{email} is not a member of that workspace")
            return user.id

    # -- the caller ---------------------------------------------------------------------------
    def me(self, principal: Principal) -> Me:
        with self.db.read() as session:
            workspace = self.users.workspace(session, principal.workspace_id)
            user = self.users.get(session, principal.user_id) if principal.user_id else None
            workspaces = (
                [
                    WorkspaceRole(w.id, w.name, Role(role))
                    for w, role in self.users.workspaces_of(session, user.id)
                ]
                if user is not None
                else []
            )
        return Me(
            user_id=user.id if user else None,
            email=user.email if user else None,
            name=user.name if user else None,
            workspace_id=principal.workspace_id,
            workspace_name=workspace.name if workspace else principal.workspace_id,
            role=principal.role,
            workspaces=workspaces,
        )

    # -- members (admins) ---------------------------------------------------------------------
    def members(
        self,
        principal: Principal,
        *,
        after: tuple[datetime, str] | None = None,
        limit: int | None = None,
    ) -> builtins.list[Member]:
        require_role(principal, Role.ADMIN)
        with self.db.read() as session:
            rows = self.users.members(session, principal.workspace_id, after=after, limit=limit)
            return [Member.of(u, m) for u, m in rows]

    def member(self, principal: Principal, user_id: str) -> Member:
        require_role(principal, Role.ADMIN)
        with self.db.read() as session:
            return self._member(session, principal.workspace_id, user_id)

    def invite(self, principal: Principal, *, email: str, name: str = "", role: str) -> Member:
        """``POST /users``: a member at once; they set a password through a reset link."""
        require_role(principal, Role.ADMIN)
        parsed = _role(role)
        with self.db.session() as session:
            member = self._add_member(session, principal.workspace_id, email, name, parsed, None)
            self.audit.record(
                AuditEntry.by(
                    principal,
                    Action.USER_CREATED,
                    Target("user", member.id, member.email),
                    detail={"role": parsed.value},
                ),
                session,
            )
        return member

    def update_member(
        self,
        principal: Principal,
        user_id: str,
        *,
        name: str | None = None,
        role: str | None = None,
        disabled: bool | None = None,
    ) -> Member:
        require_role(principal, Role.ADMIN)
        errors = []
        parsed: Role | None = None
        if name is not None and (problem := _name_problem(name, required=False)):
            errors.append(FieldError("name", problem))
        if role is not None:
            try:
                parsed = _role(role)
            except ValidationFailed as exc:
                errors.extend(exc.errors)
        if errors:
            raise ValidationFailed(errors)
        with self.db.session() as session:
            user, membership = self._member_rows(session, principal.workspace_id, user_id)
            demoting = parsed is not None and parsed is not Role.ADMIN
            if (demoting or disabled) and membership.role == Role.ADMIN.value:
                self._keep_an_admin(session, principal.workspace_id, user.id)
            changed: dict[str, str | bool] = {}
            if name is not None and name.strip() != user.name:
                # A person's name is theirs in every workspace: one workspace's admin may
                # not rename someone who also belongs to others.
                self._only_here(session, principal.workspace_id, user, "name")
                user.name = name.strip()
                changed["name"] = user.name
            if parsed is not None and parsed.value != membership.role:
                membership.role = parsed.value
                changed["role"] = parsed.value
            if disabled is not None and disabled != (membership.disabled_at is not None):
                # In this workspace only: their keys and sessions here stop at once, the
                # other workspaces they belong to are their admins' to decide.
                membership.disabled_at = self.clock.now() if disabled else None
                changed["disabled"] = disabled
            if changed:
                self.audit.record(
                    AuditEntry.by(
                        principal,
                        Action.USER_DISABLED if disabled else Action.USER_UPDATED,
                        Target("user", user.id, user.email),
                        detail=changed,
                    ),
                    session,
                )
            member = Member.of(user, membership)
        self._user_changed(user_id)
        self._access_changed()
        return member

    def remove_member(self, principal: Principal, user_id: str) -> None:
        """``DELETE /users/{id}``: they leave the workspace (their keys in it stop)."""
        require_role(principal, Role.ADMIN)
        with self.db.session() as session:
            user, membership = self._member_rows(session, principal.workspace_id, user_id)
            if membership.role == Role.ADMIN.value:
                self._keep_an_admin(session, principal.workspace_id, user.id)
            self.users.remove_membership(session, principal.workspace_id, user.id)
            self.audit.record(
                AuditEntry.by(principal, Action.USER_REMOVED, Target("user", user.id, user.email)),
                session,
            )
        self._user_changed(user_id)
        self._access_changed()

    # -- teams (admins) -----------------------------------------------------------------------
    def list_teams(
        self,
        principal: Principal,
        *,
        after: tuple[datetime, str] | None = None,
        limit: int | None = None,
    ) -> builtins.list[Team]:
        require_role(principal, Role.ADMIN)
        with self.db.read() as session:
            rows = self.teams.page(session, principal.workspace_id, after=after, limit=limit)
            members = self.teams.members(session, [row.id for row in rows])
            return [Team.of(row, members[row.id]) for row in rows]

    def get_team(self, principal: Principal, team_id: str) -> Team:
        require_role(principal, Role.ADMIN)
        with self.db.read() as session:
            row = self._team(session, principal.workspace_id, team_id)
            return Team.of(row, self.teams.members(session, [row.id])[row.id])

    def create_team(self, principal: Principal, *, name: str, members: Iterable[str]) -> Team:
        require_role(principal, Role.ADMIN)
        if problem := _name_problem(name, required=True):
            raise ValidationFailed([FieldError("name", problem)])
        member_ids = builtins.list(dict.fromkeys(members))
        taken = AlreadyExists([FieldError("name", f"a team named {name.strip()!r} exists")])
        try:
            with self.db.session() as session:
                self._check_members(session, principal.workspace_id, member_ids, "members")
                row = self.teams.add(
                    session,
                    team_id=str(uuid.uuid4()),
                    workspace_id=principal.workspace_id,
                    name=name.strip(),
                )
                self.teams.set_members(session, row.id, member_ids)
                self.audit.record(
                    AuditEntry.by(
                        principal,
                        Action.TEAM_CREATED,
                        Target("team", row.id, row.name),
                        detail={"members": len(member_ids)},
                    ),
                    session,
                )
                team = Team.of(row, sorted(member_ids))
        except ConstraintViolated:
            # The workspace's unique team names decide (two creators racing included).
            raise taken from None
        self._access_changed()
        return team

    def update_team(
        self,
        principal: Principal,
        team_id: str,
        *,
        name: str | None = None,
        members: Iterable[str] | None = None,
    ) -> Team:
        require_role(principal, Role.ADMIN)
        if name is not None and (problem := _name_problem(name, required=True)):
            raise ValidationFailed([FieldError("name", problem)])
        try:
            team = self._update_team(principal, team_id, name, members)
        except ConstraintViolated:
            taken = f"a team named {(name or '').strip()!r} exists"
            raise AlreadyExists([FieldError("name", taken)]) from None
        self._access_changed()
        return team

    def _update_team(
        self,
        principal: Principal,
        team_id: str,
        name: str | None,
        members: Iterable[str] | None,
    ) -> Team:
        newly_in: set[str] = set()
        with self.db.session() as session:
            row = self._team(session, principal.workspace_id, team_id)
            before = set(self.teams.members(session, [row.id])[row.id])
            if name is not None:
                row.name = name.strip()
            usable_before: dict[str, set[str]] = {}
            if members is not None:
                member_ids = builtins.list(dict.fromkeys(members))
                self._check_members(session, principal.workspace_id, member_ids, "members")
                newly_in = set(member_ids) - before
                usable_before = {
                    user_id: self.access.usable_by(session, principal.workspace_id, user_id)
                    for user_id in newly_in
                }
                self.teams.set_members(session, row.id, member_ids)
            after = self.teams.members(session, [row.id])[row.id]
            self.audit.record(
                AuditEntry.by(
                    principal,
                    Action.TEAM_UPDATED,
                    Target("team", row.id, row.name),
                    detail={"members": len(after)},
                ),
                session,
            )
            # Joining a team that was invited to profiles is being invited to those of them
            # the person could not use already.
            for profile_id in self.access.profiles_of_team(session, row.id):
                newly = {u for u in newly_in if profile_id not in usable_before[u]}
                if newly:
                    name = self.profile_store.name_of(session, principal.workspace_id, profile_id)
                    self._tell_invited(session, principal.workspace_id, profile_id, name, newly)
            return Team.of(row, after)

    def delete_team(self, principal: Principal, team_id: str) -> None:
        require_role(principal, Role.ADMIN)
        with self.db.session() as session:
            row = self._team(session, principal.workspace_id, team_id)
            self.audit.record(
                AuditEntry.by(principal, Action.TEAM_DELETED, Target("team", row.id, row.name)),
                session,
            )
            self.teams.delete(session, row)
        self._access_changed()

    # -- who may use a profile (admins) -------------------------------------------------------
    def profile_access(self, principal: Principal, profile_id: str) -> ProfileAccess:
        require_role(principal, Role.ADMIN)
        with self.db.read() as session:
            self.profile_store.name_of(session, principal.workspace_id, profile_id)
            users, teams = self.access.of(session, profile_id)
        return ProfileAccess(users, teams)

    def set_profile_access(
        self, principal: Principal, profile_id: str, *, users: Iterable[str], teams: Iterable[str]
    ) -> ProfileAccess:
        """``PUT /profiles/{id}/access``: exactly these users and teams may use it. The
        people newly able to are told (seed 004's invitation)."""
        require_role(principal, Role.ADMIN)
        user_ids = builtins.list(dict.fromkeys(users))
        team_ids = builtins.list(dict.fromkeys(teams))
        with self.db.session() as session:
            name = self.profile_store.name_of(session, principal.workspace_id, profile_id)
            self._check_members(session, principal.workspace_id, user_ids, "users")
            errors = [
                FieldError(f"teams[{i}]", f"no team with id {team_id!r} in this workspace")
                for i, team_id in enumerate(team_ids)
                if not _could_be_id(team_id)
                or self.teams.get(session, principal.workspace_id, team_id) is None
            ]
            if errors:
                raise ValidationFailed(errors)
            before = self.access.invited_users(session, profile_id)
            self.access.replace(session, profile_id, user_ids, team_ids)
            newly = self.access.invited_users(session, profile_id) - before
            self.audit.record(
                AuditEntry.by(
                    principal,
                    Action.PROFILE_ACCESS_CHANGED,
                    Target("profile", profile_id, name),
                    profile_id=profile_id,
                    detail={"users": len(user_ids), "teams": len(team_ids)},
                ),
                session,
            )
            if newly:
                self._tell_invited(session, principal.workspace_id, profile_id, name, newly)
        self._access_changed()
        return ProfileAccess(user_ids, team_ids)

    def usable_profiles(self, workspace_id: str, user_id: str) -> set[str]:
        """The ids of the profiles ``user_id`` was invited to (the policy's index reads this)."""
        with self.db.read() as session:
            return self.access.usable_by(session, workspace_id, user_id)

    # -- helpers ------------------------------------------------------------------------------
    def _add_member(
        self,
        session: UnitOfWork,
        workspace_id: str,
        email: str,
        name: str,
        role: Role,
        password_hash: str | None,
    ) -> Member:
        errors = []
        if problem := _email_problem(email):
            errors.append(FieldError("email", problem))
        if problem := _name_problem(name, required=False):
            errors.append(FieldError("name", problem))
        if errors:
            raise ValidationFailed(errors)
        if self.users.workspace(session, workspace_id) is None:
            raise NotFound(f"no workspace {workspace_id!r}")
        user = self.users.by_email(session, email)
        if user is None:
            user = self.users.add(
                session,
                user_id=str(uuid.uuid4()),
                email=email,
                name=name.strip(),
                password_hash=password_hash,
            )
        else:
            if self.users.membership(session, workspace_id, user.id) is not None:
                raise AlreadyExists(
                    [FieldError("email", f"{normalise_email(email)} is a member already")]
                )
            if password_hash is not None:
                user.password_hash = password_hash
        membership = self.users.set_membership(session, workspace_id, user.id, role.value)
        return Member.of(user, membership)

    def _disable_everywhere(self, session: UnitOfWork, user: UserRow) -> None:
        """`users disable`, on the server: the person, in every workspace."""
        user.disabled_at = self.clock.now()
        user.session_epoch += 1  # their sessions end at once
        # In each workspace of theirs: each one's admins read only their own log.
        for workspace, _role_name in self.users.workspaces_of(session, user.id):
            self.audit.record(
                AuditEntry.by_caller_or_system(
                    None, workspace.id, Action.USER_DISABLED, Target("user", user.id, user.email)
                ),
                session,
            )

    def _keep_an_admin(self, session: UnitOfWork, workspace_id: str, leaving: str) -> None:
        if all(
            admin.id == leaving for admin in self.users.admins(session, workspace_id, lock=True)
        ):
            raise Conflict("this is the workspace's last admin; make another member an admin first")

    def _only_here(self, session: UnitOfWork, workspace_id: str, user: UserRow, what: str) -> None:
        """Refuse to change what belongs to the person rather than to this membership
        (their name, their password) when they also belong to other workspaces: an admin
        of one workspace must not act on someone's account in the others."""
        elsewhere = [
            w for w, _ in self.users.workspaces_of(session, user.id) if w.id != workspace_id
        ]
        if elsewhere:
            raise Forbidden(
                f"{user.email} also belongs to other workspaces, so their {what} is theirs to "
                "change (or an operator's, with `authprofiles users` on the server)"
            )

    def reset_link_allowed(self, principal: Principal, user_id: str) -> None:
        """An admin may hand out a reset link for a member of their workspace only when the
        person belongs to no other workspace: the link sets the person's one password."""
        require_role(principal, Role.ADMIN)
        with self.db.read() as session:
            user, _membership = self._member_rows(session, principal.workspace_id, user_id)
            self._only_here(session, principal.workspace_id, user, "password")

    def _user_by_email(self, session: UnitOfWork, email: str) -> UserRow:
        user = self.users.by_email(session, email)
        if user is None:
            raise NotFound(f"no user with email {normalise_email(email)!r}")
        return user

    def _member_rows(
        self, session: UnitOfWork, workspace_id: str, user_id: str
    ) -> tuple[UserRow, MembershipRow]:
        membership = self.users.membership(session, workspace_id, user_id)
        user = self.users.get(session, user_id) if membership is not None else None
        if membership is None or user is None:
            raise NotFound(f"no member with id {user_id}")
        return user, membership

    def _member(self, session: UnitOfWork, workspace_id: str, user_id: str) -> Member:
        return Member.of(*self._member_rows(session, workspace_id, user_id))

    def _team(self, session: UnitOfWork, workspace_id: str, team_id: str) -> TeamRow:
        row = self.teams.get(session, workspace_id, team_id)
        if row is None:
            raise NotFound(f"no team with id {team_id}")
        return row

    def _check_members(
        self, session: UnitOfWork, workspace_id: str, user_ids: list[str], field: str
    ) -> None:
        errors = [
            FieldError(f"{field}[{i}]", f"no member with id {user_id!r} in this workspace")
            for i, user_id in enumerate(user_ids)
            if not _could_be_id(user_id)
            or self.users.membership(session, workspace_id, user_id) is None
        ]
        if errors:
            raise ValidationFailed(errors)

    def _tell_invited(
        self, session: UnitOfWork, workspace_id: str, profile_id: str, name: str, users: set[str]
    ) -> None:
        self.notifier.notify(
            session,
            Notice(
                event=NoticeEvent.PROFILE_ACCESS_GRANTED,
                workspace_id=workspace_id,
                profile_id=profile_id,
                profile_name=name,
                detail=f"You may now use the authorization profile {name!r}.",
                user_ids=tuple(sorted(users)),
            ),
        )


__all__ = ["Me", "Member", "PeopleService", "ProfileAccess", "Team", "WorkspaceRole"]
