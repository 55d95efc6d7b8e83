"""The credential policy: every credential use passes :meth:`RolePolicy.authorize`.

This is the one place a policy can say no to handing out or applying a token; the
token issuing, the proxy, the profile test and the SDK-facing endpoints all receive it
(``ports.CredentialPolicy``) through their constructors and ask it once. Grants limited
by host, method and path plug in here.
"""

from __future__ import annotations

from authprofiles.core.callers import (
    CredentialRequest,
    Principal,
    Purpose,
    Role,
    require_role,
)
from authprofiles.core.errors import Forbidden


class RolePolicy:
    """Roles within a workspace, and a user-specific connection for its owner alone."""

    def authorize(self, principal: Principal, request: CredentialRequest) -> None:
        """Say no, with a reason, or return. Never logs the credential."""
        require_role(principal, Role.DEVELOPER)
        owner = request.connection_owner
        if principal.user_id is not None and owner not in ("shared", principal.user_id):
            raise Forbidden("this connection belongs to another user")


__all__ = ["CredentialRequest", "Principal", "Purpose", "Role", "RolePolicy", "require_role"]
