"""Who may do what. Every credential use passes :func:`authorize_credential_use`.

This is the one place a policy can say no to handing out or applying a token; the
token endpoint, the proxy, the test runner and the SDK-facing endpoints all call it.
Grants limited by host, method and path will plug in here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

from authprofiles.core.errors import Forbidden


class Role(StrEnum):
    ADMIN = "admin"  # manage profiles
    DEVELOPER = "developer"  # use them: connect, fetch tokens, proxy, test
    VIEWER = "viewer"  # read


class _Rank(IntEnum):
    viewer = 1
    developer = 2
    admin = 3


class Purpose(StrEnum):
    READ_TOKEN = "read_token"  # noqa: S105
    PROXY = "proxy"
    TEST = "test"


@dataclass(frozen=True)
class Principal:
    """The caller: an API key today; a signed-in user or an agent grant later."""

    workspace_id: str
    role: Role
    key_id: str | None = None
    name: str = ""
    user_id: str | None = None


@dataclass(frozen=True)
class CredentialRequest:
    """What the caller wants to do with a connection's credential."""

    connection_id: str
    connection_owner: str
    purpose: Purpose
    method: str | None = None
    host: str | None = None
    path: str | None = None


def require_role(principal: Principal, role: Role) -> None:
    if _Rank[principal.role.value] < _Rank[role.value]:
        raise Forbidden(f"this needs the {role.value} role; the API key has {principal.role.value}")


def authorize_credential_use(principal: Principal, request: CredentialRequest) -> None:
    """Say no, with a reason, or return. Never logs the credential."""
    require_role(principal, Role.DEVELOPER)
    owner = request.connection_owner
    if principal.user_id is not None and owner not in ("shared", principal.user_id):
        raise Forbidden("this connection belongs to another user")
