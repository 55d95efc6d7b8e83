"""Users, their memberships of workspaces, teams, and who may use each profile."""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from datetime import datetime
from typing import Any, TypeVarTuple

from sqlalchemy import Select, delete, select, tuple_, update
from sqlalchemy.orm import QueryableAttribute

from authprofiles.core.callers import Role, lower_role
from authprofiles.core.errors import NotFound, Unauthenticated
from authprofiles.store.db import UnitOfWork
from authprofiles.store.models import (
    DEFAULT_WORKSPACE_ID,
    ApiKeyRow,
    MembershipRow,
    ProfileAccessRow,
    ProfileRow,
    TeamMemberRow,
    TeamRow,
    UserRow,
    WorkspaceRow,
    utcnow,
)
from authprofiles.store.paging import oldest_first

#: The columns a select statement answers.
Row = TypeVarTuple("Row")

USER = "user"
TEAM = "team"


def with_member(
    statement: Select[*Row],
    user_id: QueryableAttribute[Any],
    workspace_id: QueryableAttribute[Any],
) -> Select[*Row]:
    """``statement`` outer-joined with the user ``user_id`` names and that user's
    membership of ``workspace_id``: a credential, who it acts for and their role, in one
    read (an API key, an agent grant)."""
    return statement.outerjoin(UserRow, UserRow.id == user_id).outerjoin(
        MembershipRow,
        (MembershipRow.user_id == user_id) & (MembershipRow.workspace_id == workspace_id),
    )


def acting_role(
    own: Role, user: UserRow | None, membership: MembershipRow | None, whose: str
) -> Role:
    """The role a credential made for ``user`` acts with: its own or the user's in the
    workspace, whichever is lower; ``Unauthenticated`` when the user is disabled or left
    (``whose`` names them in the message: "this API key's user")."""
    if user is None or user.disabled_at is not None:
        raise Unauthenticated(f"{whose} is disabled")
    if membership is None:
        raise Unauthenticated(f"{whose} is no longer in its workspace")
    if membership.disabled_at is not None:
        raise Unauthenticated(f"{whose} is disabled in its workspace")
    return lower_role(own, Role(membership.role))


def normalise_email(email: str) -> str:
    return email.strip().lower()


class UserStore:
    def add(
        self, session: UnitOfWork, *, user_id: str, email: str, name: str, password_hash: str | None
    ) -> UserRow:
        row = UserRow(
            id=user_id,
            email=normalise_email(email),
            name=name,
            password_hash=password_hash,
            muted_events="",
            session_epoch=0,
            created_at=utcnow(),
        )
        session.add(row)
        session.flush()
        return row

    def get(self, session: UnitOfWork, user_id: str) -> UserRow | None:
        return session.get(UserRow, user_id)

    def by_email(self, session: UnitOfWork, email: str) -> UserRow | None:
        return session.scalars(
            select(UserRow).where(UserRow.email == normalise_email(email))
        ).one_or_none()

    def many(self, session: UnitOfWork, user_ids: Iterable[str]) -> builtins.list[UserRow]:
        ids = builtins.list(user_ids)
        if not ids:
            return []
        return builtins.list(session.scalars(select(UserRow).where(UserRow.id.in_(ids))))

    # -- memberships ----------------------------------------------------------------------
    def membership(
        self, session: UnitOfWork, workspace_id: str, user_id: str
    ) -> MembershipRow | None:
        return session.get(MembershipRow, (workspace_id, user_id))

    def set_membership(
        self, session: UnitOfWork, workspace_id: str, user_id: str, role: str
    ) -> MembershipRow:
        row = self.membership(session, workspace_id, user_id)
        if row is None:
            row = MembershipRow(
                workspace_id=workspace_id, user_id=user_id, role=role, created_at=utcnow()
            )
            session.add(row)
        else:
            row.role = role
        session.flush()
        return row

    def remove_membership(self, session: UnitOfWork, workspace_id: str, user_id: str) -> bool:
        row = self.membership(session, workspace_id, user_id)
        if row is None:
            return False
        session.delete(row)
        # Their teams and invitations in this workspace go with the membership.
        teams = select(TeamRow.id).where(TeamRow.workspace_id == workspace_id)
        session.execute(
            delete(TeamMemberRow).where(
                TeamMemberRow.user_id == user_id, TeamMemberRow.team_id.in_(teams)
            )
        )
        profiles = select(ProfileRow.id).where(ProfileRow.workspace_id == workspace_id)
        session.execute(
            delete(ProfileAccessRow).where(
                ProfileAccessRow.grantee_type == USER,
                ProfileAccessRow.grantee_id == user_id,
                ProfileAccessRow.profile_id.in_(profiles),
            )
        )
        session.flush()
        return True

    def workspaces_of(
        self, session: UnitOfWork, user_id: str
    ) -> builtins.list[tuple[WorkspaceRow, str]]:
        rows = session.execute(
            select(WorkspaceRow, MembershipRow.role)
            .join(MembershipRow, MembershipRow.workspace_id == WorkspaceRow.id)
            .where(MembershipRow.user_id == user_id)
            .order_by(MembershipRow.created_at, WorkspaceRow.id)
        )
        return [(workspace, role) for workspace, role in rows]

    def members(
        self,
        session: UnitOfWork,
        workspace_id: str,
        *,
        after: tuple[datetime, str] | None = None,
        limit: int | None = None,
    ) -> builtins.list[tuple[UserRow, MembershipRow]]:
        """Oldest membership first: a keyset page after ``(created_at, user id)``."""
        statement = (
            select(UserRow, MembershipRow)
            .join(MembershipRow, MembershipRow.user_id == UserRow.id)
            .where(MembershipRow.workspace_id == workspace_id)
        )
        if after is not None:
            statement = statement.where(tuple_(MembershipRow.created_at, UserRow.id) > after)
        statement = statement.order_by(MembershipRow.created_at, UserRow.id)
        if limit is not None:
            statement = statement.limit(limit)
        return [(user, membership) for user, membership in session.execute(statement)]

    def admins(
        self, session: UnitOfWork, workspace_id: str, *, lock: bool = False
    ) -> builtins.list[UserRow]:
        """The workspace's admins who are not disabled, oldest membership first.
        ``lock``: to decide whether one of them may go, their memberships are locked
        (FOR UPDATE on PostgreSQL), so two admins demoting each other at once take turns
        instead of both seeing the other stay (SQLite's writer lock does it already)."""
        statement = (
            select(UserRow)
            .join(MembershipRow, MembershipRow.user_id == UserRow.id)
            .where(
                MembershipRow.workspace_id == workspace_id,
                MembershipRow.role == "admin",
                MembershipRow.disabled_at.is_(None),
                UserRow.disabled_at.is_(None),
            )
            .order_by(MembershipRow.created_at, UserRow.id)
        )
        if lock:
            statement = statement.with_for_update(of=MembershipRow)
        return builtins.list(session.scalars(statement))

    def adopt_keys(self, session: UnitOfWork, workspace_id: str, user_id: str) -> int:
        """Keys made before the workspace had an admin come to belong to ``user_id``."""
        result = session.execute(
            update(ApiKeyRow)
            .where(ApiKeyRow.workspace_id == workspace_id, ApiKeyRow.user_id.is_(None))
            .values(user_id=user_id)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    # -- workspaces -----------------------------------------------------------------------
    def workspace(self, session: UnitOfWork, workspace_id: str) -> WorkspaceRow | None:
        return session.get(WorkspaceRow, workspace_id)

    def workspace_id_named(self, session: UnitOfWork, name_or_id: str | None) -> str:
        """The id of the workspace of that id, else of the oldest one of that name (the
        command line names them either way); None: the first one, ``default``."""
        if name_or_id is None:
            return DEFAULT_WORKSPACE_ID
        row = self.workspace(session, name_or_id) or self.workspace_by_name(session, name_or_id)
        if row is None:
            raise NotFound(f"no workspace named {name_or_id!r} (or of that id)")
        return row.id

    def workspace_by_name(self, session: UnitOfWork, name: str) -> WorkspaceRow | None:
        return session.scalars(
            select(WorkspaceRow).where(WorkspaceRow.name == name).order_by(WorkspaceRow.created_at)
        ).first()

    def add_workspace(self, session: UnitOfWork, workspace_id: str, name: str) -> WorkspaceRow:
        row = WorkspaceRow(id=workspace_id, name=name, created_at=utcnow())
        session.add(row)
        session.flush()
        return row


class TeamStore:
    def add(self, session: UnitOfWork, *, team_id: str, workspace_id: str, name: str) -> TeamRow:
        row = TeamRow(id=team_id, workspace_id=workspace_id, name=name, created_at=utcnow())
        session.add(row)
        session.flush()
        return row

    def get(self, session: UnitOfWork, workspace_id: str, team_id: str) -> TeamRow | None:
        row = session.get(TeamRow, team_id)
        return row if row is not None and row.workspace_id == workspace_id else None

    def page(
        self,
        session: UnitOfWork,
        workspace_id: str,
        *,
        after: tuple[datetime, str] | None = None,
        limit: int | None = None,
    ) -> builtins.list[TeamRow]:
        return oldest_first(
            session, TeamRow, TeamRow.workspace_id == workspace_id, after=after, limit=limit
        )

    def members(self, session: UnitOfWork, team_ids: Iterable[str]) -> dict[str, list[str]]:
        ids = builtins.list(team_ids)
        found: dict[str, list[str]] = {team_id: [] for team_id in ids}
        if ids:
            rows = session.execute(
                select(TeamMemberRow.team_id, TeamMemberRow.user_id)
                .where(TeamMemberRow.team_id.in_(ids))
                .order_by(TeamMemberRow.user_id)
            )
            for team_id, user_id in rows:
                found[team_id].append(user_id)
        return found

    def set_members(self, session: UnitOfWork, team_id: str, user_ids: Iterable[str]) -> None:
        session.execute(delete(TeamMemberRow).where(TeamMemberRow.team_id == team_id))
        for user_id in dict.fromkeys(user_ids):
            session.add(TeamMemberRow(team_id=team_id, user_id=user_id))
        session.flush()

    def delete(self, session: UnitOfWork, row: TeamRow) -> None:
        session.execute(
            delete(ProfileAccessRow).where(
                ProfileAccessRow.grantee_type == TEAM, ProfileAccessRow.grantee_id == row.id
            )
        )
        session.delete(row)
        session.flush()


class AccessStore:
    """Who an admin invited to use each profile."""

    def of(self, session: UnitOfWork, profile_id: str) -> tuple[list[str], list[str]]:
        """(user ids, team ids) invited to ``profile_id``."""
        users: list[str] = []
        teams: list[str] = []
        rows = session.execute(
            select(ProfileAccessRow.grantee_type, ProfileAccessRow.grantee_id)
            .where(ProfileAccessRow.profile_id == profile_id)
            .order_by(ProfileAccessRow.created_at, ProfileAccessRow.grantee_id)
        )
        for kind, grantee in rows:
            (users if kind == USER else teams).append(grantee)
        return users, teams

    def replace(
        self, session: UnitOfWork, profile_id: str, users: Iterable[str], teams: Iterable[str]
    ) -> None:
        session.execute(delete(ProfileAccessRow).where(ProfileAccessRow.profile_id == profile_id))
        now = utcnow()
        for kind, ids in ((USER, users), (TEAM, teams)):
            for grantee in dict.fromkeys(ids):
                session.add(
                    ProfileAccessRow(
                        profile_id=profile_id, grantee_type=kind, grantee_id=grantee, created_at=now
                    )
                )
        session.flush()

    def usable_by(self, session: UnitOfWork, workspace_id: str, user_id: str) -> set[str]:
        """Ids of the workspace's profiles ``user_id`` was invited to, alone or by team."""
        teams = select(TeamMemberRow.team_id).where(TeamMemberRow.user_id == user_id)
        rows = session.execute(
            select(ProfileAccessRow.profile_id)
            .join(ProfileRow, ProfileRow.id == ProfileAccessRow.profile_id)
            .where(
                ProfileRow.workspace_id == workspace_id,
                ((ProfileAccessRow.grantee_type == USER) & (ProfileAccessRow.grantee_id == user_id))
                | (
                    (ProfileAccessRow.grantee_type == TEAM) & ProfileAccessRow.grantee_id.in_(teams)
                ),
            )
        )
        return {profile_id for (profile_id,) in rows}

    def profiles_of_team(self, session: UnitOfWork, team_id: str) -> builtins.list[str]:
        return builtins.list(
            session.scalars(
                select(ProfileAccessRow.profile_id).where(
                    ProfileAccessRow.grantee_type == TEAM, ProfileAccessRow.grantee_id == team_id
                )
            )
        )

    def invited_users(self, session: UnitOfWork, profile_id: str) -> set[str]:
        """Every user invited to ``profile_id``, alone or through a team."""
        users, teams = self.of(session, profile_id)
        found = set(users)
        if teams:
            rows = session.execute(
                select(TeamMemberRow.user_id).where(TeamMemberRow.team_id.in_(teams))
            )
            found.update(user_id for (user_id,) in rows)
        return found


__all__ = ["TEAM", "USER", "AccessStore", "TeamStore", "UserStore", "normalise_email"]
