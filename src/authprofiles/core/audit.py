"""The audit log's entries: who did what to which thing, when, from where; never a secret.

Actions are dotted (``profile.created``, ``token.issued``...). ``detail`` holds short,
non-secret particulars; the store refuses nothing, so the callers never put a value
that could be a credential in it (tests plant secrets and grep for them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from authprofiles.core.callers import CallerKind, Principal

DetailValue = str | int | float | bool | None


class Action(StrEnum):
    PROFILE_CREATED = "profile.created"
    PROFILE_UPDATED = "profile.updated"
    PROFILE_DELETED = "profile.deleted"
    PROFILE_TESTED = "profile.tested"
    PROFILE_ACCESS_CHANGED = "profile.access_changed"
    CONNECTION_CREATED = "connection.created"
    CONNECTION_AUTHORIZED = "connection.authorized"
    CONNECTION_REAUTHORIZED = "connection.reauthorized"
    CONNECTION_UPDATED = "connection.updated"
    CONNECTION_DELETED = "connection.deleted"
    TOKEN_ISSUED = "token.issued"  # noqa: S105 - an action's name
    TOKEN_REFRESH_FAILED = "token.refresh_failed"  # noqa: S105
    USER_SIGNED_IN = "user.signed_in"
    USER_SIGNIN_FAILED = "user.signin_failed"
    USER_CREATED = "user.created"
    USER_UPDATED = "user.updated"
    USER_DISABLED = "user.disabled"
    USER_REMOVED = "user.removed"
    USER_PASSWORD_RESET = "user.password_reset"  # noqa: S105
    TEAM_CREATED = "team.created"
    TEAM_UPDATED = "team.updated"
    TEAM_DELETED = "team.deleted"
    WORKSPACE_CREATED = "workspace.created"
    API_KEY_CREATED = "api_key.created"
    API_KEY_REVOKED = "api_key.revoked"
    KEYS_ROTATED = "keys.rotated"
    WEBHOOK_CREATED = "webhook.created"
    WEBHOOK_DELETED = "webhook.deleted"
    AGENT_GRANT_CREATED = "agent_grant.created"
    AGENT_GRANT_REVOKED = "agent_grant.revoked"
    AGENT_CALLED = "agent.called"
    AGENT_REFUSED = "agent.refused"
    APPROVAL_REQUESTED = "approval.requested"
    APPROVAL_APPROVED = "approval.approved"
    APPROVAL_DENIED = "approval.denied"


@dataclass(frozen=True)
class Actor:
    """Who acted: ``type`` is ``user``, ``api_key``, ``agent`` or ``system`` (the
    server itself: the background refresher, the command line)."""

    type: str
    id: str | None
    name: str

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        if principal.kind is CallerKind.API_KEY:
            return cls("api_key", principal.key_id, principal.name)
        if principal.kind is CallerKind.AGENT:
            return cls("agent", principal.key_id, principal.name)
        return cls("user", principal.user_id, principal.name)


SYSTEM = Actor("system", None, "authprofiles")


@dataclass(frozen=True)
class Target:
    """What was acted on: ``type`` is ``profile``, ``connection``, ``user``, ``team``,
    ``api_key``, ``webhook`` or ``workspace``."""

    type: str
    id: str | None
    name: str | None = None


@dataclass(frozen=True)
class AuditEntry:
    workspace_id: str
    action: str
    actor: Actor
    target: Target | None = None
    profile_id: str | None = None
    address: str | None = None
    detail: Mapping[str, DetailValue] = field(default_factory=dict)
    at: datetime | None = None  # None: when it is written

    @classmethod
    def by(
        cls,
        principal: Principal,
        action: str,
        target: Target | None = None,
        *,
        profile_id: str | None = None,
        detail: Mapping[str, DetailValue] | None = None,
    ) -> AuditEntry:
        """An entry for what ``principal`` did, from the address it called from."""
        return cls(
            workspace_id=principal.workspace_id,
            action=action,
            actor=Actor.of(principal),
            target=target,
            profile_id=profile_id,
            address=principal.address,
            detail=detail or {},
        )

    @classmethod
    def by_caller_or_system(
        cls,
        principal: Principal | None,
        workspace_id: str,
        action: str,
        target: Target | None = None,
        *,
        detail: Mapping[str, DetailValue] | None = None,
    ) -> AuditEntry:
        """What ``principal`` did; None: the server itself did it in ``workspace_id`` (the
        command line on its machine, a background pass)."""
        if principal is not None:
            return cls.by(principal, action, target, detail=detail)
        return cls(
            workspace_id=workspace_id,
            action=action,
            actor=SYSTEM,
            target=target,
            detail=detail or {},
        )


__all__ = ["SYSTEM", "Action", "Actor", "AuditEntry", "DetailValue", "Target"]
