"""The people and things the permission matrix calls the API about, made once per test.

Workspace A (the installation's first, ``default``) holds a client credentials profile
whose upstream is the echo server, its shared connection, a developer's own
(user-specific) connection on it, a team, a webhook, and members: an admin, a developer
invited to the profile, a developer who was not, a viewer, a developer who was then
disabled, and a user that the member routes act on. Workspace B has an admin and a
developer of its own. Each caller is an API key of a real user (made the way the
command line makes them); ``revoked`` is an admin's key revoked before the matrix runs,
``anonymous`` sends no ``Authorization`` header.

``developer_signed_in`` is the invited developer again, signed in with their password: a
session cookie and its CSRF token (``X-CSRF-Token``) instead of a key.

Every id route is also called on an id that exists nowhere (:attr:`World.unknown`), so a
test can check that another workspace's id answers exactly as a missing one does.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from authprofiles.core.callers import Principal, Role
from authprofiles.services.signin.sessions import CSRF_HEADER, SESSION_COOKIE
from authprofiles.store.models import DEFAULT_WORKSPACE_ID
from tests.support.app import Live, oauth_profile
from tests.support.echo import EchoServer
from tests.support.idp import IdP

#: Every caller of the matrix, in the order its report lists them.
CALLERS = (
    "admin",
    "developer",
    "developer_signed_in",
    "developer_uninvited",
    "viewer",
    "other_workspace_admin",
    "other_workspace_developer",
    "disabled",
    "revoked",
    "anonymous",
)
#: The callers from workspace B.
OTHER_WORKSPACE = ("other_workspace_admin", "other_workspace_developer")
#: The invited developer's password, to sign in with.
PASSWORD = "a long enough password 42"
#: Loopback webhooks are allowed in this test's settings; nothing is ever delivered to this
#: one (its only event, ``profile.failing``, never happens here).
WEBHOOK = {"url": "http://127.0.0.1:9/permission-matrix", "events": ["profile.failing"]}


def _email(label: str) -> str:
    return f"{label.replace('_', '-')}-{uuid.uuid4().hex[:6]}@example.com"


@dataclass
class World:
    live: Live
    idp_client: tuple[str, str]
    token_url: str
    issuer: str
    upstream: str
    clients: dict[str, httpx.Client] = field(default_factory=dict)
    #: Each caller's user id (None for ``anonymous``).
    user_ids: dict[str, str | None] = field(default_factory=dict)
    #: Workspace A's profile, shared connection, the developer's own connection, ...
    profile_id: str = ""
    profile_name: str = ""
    shared_connection_id: str = ""
    own_connection_id: str = ""
    team_id: str = ""
    webhook_id: str = ""
    target_user_id: str = ""
    #: An agent grant of the admin's on the shared connection, and a call it holds.
    grant_id: str = ""
    approval_id: str = ""
    #: Every id of workspace A: none may appear in workspace B's lists.
    a_ids: set[str] = field(default_factory=set)
    unknown: str = "00000000-0000-4000-8000-000000000000"

    # -- building ------------------------------------------------------------------------
    def client(self, key: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        return httpx.Client(base_url=self.live.url, headers=headers, timeout=30, trust_env=False)

    @property
    def admin(self) -> httpx.Client:
        return self.clients["admin"]

    def expect(self, response: httpx.Response, status: int) -> dict[str, Any]:
        assert response.status_code == status, (
            f"{response.request.method} {response.request.url}: {response.status_code} "
            f"{response.text[:500]}"
        )
        return dict(response.json()) if response.content else {}

    # -- fresh targets for the routes that destroy what they act on ------------------------
    def fresh_profile(self) -> str:
        body = self.profile_body()
        created = self.expect(self.admin.post("/api/v1/profiles", json=body), 201)
        self.a_ids.add(created["id"])
        return str(created["id"])

    def profile_body(self) -> dict[str, Any]:
        client_id, client_secret = self.idp_client
        return {
            "name": f"matrix-{uuid.uuid4().hex[:8]}",
            "identity_provider": "Test IdP",
            "auth_type": "oauth2_client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
            "token_url": self.token_url,
            "api_base_url": self.upstream,
        }

    def fresh_shared_connection(self) -> str:
        return self.connect("admin", "shared")

    def fresh_own_connection(self) -> str:
        return self.connect("developer", str(self.user_ids["developer"]))

    def connect(self, caller: str, owner: str) -> str:
        url = f"/api/v1/profiles/{self.profile_id}/connections"
        created = self.expect(self.clients[caller].post(url, json={"owner": owner}), 201)
        self.a_ids.add(created["id"])
        return str(created["id"])

    def fresh_user(self) -> str:
        body = {"email": _email("member"), "name": "Member", "role": "developer"}
        created = self.expect(self.admin.post("/api/v1/users", json=body), 201)
        self.a_ids.add(created["id"])
        return str(created["id"])

    def fresh_team(self) -> str:
        body = {"name": f"team-{uuid.uuid4().hex[:8]}", "members": [self.target_user_id]}
        created = self.expect(self.admin.post("/api/v1/teams", json=body), 201)
        self.a_ids.add(created["id"])
        return str(created["id"])

    def fresh_webhook(self) -> str:
        created = self.expect(self.admin.post("/api/v1/webhooks", json=WEBHOOK), 201)
        self.a_ids.add(created["id"])
        return str(created["id"])

    def fresh_grant(self) -> str:
        """An agent grant the admin made on the shared connection (POSTs ask first)."""
        return self._grant()[0]

    def _grant(self) -> tuple[str, str]:
        body = {
            "agent": "matrix-agent",
            "connection_ids": [self.shared_connection_id],
            "rules": [{"methods": ["POST"], "path": "/**", "approval": True}],
            "ttl_seconds": 3600,
        }
        created = self.expect(self.admin.post("/api/v1/agent-grants", json=body), 201)
        self.a_ids.add(created["id"])
        return str(created["id"]), str(created["token"])

    def fresh_approval(self) -> str:
        """A call the admin's agent made that waits for a decision."""
        _, token = self._grant()
        with self.client(token) as agent:
            url = f"/api/v1/proxy/{self.shared_connection_id}/held"
            held = agent.post(url, json={"n": uuid.uuid4().hex})
        approval_id = str(self.expect(held, 403)["approval_id"])
        self.a_ids.add(approval_id)
        return approval_id

    def fresh_developer_key(self) -> str:
        """A key of the (invited) developer: theirs to revoke, and an admin's."""
        created = self.live.services.api_keys.create(
            name="matrix-spare",
            role="developer",
            workspace_id=DEFAULT_WORKSPACE_ID,
            user_id=self.user_ids["developer"],
        )
        self.a_ids.add(created.id)
        return created.id


@contextmanager
def build_world(live: Live, idp: IdP, echo_server: EchoServer) -> Iterator[World]:
    """Workspace A and B, their people and keys, and A's resources (see the module)."""
    services = live.services
    people = services.people
    profile, client = oauth_profile(live, idp, "client-credentials", api_base_url=echo_server.url)
    world = World(
        live=live,
        idp_client=(client.client_id, client.client_secret),
        token_url=idp.token_url,
        issuer=idp.issuer,
        upstream=echo_server.url,
        profile_id=str(profile["id"]),
        profile_name=str(profile["name"]),
    )
    keys: dict[str, str | None] = {"anonymous": None}

    emails: dict[str, str] = {}

    def member(label: str, role: str, workspace: str | None = None) -> str:
        emails[label] = _email(label)
        # Only the developer signs in (argon2 takes its time).
        password = PASSWORD if label == "developer" else None
        made = people.create_user(
            email=emails[label], name=label, role=role, workspace=workspace, password=password
        )
        return made.id

    def key(label: str, user_id: str, role: str, workspace_id: str) -> str:
        created = services.api_keys.create(
            name=f"matrix-{label}", role=role, workspace_id=workspace_id, user_id=user_id
        )
        if workspace_id == DEFAULT_WORKSPACE_ID:
            world.a_ids.add(created.id)
        return created.key

    # Workspace A: the first admin adopts the keys made before there was one (live's).
    for label, role in (
        ("admin", "admin"),
        ("developer", "developer"),
        ("developer_uninvited", "developer"),
        ("viewer", "viewer"),
        ("disabled", "developer"),
    ):
        user_id = member(label, role)
        world.user_ids[label] = user_id
        keys[label] = key(label, user_id, role, DEFAULT_WORKSPACE_ID)
    world.target_user_id = member("target", "developer")
    admin_a = Principal(
        workspace_id=DEFAULT_WORKSPACE_ID, role=Role.ADMIN, user_id=world.user_ids["admin"]
    )

    # Workspace B: its admin is made in A, given B, then removed from A, so that they are a
    # member of B alone.
    b_admin_email = _email("other-admin")
    b_admin = people.create_user(email=b_admin_email, name="B admin", role="developer")
    workspace_b = people.create_workspace(f"b-{uuid.uuid4().hex[:6]}", b_admin_email)
    people.remove_member(admin_a, b_admin.id)
    world.user_ids["other_workspace_admin"] = b_admin.id
    keys["other_workspace_admin"] = key("other-admin", b_admin.id, "admin", workspace_b.id)
    b_developer = member("other_developer", "developer", workspace=workspace_b.id)
    world.user_ids["other_workspace_developer"] = b_developer
    keys["other_workspace_developer"] = key("other-dev", b_developer, "developer", workspace_b.id)

    # A revoked key (of A's admin: the strongest key there is, refused all the same).
    revoked = services.api_keys.create(
        name="matrix-revoked",
        role="admin",
        workspace_id=DEFAULT_WORKSPACE_ID,
        user_id=world.user_ids["admin"],
    )
    services.api_keys.revoke(revoked.id, DEFAULT_WORKSPACE_ID)
    keys["revoked"] = revoked.key
    world.user_ids["revoked"] = world.user_ids["admin"]
    world.user_ids["anonymous"] = None
    world.a_ids |= {revoked.id, world.profile_id, world.target_user_id}
    world.a_ids |= {u for label, u in world.user_ids.items() if u and label not in OTHER_WORKSPACE}

    world.clients = {caller: world.client(keys[caller]) for caller in CALLERS if caller in keys}
    signed_in = services.signin.sign_in_with_password(emails["developer"], PASSWORD, None)
    world.user_ids["developer_signed_in"] = world.user_ids["developer"]
    world.clients["developer_signed_in"] = httpx.Client(
        base_url=live.url,
        headers={
            "Cookie": f"{SESSION_COOKIE}={signed_in.session.token}",
            CSRF_HEADER: signed_in.session.csrf_token,
        },
        timeout=30,
        trust_env=False,
    )
    try:
        # The developer and the (later disabled) developer are invited to the profile,
        # the team through which the target user is too.
        world.team_id = world.fresh_team()
        access = {
            "users": [world.user_ids["developer"], world.user_ids["disabled"]],
            "teams": [world.team_id],
        }
        url = f"/api/v1/profiles/{world.profile_id}/access"
        world.expect(world.admin.put(url, json=access), 200)
        world.shared_connection_id = world.fresh_shared_connection()
        world.own_connection_id = world.fresh_own_connection()
        world.webhook_id = world.fresh_webhook()
        world.grant_id = world.fresh_grant()
        world.approval_id = world.fresh_approval()
        # Disabled after everything else: their keys stop working at once.
        people.update_member(admin_a, str(world.user_ids["disabled"]), disabled=True)
        yield world
    finally:
        for http in world.clients.values():
            http.close()


__all__ = ["CALLERS", "OTHER_WORKSPACE", "WEBHOOK", "World", "build_world"]
