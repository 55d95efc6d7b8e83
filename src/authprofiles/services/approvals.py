"""Human approval of agents' calls: a rule with ``approval`` holds each call it covers.

A held call is stored with its method, upstream URL (no credential in it: the caller's
query, nothing injected) and the SHA-256 of its body, and the people who may decide are
told: the workspace's admins and the grant's maker (an agent never decides). Once it is
approved, exactly one call with the same method, URL and body digest goes through:
marking it ``used`` is one conditional ``UPDATE``, so of two identical retries racing,
one wins. A denied call, a changed call or a second retry is held again.
"""

from __future__ import annotations

import builtins
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from authprofiles.core.agent_grants import AgentGrant, ApprovalRequired, HeldCall
from authprofiles.core.audit import Action, AuditEntry, Target
from authprofiles.core.callers import Principal, Role, has_role
from authprofiles.core.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed
from authprofiles.core.notices import Notice, NoticeEvent
from authprofiles.core.ports import AuditTrail, Clock, Notifier
from authprofiles.core.redaction import Redactor
from authprofiles.store.agent_grants import ApprovalStore
from authprofiles.store.db import Database, UnitOfWork
from authprofiles.store.models import AgentGrantRow, ApprovalRow

STATUSES = ("pending", "approved", "denied", "used", "expired")
#: The body shown to the person deciding, at most (as text, credentials hidden).
PREVIEW_BYTES = 2048


@dataclass(frozen=True)
class Approval:
    id: str
    grant_id: str
    agent: str
    connection_id: str
    method: str
    url: str
    body_sha256: str
    body_preview: str
    status: str
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None
    decided_by: str | None

    @classmethod
    def of(cls, row: ApprovalRow, now: datetime) -> Approval:
        status = row.status
        if status in ("pending", "approved") and row.expires_at <= now:
            status = "expired"
        return cls(
            id=row.id,
            grant_id=row.grant_id,
            agent=row.agent,
            connection_id=row.connection_id,
            method=row.method,
            url=row.url,
            body_sha256=row.body_sha256,
            body_preview=row.body_preview,
            status=status,
            created_at=row.created_at,
            expires_at=row.expires_at,
            decided_at=row.decided_at,
            decided_by=row.decided_by,
        )


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


class Approvals:
    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        audit: AuditTrail,
        notifier: Notifier,
        ttl_seconds: int,
        approval_url: Callable[[str], str],
    ) -> None:
        self.db = db
        self.clock = clock
        self.audit = audit
        self.notifier = notifier
        self.ttl = timedelta(seconds=ttl_seconds)
        self.approval_url = approval_url
        self.store = ApprovalStore()

    def pass_or_hold(self, principal: Principal, grant: AgentGrant, call: HeldCall) -> str | None:
        """Let the call through when a person approved exactly it and it was not made yet
        (marking it used; the approval's id), else hold it: :class:`ApprovalRequired`
        naming the (new or still pending) approval."""
        digest = body_digest(call.body)
        now = self.clock.now()
        with self.db.session() as session:
            same = partial(
                self.store.matching,
                session,
                grant_id=grant.id,
                connection_id=call.connection_id,
                method=call.method,
                url=call.url,
                body_sha256=digest,
                now=now,
            )
            approved = same(statuses=("approved",))
            if approved is not None and self.store.use(session, approved.id, now):
                return approved.id
            pending = same(statuses=("pending",)) or self._hold(
                session, principal, grant, call, digest, now
            )
            approval_id = pending.id
        raise ApprovalRequired(
            f"a person must approve this call first ({call.method} {call.url}); they have "
            "been told. Make the same call again once it is approved, or send "
            "`Prefer: wait=N` to wait up to N seconds for the decision",
            approval_id,
            self.approval_url(approval_id),
        )

    def _hold(
        self,
        session: UnitOfWork,
        principal: Principal,
        grant: AgentGrant,
        call: HeldCall,
        digest: str,
        now: datetime,
    ) -> ApprovalRow:
        """A new held call, the people who may decide told of it, in the same unit."""
        preview = call.body[:PREVIEW_BYTES].decode("utf-8", errors="replace")
        pending = self.store.add(
            session,
            ApprovalRow(
                id=str(uuid.uuid4()),
                workspace_id=grant.workspace_id,
                grant_id=grant.id,
                agent=grant.agent,
                connection_id=call.connection_id,
                method=call.method,
                url=call.url,
                body_sha256=digest,
                body_preview=Redactor(*call.hide).text(preview),
                status="pending",
                created_at=now,
                expires_at=now + self.ttl,
            ),
        )
        session.flush()
        self.notifier.notify(
            session,
            Notice(
                event=NoticeEvent.APPROVAL_REQUESTED,
                workspace_id=grant.workspace_id,
                profile_id=call.profile_id,
                profile_name=call.profile_name,
                detail=f"Agent {grant.agent!r} asks to call {call.method} {call.url}. "
                f"Approve or deny it: {self.approval_url(pending.id)}",
                connection_id=call.connection_id,
                user_ids=(grant.created_by,) if grant.created_by else (),
                to_admins=True,
            ),
        )
        self.audit.record(
            AuditEntry.by(
                principal,
                Action.APPROVAL_REQUESTED,
                Target("approval", pending.id),
                profile_id=call.profile_id,
                detail={"method": call.method, "connection_id": call.connection_id},
            ),
            session,
        )
        return pending

    def restore(self, approval_id: str) -> None:
        """The approved call was not made after all (rate-limited, or the upstream could not
        be reached): the approval stands again, for the same call made again."""
        with self.db.session() as session:
            self.store.unuse(session, approval_id)

    def status_of(self, approval_id: str) -> str | None:
        with self.db.read() as session:
            row = session.get(ApprovalRow, approval_id)
            return None if row is None else Approval.of(row, self.clock.now()).status

    # -- people deciding ------------------------------------------------------------------
    def list_for(
        self,
        principal: Principal,
        *,
        status: str | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int | None = None,
    ) -> builtins.list[Approval]:
        """Admins see the workspace's held calls; anyone else those of grants they made."""
        self._not_an_agent(principal)
        if status is not None and status not in STATUSES:
            raise ValidationFailed(
                [FieldError("status", f"{status!r} is not one of: {', '.join(STATUSES)}")]
            )
        now = self.clock.now()
        with self.db.read() as session:
            grant_ids = None
            if not has_role(principal, Role.ADMIN):
                grant_ids = self.store.grant_ids_made_by(
                    session, principal.workspace_id, principal.user_id
                )
            rows = self.store.page(
                session,
                principal.workspace_id,
                after=after,
                limit=limit,
                now=now,
                status=status,
                grant_ids=grant_ids,
            )
            return [Approval.of(row, now) for row in rows]

    def get(self, principal: Principal, approval_id: str) -> Approval:
        self._not_an_agent(principal)
        with self.db.read() as session:
            row = self.store.get(session, approval_id, principal.workspace_id)
            if row is None or not self._may_decide(session, principal, row):
                raise NotFound(f"no approval with id {approval_id!r}")
            return Approval.of(row, self.clock.now())

    def decide(self, principal: Principal, approval_id: str, *, approve: bool) -> Approval:
        """Approve or deny a held call, once: workspace admins and the grant's maker."""
        self._not_an_agent(principal)
        now = self.clock.now()
        with self.db.session() as session:
            row = self.store.get(session, approval_id, principal.workspace_id)
            if row is None or not self._may_decide(session, principal, row):
                raise NotFound(f"no approval with id {approval_id!r}")
            status = "approved" if approve else "denied"
            if not self.store.decide(session, approval_id, status, principal.user_id, now):
                current = Approval.of(row, now).status
                raise Conflict(f"this call was already decided or is no longer open ({current})")
            self.audit.record(
                AuditEntry.by(
                    principal,
                    Action.APPROVAL_APPROVED if approve else Action.APPROVAL_DENIED,
                    Target("approval", row.id),
                    detail={"agent": row.agent, "method": row.method},
                ),
                session,
            )
            session.flush()
            session.refresh(row)
            return Approval.of(row, now)

    def pending_count(self) -> int:
        with self.db.read() as session:
            return self.store.pending_count(session, self.clock.now())

    @staticmethod
    def _not_an_agent(principal: Principal) -> None:
        if principal.is_agent:
            raise Forbidden("an agent never sees nor decides approvals")

    @staticmethod
    def _may_decide(session: object, principal: Principal, row: ApprovalRow) -> bool:
        if has_role(principal, Role.ADMIN):
            return True
        grant = session.get(AgentGrantRow, row.grant_id)  # type: ignore[attr-defined]
        return grant is not None and grant.created_by == principal.user_id


__all__ = ["STATUSES", "Approval", "Approvals", "body_digest"]
