"""Who is calling, and what they want to do with a credential.

A caller is resolved once per request into a :class:`Principal` (an API key today; a
signed-in user or an agent grant plug in the same way), and every credential use is a
:class:`CredentialRequest` put to the one injected policy (``ports.CredentialPolicy``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from authprofiles.core.connections import Connection
from authprofiles.core.errors import Forbidden


class Role(StrEnum):
    ADMIN = "admin"  # "Manage connections": profiles, sharing, members, teams, webhooks
    DEVELOPER = "developer"  # use the profiles shared with them; own connections
    VIEWER = "viewer"  # read profiles and statuses


#: Each role's rank: a role may do what any lower one may. (A plain dict: asked on every
#: credential use, it is several times faster than an enum's lookup by value.)
_RANK: dict[Role, int] = {Role.VIEWER: 1, Role.DEVELOPER: 2, Role.ADMIN: 3}


class CallerKind(StrEnum):
    API_KEY = "api_key"
    USER = "user"
    AGENT = "agent"


class Purpose(StrEnum):
    READ_TOKEN = "read_token"  # noqa: S105
    PROXY = "proxy"
    TEST = "test"


@dataclass(frozen=True)
class Principal:
    """The caller, resolved once per request.

    ``role`` is what it may do in ``workspace_id``: an API key's own role capped by its
    user's. ``user_id`` is the person it acts for; None only for a key made before its
    workspace had an admin (it acts by its role alone until `users create --admin`
    adopts it). ``address`` is where this request came from (for the audit log).
    """

    workspace_id: str
    role: Role
    key_id: str | None = None
    name: str = ""
    user_id: str | None = None
    kind: CallerKind = CallerKind.API_KEY
    address: str | None = None
    #: A signed-in person's session (None for API keys).
    session_id: str | None = None
    #: An agent's access token is good for this resource alone (RFC 8707); None: an API
    #: key, a session, or a grant's own token (the proxy and ``/mcp``).
    audience: str | None = None

    @property
    def is_agent(self) -> bool:
        return self.kind is CallerKind.AGENT


@dataclass(frozen=True)
class CredentialRequest:
    """What the caller wants to do with a connection's credential."""

    connection_id: str
    connection_owner: str
    purpose: Purpose
    method: str | None = None
    host: str | None = None
    path: str | None = None
    #: The profile the connection is of: whether the caller was invited to it.
    profile_id: str | None = None

    @classmethod
    def to_use(
        cls,
        connection: Connection,
        purpose: Purpose,
        *,
        method: str | None = None,
        host: str | None = None,
        path: str | None = None,
    ) -> CredentialRequest:
        """Using ``connection``'s credential for ``purpose`` (a proxied call names where)."""
        return cls(
            connection.id, connection.owner, purpose, method, host, path, connection.profile_id
        )


def has_role(principal: Principal, role: Role) -> bool:
    return _RANK[principal.role] >= _RANK[role]


def lower_role(first: Role, second: Role) -> Role:
    """The less powerful of two roles (a key acts with its own role or its user's)."""
    return first if _RANK[first] <= _RANK[second] else second


def require_role(principal: Principal, role: Role) -> None:
    if not has_role(principal, role):
        raise Forbidden(f"this needs the {role.value} role; the caller has {principal.role.value}")


__all__ = [
    "CallerKind",
    "CredentialRequest",
    "Principal",
    "Purpose",
    "Role",
    "has_role",
    "lower_role",
    "require_role",
]
