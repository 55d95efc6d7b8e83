"""Incidents: a profile failing wherever it is used, and a connection needing its owner.

Seed 000: when a refresh stops working the profile is "failing" and its admins are
emailed. An incident is per profile: it opens when the shared connection's refresh or
re-login is refused, or the identity provider refuses the client; it closes when a token
request for that connection succeeds again. The admins are told once when it opens and
once when it closes, never per failed call: whether the profile's failing state changed
is decided by one conditional UPDATE (``ProfileStore.set_failing``) in the transaction
that also writes the notice to the outbox, so of many workers failing at once exactly one
tells.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from authprofiles.core.audit import SYSTEM, Action, AuditEntry, Target
from authprofiles.core.connections import SHARED_OWNER
from authprofiles.core.notices import Notice, NoticeEvent
from authprofiles.core.ports import AuditTrail, Notifier

if TYPE_CHECKING:
    from authprofiles.store.db import UnitOfWork
    from authprofiles.store.profiles import ProfileStore


class Incidents:
    def __init__(self, profile_store: ProfileStore, notifier: Notifier, audit: AuditTrail) -> None:
        self.profile_store = profile_store
        self.notifier = notifier
        self.audit = audit

    def failing(
        self,
        session: UnitOfWork,
        *,
        workspace_id: str,
        profile_id: str,
        reason: str,
        connection_id: str | None = None,
    ) -> bool:
        """The profile fails (``reason``, never a secret); True when this opened the
        incident (and its admins are told)."""
        return self._change(session, workspace_id, profile_id, reason, connection_id)

    def working(
        self,
        session: UnitOfWork,
        *,
        workspace_id: str,
        profile_id: str,
        connection_id: str | None = None,
    ) -> bool:
        """The profile works again; True when this closed an incident (admins told)."""
        return self._change(session, workspace_id, profile_id, None, connection_id)

    def _change(
        self,
        session: UnitOfWork,
        workspace_id: str,
        profile_id: str,
        reason: str | None,
        connection_id: str | None,
    ) -> bool:
        """Set whether the profile fails (``reason``) or works (None); when that opened or
        closed the incident, tell its admins, in the same unit of work."""
        if not self.profile_store.set_failing(session, profile_id, reason):
            return False
        name = self.profile_store.name_of(session, workspace_id, profile_id)
        self.notifier.notify(
            session,
            Notice(
                event=NoticeEvent.PROFILE_FAILING if reason else NoticeEvent.PROFILE_RECOVERED,
                workspace_id=workspace_id,
                profile_id=profile_id,
                profile_name=name,
                detail=reason or f"The authorization profile {name!r} works again.",
                connection_id=connection_id,
                to_admins=True,
            ),
        )
        return True

    def refresh_failed(
        self,
        session: UnitOfWork,
        *,
        workspace_id: str,
        profile_id: str,
        connection_id: str,
        owner: str,
        reason: str,
        needs_reauth: bool,
        client_refused: bool,
    ) -> None:
        """A refresh (or re-login) was refused: in the audit log always; a shared
        connection's refusal makes the profile fail; a user's connection that needs
        authorizing again tells its owner, with the link to do it in place."""
        self.audit.record(
            AuditEntry(
                workspace_id=workspace_id,
                action=Action.TOKEN_REFRESH_FAILED,
                actor=SYSTEM,
                target=Target("connection", connection_id),
                profile_id=profile_id,
                detail={"reason": reason[:300], "needs_reauth": needs_reauth},
            ),
            session,
        )
        if owner == SHARED_OWNER:
            if needs_reauth or client_refused:
                self.failing(
                    session,
                    workspace_id=workspace_id,
                    profile_id=profile_id,
                    reason=f"shared connection {connection_id}: {reason}",
                    connection_id=connection_id,
                )
            return
        if needs_reauth:
            name = self.profile_store.name_of(session, workspace_id, profile_id)
            self.notifier.notify(
                session,
                Notice(
                    event=NoticeEvent.CONNECTION_NEEDS_REAUTH,
                    workspace_id=workspace_id,
                    profile_id=profile_id,
                    profile_name=name,
                    detail=f"Your connection to {name!r} needs to be authorized again: {reason}",
                    connection_id=connection_id,
                    user_ids=(owner,),
                ),
            )


__all__ = ["Incidents"]
