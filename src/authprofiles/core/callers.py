"""Who is calling, and what they want to do with a credential.

A caller is resolved once per request into a :class:`Principal` (an API key today; a
signed-in user or an agent grant plug in the same way), and every credential use is a
:class:`CredentialRequest` put to the one injected policy (``ports.CredentialPolicy``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

from authprofiles.core.connections import Connection
from authprofiles.core.errors import Forbidden


class Role(StrEnum):
    ADMIN = "admin"  # manage profiles
    DEVELOPER = "developer"  # use them: connect, fetch tokens, proxy, test
    VIEWER = "viewer"  # read


class _Rank(IntEnum):
    viewer = 1
    developer = 2
    admin = 3


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
    """The caller, resolved once per request."""

    workspace_id: str
    role: Role
    key_id: str | None = None
    name: str = ""
    user_id: str | None = None
    kind: CallerKind = CallerKind.API_KEY


@dataclass(frozen=True)
class CredentialRequest:
    """What the caller wants to do with a connection's credential."""

    connection_id: str
    connection_owner: str
    purpose: Purpose
    method: str | None = None
    host: str | None = None
    path: str | None = None

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
        return cls(connection.id, connection.owner, purpose, method, host, path)


def has_role(principal: Principal, role: Role) -> bool:
    return _Rank[principal.role.value] >= _Rank[role.value]


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
    "require_role",
]
