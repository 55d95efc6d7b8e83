"""Agent grants, their access tokens and approvals, in and out of the database.

The token of a grant (and of an access token issued for one) is never stored: a hash.
Counting a call against a grant's rate and budget is one conditional ``UPDATE``: the
database, not a worker's memory, decides, so several workers share one budget exactly.
"""

from __future__ import annotations

import builtins
import json
from datetime import datetime
from typing import Protocol, TypeVar

from sqlalchemy import Select, and_, case, delete, func, or_, select, update

from authprofiles.core.agent_grants import AgentGrant, rules_of
from authprofiles.store.db import UnitOfWork
from authprofiles.store.models import (
    AgentAccessTokenRow,
    AgentGrantRow,
    ApprovalRow,
    MembershipRow,
    UserRow,
)
from authprofiles.store.paging import oldest_first
from authprofiles.store.people import Row, with_member


def grant_of(row: AgentGrantRow) -> AgentGrant:
    return AgentGrant(
        id=row.id,
        workspace_id=row.workspace_id,
        agent=row.agent,
        connection_ids=frozenset(json.loads(row.connection_ids)),
        rules=rules_of(json.loads(row.rules)),
        expires_at=row.expires_at,
        created_at=row.created_at,
        created_by=row.created_by,
        rate_per_minute=row.rate_per_minute,
        max_calls=row.max_calls,
        revoked_at=row.revoked_at,
        calls_made=row.calls_made,
        role=row.role,
    )


def _with_maker(statement: Select[*Row]) -> Select[*Row]:
    """A grant's maker and their membership of its workspace, joined in."""
    return with_member(statement, AgentGrantRow.created_by, AgentGrantRow.workspace_id)


class _OfWorkspace(Protocol):
    workspace_id: str


RowT = TypeVar("RowT", bound=_OfWorkspace)


def _in_workspace(row: RowT | None, workspace_id: str) -> RowT | None:
    """The row when it is ``workspace_id``'s: another workspace's is as good as none."""
    return row if row is not None and row.workspace_id == workspace_id else None


class AgentGrantStore:
    def add(self, session: UnitOfWork, row: AgentGrantRow) -> AgentGrantRow:
        session.add(row)
        return row

    def by_prefix_with_user(
        self, session: UnitOfWork, prefix: str
    ) -> tuple[AgentGrantRow, UserRow | None, MembershipRow | None] | None:
        """The grant, its maker and the maker's membership of its workspace: one read."""
        found = session.execute(
            _with_maker(select(AgentGrantRow, UserRow, MembershipRow)).where(
                AgentGrantRow.prefix == prefix
            )
        ).one_or_none()
        if found is None:
            return None
        grant, user, membership = found
        return grant, user, membership

    def get(self, session: UnitOfWork, grant_id: str, workspace_id: str) -> AgentGrantRow | None:
        return _in_workspace(session.get(AgentGrantRow, grant_id), workspace_id)

    def page(
        self,
        session: UnitOfWork,
        workspace_id: str,
        *,
        after: tuple[datetime, str] | None,
        limit: int | None,
        created_by: str | None = None,
        agent: str | None = None,
    ) -> builtins.list[AgentGrantRow]:
        where = [AgentGrantRow.workspace_id == workspace_id]
        if created_by is not None:
            where.append(AgentGrantRow.created_by == created_by)
        if agent is not None:
            where.append(AgentGrantRow.agent == agent)
        return oldest_first(session, AgentGrantRow, *where, after=after, limit=limit)

    def active_of_agent(
        self, session: UnitOfWork, workspace_id: str, agent: str, created_by: str | None
    ) -> builtins.list[AgentGrantRow]:
        where = [
            AgentGrantRow.workspace_id == workspace_id,
            AgentGrantRow.agent == agent,
            AgentGrantRow.revoked_at.is_(None),
        ]
        if created_by is not None:
            where.append(AgentGrantRow.created_by == created_by)
        return list(session.scalars(select(AgentGrantRow).where(*where)))

    def reserve_call(self, session: UnitOfWork, grant: AgentGrant, minute: int) -> bool:
        """Count one call against ``grant``'s budget and this minute's rate, when both
        allow it (then True); nothing is counted otherwise."""
        row = AgentGrantRow
        allowed = [row.id == grant.id, row.revoked_at.is_(None)]
        if grant.max_calls is not None:
            allowed.append(row.calls_made < grant.max_calls)
        if grant.rate_per_minute is not None:
            allowed.append(or_(row.window != minute, row.window_calls < grant.rate_per_minute))
        result = session.execute(
            update(row)
            .where(and_(*allowed))
            .values(
                calls_made=row.calls_made + 1,
                window_calls=case((row.window == minute, row.window_calls + 1), else_=1),
                window=minute,
            )
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    def refund_call(self, session: UnitOfWork, grant_id: str, minute: int) -> None:
        """A counted call did not reach the upstream after all."""
        row = AgentGrantRow
        session.execute(
            update(row)
            .where(row.id == grant_id, row.calls_made > 0)
            .values(
                calls_made=row.calls_made - 1,
                window_calls=case(
                    (and_(row.window == minute, row.window_calls > 0), row.window_calls - 1),
                    else_=row.window_calls,
                ),
            )
            .execution_options(synchronize_session=False)
        )

    def usage(self, session: UnitOfWork, grant_id: str) -> tuple[int, int, int] | None:
        """(calls made, the counted minute, calls in it)."""
        found = session.execute(
            select(
                AgentGrantRow.calls_made, AgentGrantRow.window, AgentGrantRow.window_calls
            ).where(AgentGrantRow.id == grant_id)
        ).one_or_none()
        return None if found is None else (found[0], found[1], found[2])

    # -- access tokens issued for grants ----------------------------------------------
    def add_access_token(self, session: UnitOfWork, row: AgentAccessTokenRow) -> None:
        session.add(row)
        # Expired ones go as new ones come: the table holds only live tokens, about.
        session.execute(
            delete(AgentAccessTokenRow)
            .where(AgentAccessTokenRow.expires_at < row.created_at)
            .execution_options(synchronize_session=False)
        )

    def access_token(
        self, session: UnitOfWork, prefix: str
    ) -> tuple[AgentAccessTokenRow, AgentGrantRow, UserRow | None, MembershipRow | None] | None:
        found = session.execute(
            _with_maker(
                select(AgentAccessTokenRow, AgentGrantRow, UserRow, MembershipRow).join(
                    AgentGrantRow, AgentGrantRow.id == AgentAccessTokenRow.grant_id
                )
            ).where(AgentAccessTokenRow.prefix == prefix)
        ).one_or_none()
        if found is None:
            return None
        token, grant, user, membership = found
        return token, grant, user, membership


class ApprovalStore:
    def add(self, session: UnitOfWork, row: ApprovalRow) -> ApprovalRow:
        session.add(row)
        return row

    def get(self, session: UnitOfWork, approval_id: str, workspace_id: str) -> ApprovalRow | None:
        return _in_workspace(session.get(ApprovalRow, approval_id), workspace_id)

    def matching(
        self,
        session: UnitOfWork,
        *,
        grant_id: str,
        connection_id: str,
        method: str,
        url: str,
        body_sha256: str,
        statuses: tuple[str, ...],
        now: datetime,
    ) -> ApprovalRow | None:
        """The newest live approval of exactly this call in one of ``statuses``."""
        return session.scalars(
            select(ApprovalRow)
            .where(
                ApprovalRow.grant_id == grant_id,
                ApprovalRow.connection_id == connection_id,
                ApprovalRow.method == method,
                ApprovalRow.url == url,
                ApprovalRow.body_sha256 == body_sha256,
                ApprovalRow.status.in_(statuses),
                ApprovalRow.expires_at > now,
            )
            .order_by(ApprovalRow.created_at.desc())
            .limit(1)
        ).first()

    def use(self, session: UnitOfWork, approval_id: str, now: datetime) -> bool:
        """Mark an approved call used: True for the one caller that does so."""
        result = session.execute(
            update(ApprovalRow)
            .where(
                ApprovalRow.id == approval_id,
                ApprovalRow.status == "approved",
                ApprovalRow.expires_at > now,
            )
            .values(status="used", used_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    def unuse(self, session: UnitOfWork, approval_id: str) -> None:
        session.execute(
            update(ApprovalRow)
            .where(ApprovalRow.id == approval_id, ApprovalRow.status == "used")
            .values(status="approved", used_at=None)
            .execution_options(synchronize_session=False)
        )

    def decide(
        self, session: UnitOfWork, approval_id: str, status: str, by: str | None, now: datetime
    ) -> bool:
        """Approve or deny a pending call: True for the one decision that lands."""
        result = session.execute(
            update(ApprovalRow)
            .where(
                ApprovalRow.id == approval_id,
                ApprovalRow.status == "pending",
                ApprovalRow.expires_at > now,
            )
            .values(status=status, decided_at=now, decided_by=by)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    def page(
        self,
        session: UnitOfWork,
        workspace_id: str,
        *,
        after: tuple[datetime, str] | None,
        limit: int | None,
        now: datetime,
        status: str | None = None,
        grant_ids: builtins.list[str] | None = None,
    ) -> builtins.list[ApprovalRow]:
        """Oldest first; ``status`` as people see it: an open call past its time is
        ``expired``, whatever the column still says."""
        where = [ApprovalRow.workspace_id == workspace_id]
        if status in ("pending", "approved"):
            where += [ApprovalRow.status == status, ApprovalRow.expires_at > now]
        elif status == "expired":
            where += [
                or_(
                    ApprovalRow.status == "expired",
                    and_(
                        ApprovalRow.status.in_(("pending", "approved")),
                        ApprovalRow.expires_at <= now,
                    ),
                )
            ]
        elif status is not None:
            where.append(ApprovalRow.status == status)
        if grant_ids is not None:
            where.append(ApprovalRow.grant_id.in_(grant_ids))
        return oldest_first(session, ApprovalRow, *where, after=after, limit=limit)

    def grant_ids_made_by(
        self, session: UnitOfWork, workspace_id: str, user_id: str | None
    ) -> builtins.list[str]:
        return list(
            session.scalars(
                select(AgentGrantRow.id).where(
                    AgentGrantRow.workspace_id == workspace_id,
                    AgentGrantRow.created_by == user_id,
                )
            )
        )

    def pending_count(self, session: UnitOfWork, now: datetime) -> int:
        return int(
            session.scalar(
                select(func.count())
                .select_from(ApprovalRow)
                .where(ApprovalRow.status == "pending", ApprovalRow.expires_at > now)
            )
            or 0
        )


__all__ = ["AgentGrantStore", "ApprovalStore", "grant_of"]
