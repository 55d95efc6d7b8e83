"""The credential policy: every credential use passes :meth:`RolePolicy.authorize`.

This is the one place a policy can say no to handing out or applying a token; the
token issuing, the proxy, the profile test, the connection service and the SDK-facing
endpoints all receive it (``ports.CredentialPolicy``) through their constructors and ask
it once. The rules (the people issue, seed 004):

- viewers use no credential;
- a user-specific connection is usable by its owner alone (not even an admin);
- admins use every profile of their workspace and its shared connection;
- developers use only the profiles an admin invited them to (alone or through a team),
  and only they may create a user-specific connection on one;
- a key made before its workspace had an admin (no user) acts by its role alone.

Who was invited to what is read through :class:`AccessIndex`, which each worker keeps for a
few seconds per user so that the token hot path asks no database (a change made in this
worker applies at once; in other workers within :data:`ACCESS_CACHE_SECONDS`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from authprofiles import telemetry
from authprofiles.core.callers import (
    CredentialRequest,
    Principal,
    Purpose,
    Role,
    has_role,
    require_role,
)
from authprofiles.core.connections import SHARED_OWNER
from authprofiles.core.errors import Forbidden

#: How long a worker trusts what it read of one user's invitations.
ACCESS_CACHE_SECONDS = 5.0


class AccessIndex:
    """The profiles each user may use, read through ``load(workspace_id, user_id)`` and
    remembered for a few seconds; :meth:`invalidate` forgets everything at once."""

    def __init__(
        self, load: Callable[[str, str], set[str]], seconds: float = ACCESS_CACHE_SECONDS
    ) -> None:
        self._load = load
        self._seconds = seconds
        self._known: dict[tuple[str, str], tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()
        self._generation = 0

    def remembered(self, workspace_id: str, user_id: str) -> bool:
        """Whether :meth:`usable` would answer from memory, reading nothing."""
        with self._lock:
            hit = self._known.get((workspace_id, user_id))
        return hit is not None and hit[0] > time.monotonic()

    def usable(self, workspace_id: str, user_id: str) -> frozenset[str]:
        key = (workspace_id, user_id)
        now = time.monotonic()
        with self._lock:
            hit = self._known.get(key)
            generation = self._generation
        if hit is not None and hit[0] > now:
            return hit[1]
        found = frozenset(self._load(workspace_id, user_id))
        with self._lock:
            # A change made while this was read leaves it unremembered (it may be stale).
            if generation == self._generation:
                if len(self._known) > 50_000:
                    self._known.clear()
                self._known[key] = (now + self._seconds, found)
        return found

    def invalidate(self) -> None:
        with self._lock:
            self._known.clear()
            self._generation += 1


class RolePolicy:
    """Roles within a workspace, invitations to profiles, and owners of connections."""

    def __init__(self, access: AccessIndex | None = None) -> None:
        self.access = access

    def authorize(self, principal: Principal, request: CredentialRequest) -> None:
        """Say no, with a reason, or return. Never logs the credential.

        Each decision is a ``policy.decide`` span naming the connection, the profile, the
        purpose and, for a proxied call, its method and host (not its path); a refusal
        fails it, with ``error.type`` ``Forbidden``."""
        with telemetry.span("policy.decide") as decision:
            if decision.is_recording():
                decision.set_attributes(_described(request))
            self._authorize(principal, request)

    def _authorize(self, principal: Principal, request: CredentialRequest) -> None:
        require_role(principal, Role.DEVELOPER)
        if request.purpose is Purpose.PROXY and principal.session_id is not None:
            # The proxy relays whatever the upstream answers, on this server's origin: a
            # page from it, opened in a signed-in browser, would act as that person.
            raise Forbidden(
                "the proxy takes an API key (Authorization: Bearer), not a browser session"
            )
        owner = request.connection_owner
        if principal.user_id is None:
            return  # a key from before the workspace had people: its role alone
        if owner != SHARED_OWNER and owner != principal.user_id:
            raise Forbidden("this connection belongs to another user; only its owner may use it")
        self.require_invited(principal, request.profile_id)

    def decides_in_memory(self, principal: Principal) -> bool:
        """Whether :meth:`authorize` can answer for ``principal`` without reading the
        database (an async caller then asks it on the event loop)."""
        if principal.user_id is None or has_role(principal, Role.ADMIN) or self.access is None:
            return True
        return self.access.remembered(principal.workspace_id, principal.user_id)

    def require_invited(self, principal: Principal, profile_id: str | None) -> None:
        """Developers use only the profiles an admin invited them to."""
        if principal.user_id is None or has_role(principal, Role.ADMIN) or profile_id is None:
            return
        if self.access is None or profile_id not in self.access.usable(
            principal.workspace_id, principal.user_id
        ):
            raise Forbidden(
                "this profile is not shared with you; ask an admin of the workspace to "
                "invite you (or a team you are in) to it"
            )

    def may_create_connection(self, principal: Principal, profile_id: str, owner: str) -> None:
        """Shared connections are an admin's ("Save login credentials", seed 004); a
        user-specific one is its owner's own, on a profile they were invited to."""
        require_role(principal, Role.DEVELOPER)
        if principal.user_id is None:
            return
        if owner == SHARED_OWNER:
            require_role(principal, Role.ADMIN)
            return
        if owner != principal.user_id:
            raise Forbidden(
                "a user-specific connection is made by its owner: `owner` must be "
                f'"shared" (admins) or your own user id ({principal.user_id})'
            )
        self.require_invited(principal, profile_id)

    def may_manage_connection(self, principal: Principal, owner: str, profile_id: str) -> None:
        """Disconnect, reauthorize or edit a connection: its owner, or an admin for a shared
        one (an admin may also disconnect anyone's, but not use it)."""
        require_role(principal, Role.DEVELOPER)
        if principal.user_id is None:
            return
        if owner == principal.user_id:
            self.require_invited(principal, profile_id)
            return
        if owner == SHARED_OWNER:
            require_role(principal, Role.ADMIN)
            return
        raise Forbidden("this connection belongs to another user; only its owner may change it")

    def may_disconnect(self, principal: Principal, owner: str) -> None:
        """Disconnect (and forget the credentials of) a connection: an admin any of the
        workspace's; anyone else their own, even once the profile is no longer shared
        with them (what they stored stays theirs to remove)."""
        require_role(principal, Role.DEVELOPER)
        if principal.user_id is None or has_role(principal, Role.ADMIN):
            return
        if owner != principal.user_id:
            raise Forbidden(
                "only its owner, or an admin, may disconnect this connection"
                if owner != SHARED_OWNER
                else "a shared connection is disconnected by an admin"
            )

    def visible_to(self, principal: Principal) -> tuple[str, frozenset[str]] | None:
        """Which connections the caller sees: None, every one of the workspace (admins, and
        keys from before the workspace had people); else ``(user id, profile ids)``: their
        own, and the shared ones of the profiles they were invited to."""
        if principal.user_id is None or has_role(principal, Role.ADMIN):
            return None
        usable = (
            self.access.usable(principal.workspace_id, principal.user_id)
            if self.access is not None
            else frozenset()
        )
        return principal.user_id, usable

    def may_see_connection(self, principal: Principal, owner: str, profile_id: str) -> bool:
        """Whether the caller sees this connection (see :meth:`visible_to`)."""
        visible = self.visible_to(principal)
        if visible is None:
            return True
        user_id, profiles = visible
        return owner == user_id or (owner == SHARED_OWNER and profile_id in profiles)


def _described(request: CredentialRequest) -> dict[str, str]:
    """A decision's span attributes: ids, the purpose, a proxied call's method and host."""
    described = {
        "authprofiles.connection_id": request.connection_id,
        "authprofiles.purpose": request.purpose.value,
    }
    if request.profile_id is not None:
        described["authprofiles.profile_id"] = request.profile_id
    if request.method is not None:
        described["http.request.method"] = request.method
    if request.host is not None:
        described["server.address"] = request.host
    return described


__all__ = [
    "AccessIndex",
    "CredentialRequest",
    "Principal",
    "Purpose",
    "Role",
    "RolePolicy",
    "require_role",
]
