"""The permission matrix: every endpoint of the HTTP API, called as every kind of caller,
against one table (:data:`MATRIX`).

Callers (``tests.support.permission_world``): workspace A's ``admin``, a ``developer``
invited to the profile under test, a ``developer_uninvited``, a ``viewer``; workspace B's
``other_workspace_admin`` and ``other_workspace_developer``; a ``disabled`` user's key, a
``revoked`` key, and ``anonymous`` (no ``Authorization`` header). Every id in a path is
workspace A's: its profile, its shared connection (:data:`USER_CONNECTION` repeats the
connection routes on the developer's own, user-specific connection), a member, a team, a
webhook. A route that destroys what it acts on gets a fresh target for each caller, and
afterwards the target must be gone exactly when the answer was a success.

The rules checked (../shared/CONTRACT.md, "Added by the people issue", "Rules the checks
rely on"): a disabled user's keys and a revoked key get 401, and no key at all does too;
admins use every profile of their workspace and its shared connection but not another
user's user-specific connection (403); developers read every profile but use only those
shared with them (403 otherwise); viewers read profiles and statuses only (403 on
tokens, proxy, tests, connections); audit and members are admin-only; another
workspace's resource by id is 404, answered exactly as an id that exists nowhere, and
another workspace's lists never show it. The pages that need no key stay public.

A route in the OpenAPI schema that the table does not cover fails the test: a new
endpoint must say here who may call it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from authprofiles.settings import Settings
from tests.support.app import Live
from tests.support.echo import EchoServer
from tests.support.idp import IdP
from tests.support.permission_world import CALLERS, OTHER_WORKSPACE, WEBHOOK, World, build_world

pytestmark = pytest.mark.idp

# An expectation is a status class or code, or several separated by "|" ("2xx|409").
Expect = str
Row = dict[str, Expect]


def api(
    admin: Expect,
    developer: Expect,
    developer_uninvited: Expect,
    viewer: Expect,
    other_workspace_admin: Expect,
    other_workspace_developer: Expect,
) -> Row:
    """A row under /api/v1: a disabled user's key, a revoked key and no key are 401 on
    every one of them; the developer signed in (a session, not a key) is answered as the
    developer's key is ("a signed-in session works wherever an API key does")."""
    return {
        "admin": admin,
        "developer": developer,
        "developer_signed_in": developer,
        "developer_uninvited": developer_uninvited,
        "viewer": viewer,
        "other_workspace_admin": other_workspace_admin,
        "other_workspace_developer": other_workspace_developer,
        "disabled": "401",
        "revoked": "401",
        "anonymous": "401",
    }


def public(expect: Expect, *, signed_in: Expect | None = None) -> Row:
    """A page that needs no key: every key gets the same answer as no key; a signed-in
    person gets ``signed_in`` where that differs."""
    row = dict.fromkeys(CALLERS, expect)
    row["developer_signed_in"] = signed_in or expect
    return row


# Shorthands for the rows that repeat.
EVERYONE = api("2xx", "2xx", "2xx", "2xx", "2xx", "2xx")
#: Admin-only, on workspace A's resource by id: B's admin gets 404; B's developer is
#: refused by role before any lookup, as any developer is.
ADMIN_BY_ID = api("2xx", "403", "403", "403", "404", "403")
#: Admin-only, in the caller's own workspace (B's admin acts in B).
ADMIN_ONLY = api("2xx", "403", "403", "403", "2xx", "403")
#: Using the shared connection of the profile the developer was invited to.
USE_SHARED = api("2xx", "2xx", "403", "403", "404", "404")
#: The proxy takes API keys, not a browser session: it relays what the upstream answers
#: on this server's origin, where a page would act as the signed-in person.
PROXY_SHARED = {**USE_SHARED, "developer_signed_in": "403"}
#: Managing the shared connection: an admin's.
MANAGE_SHARED = api("2xx", "403", "403", "403", "404", "404")
PROXY = "/api/v1/proxy/{connection_id}/{path}"

#: (method, path template as the OpenAPI schema spells it) -> caller -> expected answer.
MATRIX: dict[tuple[str, str], Row] = {
    # -- profiles: everyone in the workspace reads them; admins change them ------------------
    ("GET", "/api/v1/profiles"): EVERYONE,
    ("POST", "/api/v1/profiles"): ADMIN_ONLY,
    ("GET", "/api/v1/profiles/{profile_id}"): api("2xx", "2xx", "2xx", "2xx", "404", "404"),
    ("PATCH", "/api/v1/profiles/{profile_id}"): ADMIN_BY_ID,
    ("DELETE", "/api/v1/profiles/{profile_id}"): ADMIN_BY_ID,
    ("POST", "/api/v1/profiles/{profile_id}/test"): USE_SHARED,
    ("GET", "/api/v1/profiles/{profile_id}/access"): ADMIN_BY_ID,
    ("PUT", "/api/v1/profiles/{profile_id}/access"): ADMIN_BY_ID,
    # -- connections (the shared one; USER_CONNECTION for a user's own) ---------------------
    # The uninvited developer lists only their own connections (none on this profile).
    ("GET", "/api/v1/profiles/{profile_id}/connections"): api(
        "2xx", "2xx", "2xx", "403", "404", "404"
    ),
    # With {"owner": "shared"}: a shared connection is an admin's to make.
    ("POST", "/api/v1/profiles/{profile_id}/connections"): MANAGE_SHARED,
    ("GET", "/api/v1/connections"): api("2xx", "2xx", "2xx", "403", "2xx", "2xx"),
    ("GET", "/api/v1/connections/{connection_id}"): USE_SHARED,
    ("PATCH", "/api/v1/connections/{connection_id}"): MANAGE_SHARED,
    ("DELETE", "/api/v1/connections/{connection_id}"): MANAGE_SHARED,
    ("POST", "/api/v1/connections/{connection_id}/reauthorize"): MANAGE_SHARED,
    ("GET", "/api/v1/connections/{connection_id}/token"): USE_SHARED,
    ("POST", "/api/v1/connections/{connection_id}/token/refresh"): USE_SHARED,
    ("GET", PROXY): PROXY_SHARED,
    ("POST", PROXY): PROXY_SHARED,
    ("PUT", PROXY): PROXY_SHARED,
    ("PATCH", PROXY): PROXY_SHARED,
    ("DELETE", PROXY): PROXY_SHARED,
    ("OPTIONS", PROXY): PROXY_SHARED,
    # -- prefilling a profile is part of making one -------------------------------------------
    ("GET", "/api/v1/discovery"): ADMIN_ONLY,
    # -- API keys: admins manage the workspace's, everyone else their own ---------------------
    ("GET", "/api/v1/api-keys"): EVERYONE,
    ("POST", "/api/v1/api-keys"): EVERYONE,  # a viewer key: no higher than anyone's role
    # The target is a key of the invited developer: theirs and the admin's to revoke; to
    # anyone else it is unknown.
    ("DELETE", "/api/v1/api-keys/{key_id}"): api("2xx", "2xx", "404", "404", "404", "404"),
    # -- people: everyone reads themselves; members and teams are admin-only ------------------
    ("GET", "/api/v1/me"): EVERYONE,
    ("GET", "/api/v1/me/notifications"): EVERYONE,
    ("PUT", "/api/v1/me/notifications"): EVERYONE,
    ("GET", "/api/v1/users"): ADMIN_ONLY,
    ("POST", "/api/v1/users"): ADMIN_ONLY,
    ("GET", "/api/v1/users/{user_id}"): ADMIN_BY_ID,
    ("PATCH", "/api/v1/users/{user_id}"): ADMIN_BY_ID,
    ("DELETE", "/api/v1/users/{user_id}"): ADMIN_BY_ID,
    ("POST", "/api/v1/users/{user_id}/reset-link"): ADMIN_BY_ID,
    ("GET", "/api/v1/teams"): ADMIN_ONLY,
    ("POST", "/api/v1/teams"): ADMIN_ONLY,
    ("GET", "/api/v1/teams/{team_id}"): ADMIN_BY_ID,
    ("PATCH", "/api/v1/teams/{team_id}"): ADMIN_BY_ID,
    ("DELETE", "/api/v1/teams/{team_id}"): ADMIN_BY_ID,
    # -- audit and webhooks: admin-only -------------------------------------------------------
    ("GET", "/api/v1/audit"): ADMIN_ONLY,
    ("GET", "/api/v1/audit/export"): ADMIN_ONLY,
    ("GET", "/api/v1/webhooks"): ADMIN_ONLY,
    ("POST", "/api/v1/webhooks"): ADMIN_ONLY,
    ("DELETE", "/api/v1/webhooks/{webhook_id}"): ADMIN_BY_ID,
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries"): ADMIN_BY_ID,
    # -- agents: grants on connections the caller may use; held calls, their makers' --------
    # A grant on the shared connection: the uninvited developer may not use it (403), and
    # to workspace B it is a connection id that does not exist (422, naming the field).
    ("POST", "/api/v1/agent-grants"): api("2xx", "2xx", "403", "403", "422", "422"),
    ("GET", "/api/v1/agent-grants"): api("2xx", "2xx", "2xx", "403", "2xx", "2xx"),
    # The admin's grant: theirs to revoke; anyone else's is unknown to them.
    ("DELETE", "/api/v1/agent-grants/{grant_id}"): api("2xx", "404", "404", "403", "404", "404"),
    ("DELETE", "/api/v1/agent-grants"): api("2xx", "2xx", "2xx", "403", "2xx", "2xx"),
    ("GET", "/api/v1/approvals"): EVERYONE,
    # A call the admin's agent made: the admin (and the grant's maker) decides.
    ("GET", "/api/v1/approvals/{approval_id}"): api("2xx", "404", "404", "404", "404", "404"),
    ("POST", "/api/v1/approvals/{approval_id}/approve"): api(
        "2xx", "404", "404", "404", "404", "404"
    ),
    ("POST", "/api/v1/approvals/{approval_id}/deny"): api("2xx", "404", "404", "404", "404", "404"),
    # -- no key: health, the OAuth redirect target, the pages for people ----------------------
    ("GET", "/metrics"): public("2xx"),
    # The MCP face's OAuth metadata is public; its token endpoint and /mcp take agent
    # credentials only (client credentials of a grant; a grant's token): every key, and no
    # key, is 401 there. The authorization endpoint exists for the metadata's sake alone.
    ("GET", "/.well-known/oauth-authorization-server"): public("2xx"),
    ("GET", "/.well-known/oauth-protected-resource"): public("2xx"),
    ("GET", "/.well-known/oauth-protected-resource/mcp"): public("2xx"),
    ("GET", "/oauth/authorize"): public("400"),
    ("POST", "/mcp"): public("401"),
    ("POST", "/oauth/token"): public("401"),
    ("GET", "/healthz"): public("2xx"),
    ("GET", "/readyz"): public("2xx"),
    ("GET", "/"): public("2xx", signed_in="303"),  # a signed-in person goes to the console
    ("GET", "/readme"): public("2xx"),
    # Without `state` the callback's page says why it did not connect.
    ("GET", "/oauth/callback"): public("400"),
    ("GET", "/signin"): public("2xx"),
    # The sign-in forms refuse a post without their CSRF cookie and field.
    ("POST", "/signin"): public("403"),
    ("POST", "/signin/sso"): public("403"),
    ("GET", "/signin/sso/callback"): public("404"),  # single sign-on is not set up here
    ("GET", "/reset/{token}"): public("404"),
    ("POST", "/reset/{token}"): public("403|404"),
    # A signed-in person's (a session cookie, never an API key): without one, 401; the
    # forms, without the session's CSRF token in the form, 403.
    ("GET", "/signin/csrf"): public("401", signed_in="2xx"),
    ("POST", "/signout"): public("403"),
    ("POST", "/signout/everywhere"): public("403"),
    ("POST", "/signin/workspace"): public("403"),
}

#: Public routes the schema does not list: the documentation and the schema itself.
UNLISTED_PUBLIC: dict[tuple[str, str], Row] = {
    ("GET", "/openapi.json"): public("2xx"),
    ("GET", "/docs"): public("2xx"),
    ("GET", "/redoc"): public("2xx"),
}

USE_OWN = api("403", "2xx", "403", "403", "404", "404")
#: The connection routes again, on the invited developer's own (user-specific) connection:
#: its owner alone uses it; an admin sees it and may disconnect it, never use it.
USER_CONNECTION: dict[tuple[str, str], Row] = {
    # With {"owner": <the caller's own user id>}.
    ("POST", "/api/v1/profiles/{profile_id}/connections"): api(
        "2xx", "2xx", "403", "403", "404", "404"
    ),
    ("GET", "/api/v1/connections/{connection_id}"): api("2xx", "2xx", "403", "403", "404", "404"),
    ("PATCH", "/api/v1/connections/{connection_id}"): USE_OWN,
    ("DELETE", "/api/v1/connections/{connection_id}"): api(
        "2xx", "2xx", "403", "403", "404", "404"
    ),
    ("POST", "/api/v1/connections/{connection_id}/reauthorize"): USE_OWN,
    ("GET", "/api/v1/connections/{connection_id}/token"): USE_OWN,
    ("POST", "/api/v1/connections/{connection_id}/token/refresh"): USE_OWN,
    ("GET", PROXY): {**USE_OWN, "developer_signed_in": "403"},
    ("POST", PROXY): {**USE_OWN, "developer_signed_in": "403"},
}

#: The lists workspace B's admin reads: 200, and never one of workspace A's ids.
LISTS = (
    "/api/v1/profiles",
    "/api/v1/connections",
    "/api/v1/api-keys",
    "/api/v1/users",
    "/api/v1/teams",
    "/api/v1/audit",
    "/api/v1/webhooks",
    "/api/v1/agent-grants",
    "/api/v1/approvals",
)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD")
_PARAM = re.compile(r"\{(\w+)\}")


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """The rules are the service layer's, the same on every database: SQLite is enough."""
    return f"sqlite:///{tmp_path / 'matrix.db'}"


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        public_url="http://127.0.0.1:8000", http_timeout_seconds=5, webhook_allow_private=True
    )


@pytest.fixture
def world(live: Live, idp: IdP, echo_server: EchoServer) -> Iterator[World]:
    with build_world(live, idp, echo_server) as built:
        yield built


# -- calling a row -------------------------------------------------------------------------
def matches(expect: Expect, status: int) -> bool:
    for option in expect.split("|"):
        if option.endswith("xx") and status // 100 == int(option[0]):
            return True
        if option == str(status):
            return True
    return False


def body_for(world: World, method: str, path: str, caller: str, own: bool) -> dict[str, Any]:
    """The request's JSON body and query: valid, so that only who asks decides."""
    user_id = world.user_ids.get(caller)
    suffix = uuid.uuid4().hex[:8]
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("POST", "/api/v1/profiles"): {"json": world.profile_body()},
        ("PATCH", "/api/v1/profiles/{profile_id}"): {"json": {"description": f"by {caller}"}},
        ("POST", "/api/v1/profiles/{profile_id}/test"): {"json": {}},
        ("PUT", "/api/v1/profiles/{profile_id}/access"): {
            "json": {
                "users": [world.user_ids["developer"], world.user_ids["disabled"]],
                "teams": [world.team_id],
            }
        },
        ("POST", "/api/v1/profiles/{profile_id}/connections"): {
            "json": {"owner": (user_id or "shared") if own else "shared"}
        },
        ("PATCH", "/api/v1/connections/{connection_id}"): {"json": {"fields": {}}},
        ("POST", "/api/v1/connections/{connection_id}/reauthorize"): {"json": {}},
        ("POST", PROXY): {"json": {"from": caller}},
        ("PUT", PROXY): {"json": {"from": caller}},
        ("PATCH", PROXY): {"json": {"from": caller}},
        ("GET", "/api/v1/discovery"): {"params": {"issuer": world.issuer}},
        ("POST", "/api/v1/api-keys"): {"json": {"name": f"by-{caller}", "role": "viewer"}},
        ("PUT", "/api/v1/me/notifications"): {"json": {"email": {"profile.failing": True}}},
        ("POST", "/api/v1/users"): {
            "json": {"email": f"new-{suffix}@example.com", "name": "New", "role": "viewer"}
        },
        ("PATCH", "/api/v1/users/{user_id}"): {"json": {"name": f"Renamed by {caller}"}},
        ("POST", "/api/v1/teams"): {"json": {"name": f"team-{suffix}", "members": []}},
        ("PATCH", "/api/v1/teams/{team_id}"): {"json": {"members": [world.target_user_id]}},
        ("POST", "/api/v1/webhooks"): {"json": WEBHOOK},
        ("POST", "/api/v1/agent-grants"): {
            "json": {
                "agent": f"matrix-{caller}",
                "connection_ids": [world.shared_connection_id],
                "rules": [{"methods": ["GET"], "path": "/**"}],
                "ttl_seconds": 60,
            }
        },
        ("DELETE", "/api/v1/agent-grants"): {"params": {"agent": "nobody-by-that-name"}},
        ("POST", "/oauth/token"): {"data": {"grant_type": "client_credentials"}},
        ("POST", "/signin"): {"data": {"email": "nobody@example.com", "password": "wrong"}},
        ("POST", "/signin/sso"): {"data": {}},
        ("POST", "/reset/{token}"): {"data": {"password": "a new password 123"}},
    }
    return bodies.get((method, path), {})


@dataclass
class Target:
    """A fresh resource a destroying route acts on (:func:`exists` tells whether it is
    still there)."""

    param: str
    id: str


def fill(
    world: World, method: str, path: str, *, own: bool, unknown: bool
) -> tuple[str, Target | None]:
    """The path with workspace A's ids (or, ``unknown``, an id that exists nowhere); a
    ``DELETE`` gets a fresh target of its own."""
    fresh: dict[str, Callable[[], str]] = {
        "profile_id": world.fresh_profile,
        "connection_id": world.fresh_own_connection if own else world.fresh_shared_connection,
        "user_id": world.fresh_user,
        "team_id": world.fresh_team,
        "webhook_id": world.fresh_webhook,
        "key_id": world.fresh_developer_key,
        "grant_id": world.fresh_grant,
        "approval_id": world.fresh_approval,
    }
    standing = {
        "profile_id": world.profile_id,
        "connection_id": world.own_connection_id if own else world.shared_connection_id,
        "user_id": world.target_user_id,
        "team_id": world.team_id,
        "webhook_id": world.webhook_id,
        "grant_id": world.grant_id,
        "approval_id": world.approval_id,
        "path": "permission/matrix",
        "token": "not-a-reset-token",
    }
    target = None
    destroys = (method == "DELETE" and not path.startswith("/api/v1/proxy/")) or path.endswith(
        ("/approve", "/deny")
    )
    values: dict[str, str] = {}
    for param in _PARAM.findall(path):
        if unknown and param in fresh:
            values[param] = world.unknown
        elif destroys and param in fresh:
            target = Target(param, fresh[param]())
            values[param] = target.id
        else:
            values[param] = standing[param]
    return _PARAM.sub(lambda m: values[m.group(1)], path), target


def exists(world: World, target: Target) -> bool:
    admin = world.admin
    if target.param == "webhook_id":
        return target.id in {w["id"] for w in admin.get("/api/v1/webhooks").json()}
    if target.param == "grant_id":
        grants = admin.get("/api/v1/agent-grants", params={"limit": 1000}).json()
        return any(g["id"] == target.id and g["status"] == "active" for g in grants)
    if target.param == "approval_id":
        # Decided, it is no longer the held call it was.
        return bool(admin.get(f"/api/v1/approvals/{target.id}").json()["status"] == "pending")
    if target.param == "key_id":
        keys = admin.get("/api/v1/api-keys", params={"limit": 1000}).json()
        return any(k["id"] == target.id and k["revoked_at"] is None for k in keys)
    kind = {
        "profile_id": "profiles",
        "connection_id": "connections",
        "user_id": "users",
        "team_id": "teams",
    }[target.param]
    status = admin.get(f"/api/v1/{kind}/{target.id}").status_code
    assert status in (200, 404), f"{kind}/{target.id}: {status}"
    return status == 200


def call(
    world: World, caller: str, method: str, path: str, *, own: bool = False, unknown: bool = False
) -> tuple[httpx.Response, Target | None]:
    url, target = fill(world, method, path, own=own, unknown=unknown)
    request = body_for(world, method, path, caller, own)
    http = world.clients[caller]
    response = http.request(method, url, **request)
    http.cookies.clear()  # a page's cookie (a form's CSRF) must not reach the next call
    return response, target


def run(world: World, table: dict[tuple[str, str], Row], *, own: bool) -> list[str]:
    """Every row as every caller; each answer that differs from the table, described."""
    mismatches = []
    label = " (user-specific connection)" if own else ""
    for (method, path), row in table.items():
        for caller in CALLERS:
            response, target = call(world, caller, method, path, own=own)
            expected = row[caller]
            where = f"{method} {path}{label} as {caller}"
            if not matches(expected, response.status_code):
                detail = response.text[:160].replace("\n", " ")
                mismatches.append(
                    f"{where}: expected {expected}, got {response.status_code} {detail}"
                )
            if target is not None and response.status_code < 500:
                gone = not exists(world, target)
                if gone != response.is_success:
                    state = "gone" if gone else "still there"
                    mismatches.append(
                        f"{where}: answered {response.status_code} but the target is {state}"
                    )
            if caller in OTHER_WORKSPACE and _PARAM.search(path) and "{token}" not in path:
                # Workspace A's id must answer exactly as an id that exists nowhere.
                missing, _ = call(world, caller, method, path, own=own, unknown=True)
                if missing.status_code != response.status_code:
                    mismatches.append(
                        f"{where}: workspace A's id answered {response.status_code}, an "
                        f"unknown id {missing.status_code}: the answer tells that the id exists"
                    )
    return mismatches


def schema_routes(world: World) -> set[tuple[str, str]]:
    schema = world.clients["anonymous"].get("/openapi.json").json()
    return {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method in operations
        if method.upper() in METHODS
    }


# -- the test --------------------------------------------------------------------------------
def test_every_endpoint_answers_every_caller_as_the_table_says(world: World) -> None:
    routes = schema_routes(world)
    uncovered = sorted(routes - MATRIX.keys())
    stale = sorted(MATRIX.keys() - routes)
    assert not uncovered, (
        "routes in the OpenAPI schema that the permission matrix does not cover: add each "
        f"to MATRIX with who may call it: {uncovered}"
    )
    assert not stale, f"rows of MATRIX for routes the app does not have: {stale}"

    mismatches = run(world, MATRIX | UNLISTED_PUBLIC, own=False)
    mismatches += run(world, USER_CONNECTION, own=True)
    mismatches += other_workspace_lists(world)
    mismatches += visible_connections(world)
    mismatches += keys_and_teams(world)
    assert not mismatches, f"{len(mismatches)} answers differ from the table:\n" + "\n".join(
        mismatches
    )


def other_workspace_lists(world: World) -> list[str]:
    """Workspace B's admin lists its own workspace's things, never workspace A's."""
    found = []
    other = world.clients["other_workspace_admin"]
    for path in LISTS:
        response = other.get(path, params={"limit": 1000})
        if response.status_code != 200:
            found.append(f"GET {path} as other_workspace_admin: {response.status_code}")
            continue
        for item in response.json():
            leaked = {
                str(value)
                for key, value in item.items()
                if key in ("id", "profile_id", "user_id") and value in world.a_ids
            }
            target = item.get("target") or {}
            if target.get("id") in world.a_ids:
                leaked.add(str(target["id"]))
            if item.get("workspace_id") not in (None, *_b_workspace(world)):
                leaked.add(f"workspace {item['workspace_id']}")
            if leaked:
                found.append(f"GET {path} as other_workspace_admin shows workspace A's {leaked}")
    by_name = other.get("/api/v1/profiles", params={"name": world.profile_name})
    if by_name.status_code != 200 or by_name.json():
        found.append(f"GET /api/v1/profiles?name=<A's profile> as B: {by_name.text[:200]}")
    of_profile = other.get("/api/v1/connections", params={"profile_id": world.profile_id})
    if of_profile.status_code != 200 or of_profile.json():
        found.append(f"GET /api/v1/connections?profile_id=<A's> as B: {of_profile.text[:200]}")
    return found


def _b_workspace(world: World) -> set[str]:
    me = world.clients["other_workspace_admin"].get("/api/v1/me").json()
    return {me["workspace"]["id"]}


def visible_connections(world: World) -> list[str]:
    """Admins list every connection of the workspace; developers their own and the shared
    ones of the profiles shared with them."""
    shared, own = world.shared_connection_id, world.own_connection_id
    wanted = {
        "admin": {shared, own},
        "developer": {shared, own},
        "developer_uninvited": set(),
    }
    found = []
    for caller, expected in wanted.items():
        response = world.clients[caller].get("/api/v1/connections", params={"limit": 1000})
        seen = {c["id"] for c in response.json()} & {shared, own}
        if seen != expected:
            found.append(f"GET /api/v1/connections as {caller}: sees {seen}, expected {expected}")
    return found


def keys_and_teams(world: World) -> list[str]:
    """A key no higher than its maker's role; an invitation through a team counts as one
    in person, from the moment the team changes, and ends with it."""
    found = []
    for caller, role in (("developer", "admin"), ("viewer", "developer")):
        body = {"name": f"higher-{caller}", "role": role}
        status = world.clients[caller].post("/api/v1/api-keys", json=body).status_code
        if status != 403:
            found.append(f"POST /api/v1/api-keys role {role} as {caller}: {status}, expected 403")

    token_url = f"/api/v1/connections/{world.shared_connection_id}/token"
    team_url = f"/api/v1/teams/{world.team_id}"
    uninvited = world.clients["developer_uninvited"]
    joined = [world.target_user_id, str(world.user_ids["developer_uninvited"])]
    for members, expected in ((joined, 200), ([world.target_user_id], 403)):
        world.expect(world.admin.patch(team_url, json={"members": members}), 200)
        status = uninvited.get(token_url).status_code
        if status != expected:
            found.append(
                f"GET {token_url} as developer_uninvited with the team invited to the profile "
                f"{'joined' if expected == 200 else 'left'}: {status}, expected {expected}"
            )
    return found
