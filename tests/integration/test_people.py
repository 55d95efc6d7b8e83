"""People end to end: the first admin from the CLI, members and teams over the API,
invitations to profiles enforced by the one policy, owners of connections, disabled users,
workspaces that never see each other."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from alembic import command
from sqlalchemy import text
from typer.testing import CliRunner

from authprofiles.cli.main import app as cli
from authprofiles.composition import Services
from authprofiles.core.callers import Principal, Role
from authprofiles.core.errors import ValidationFailed
from authprofiles.settings import Settings
from authprofiles.store.db import Database, alembic_config
from authprofiles.store.models import DEFAULT_WORKSPACE_ID
from tests.support.app import Live, oauth_profile
from tests.support.idp import IdP

API = "/api/v1"
#: HTTP behaviour the database does not change runs on SQLite; what it changes is marked
#: ``both_databases`` (see tests/conftest.py).
SQLITE_ONLY = True
#: The default workspace's admin, as the service layer sees one.
ADMIN = Principal(workspace_id=DEFAULT_WORKSPACE_ID, role=Role.ADMIN, name="test")


def _client(live: Live, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=live.url, headers={"Authorization": f"Bearer {key}"}, timeout=30, trust_env=False
    )


def _member(services: Services, email: str, role: str, workspace: str | None = None) -> str:
    """A new user with ``role`` in a workspace, and an API key of theirs with that role."""
    member = services.people.create_user(email=email, role=role, workspace=workspace)
    workspace_id = services.people.workspace_id_of(workspace)
    return services.api_keys.create(
        name=f"{email}-key", role=role, workspace_id=workspace_id, user_id=member.id
    ).key


def test_the_first_admin_from_the_cli_adopts_the_keys_made_before(
    runner: CliRunner, services: Services
) -> None:
    early = services.api_keys.create(name="early", role="developer")
    assert early.user_id is None
    made = runner.invoke(
        cli,
        ["users", "create", "--email", "Ada@Example.com", "--name", "Ada", "--admin", "--json"],
        input="a long enough password\n",
    )
    assert made.exit_code == 0, made.output
    admin = json.loads(made.stdout)
    assert admin["email"] == "ada@example.com" and admin["role"] == "admin"
    keys = {k.name: k for k in services.api_keys.list()}
    assert keys["early"].user_id == admin["id"]
    # Without --user, a key is the workspace's first admin's.
    created = runner.invoke(
        cli, ["api-keys", "create", "--name", "ci", "--role", "viewer", "--json"]
    )
    assert created.exit_code == 0, created.output
    assert {k.name: k for k in services.api_keys.list()}["ci"].user_id == admin["id"]
    listed = runner.invoke(cli, ["users", "list", "--json"])
    assert [u["email"] for u in json.loads(listed.stdout)] == ["ada@example.com"]


def test_a_key_acts_with_the_lower_of_its_role_and_its_users(
    live: Live, services: Services
) -> None:
    viewer = services.people.create_user(email="v@example.com", role="viewer")
    # A key with a higher role than its user's is refused at creation...
    with pytest.raises(ValidationFailed) as refused:
        services.api_keys.create(
            name="too-high", role="developer", workspace_id=DEFAULT_WORKSPACE_ID, user_id=viewer.id
        )
    assert refused.value.errors[0].field == "role"
    dev = services.people.create_user(email="d@example.com", role="developer")
    key = services.api_keys.create(
        name="d", role="developer", workspace_id=DEFAULT_WORKSPACE_ID, user_id=dev.id
    ).key
    with _client(live, key) as http:
        me = http.get(f"{API}/me").json()
        assert me["user"]["email"] == "d@example.com"
        assert (me["role"], me["workspace"]) == ("developer", {"id": "default", "name": "default"})
        assert http.get(f"{API}/connections").status_code == 200
        # ...and a user demoted later acts with their new role at once.
        services.people.update_member(ADMIN, dev.id, role="viewer")
        assert http.get(f"{API}/me").json()["role"] == "viewer"
        assert http.get(f"{API}/connections").status_code == 403
        made = http.post(f"{API}/api-keys", json={"name": "k", "role": "developer"})
        assert made.status_code == 403, made.text


@pytest.mark.both_databases
def test_invitations_decide_who_uses_a_profile_and_owners_keep_their_connections(
    live: Live, services: Services, idp: IdP
) -> None:
    admin_key = _member(services, "admin@example.com", "admin")
    dev_key = _member(services, "dev@example.com", "developer")
    other_key = _member(services, "other@example.com", "developer")
    dev_id = services.people.user_id_by_email("dev@example.com", DEFAULT_WORKSPACE_ID)
    profile, _ = oauth_profile(live, idp, "client-credentials")
    with _client(live, admin_key) as admin, _client(live, dev_key) as dev:
        shared = admin.post(f"{API}/profiles/{profile['id']}/connections", json={}).json()["id"]
        # Not invited: the shared connection and a connection of their own are refused.
        assert dev.get(f"{API}/connections/{shared}/token").status_code == 403
        own = {"owner": dev_id}
        assert dev.post(f"{API}/profiles/{profile['id']}/connections", json=own).status_code == 403
        assert dev.get(f"{API}/connections").json() == []
        # Invited through a team.
        team = admin.post(f"{API}/teams", json={"name": "payments", "members": [dev_id]})
        assert team.status_code == 201, team.text
        access = admin.put(
            f"{API}/profiles/{profile['id']}/access", json={"teams": [team.json()["id"]]}
        )
        assert access.status_code == 200, access.text
        assert dev.get(f"{API}/connections/{shared}/token").status_code == 200
        mine = dev.post(f"{API}/profiles/{profile['id']}/connections", json=own)
        assert mine.status_code == 201, mine.text
        mine_id = mine.json()["id"]
        # A developer makes no shared connection, and nobody else's.
        assert dev.post(f"{API}/profiles/{profile['id']}/connections", json={}).status_code == 403
        # The owner alone uses a user-specific connection: not even an admin.
        assert admin.get(f"{API}/connections/{mine_id}/token").status_code == 403
        assert dev.get(f"{API}/connections/{mine_id}/token").status_code == 200
        with _client(live, other_key) as other:
            assert other.get(f"{API}/connections/{mine_id}/token").status_code == 403
        assert {c["id"] for c in dev.get(f"{API}/connections").json()} == {shared, mine_id}
        # Out of the team: refused again (at once in this worker).
        admin.patch(f"{API}/teams/{team.json()['id']}", json={"members": []})
        assert dev.get(f"{API}/connections/{shared}/token").status_code == 403


def test_a_disabled_users_keys_stop_at_once(live: Live, services: Services) -> None:
    _member(services, "boss@example.com", "admin")
    key = _member(services, "leaver@example.com", "developer")
    leaver = services.people.user_id_by_email("leaver@example.com", DEFAULT_WORKSPACE_ID)
    with _client(live, key) as http:
        assert http.get(f"{API}/profiles").status_code == 200
        services.people.update_member(ADMIN, leaver, disabled=True)
        answer = http.get(f"{API}/profiles")
        assert answer.status_code == 401, answer.text
        assert "disabled" in answer.json()["detail"]


@pytest.mark.both_databases
def test_the_last_admin_stays(live: Live, services: Services) -> None:
    only = services.people.create_user(email="only@example.com", role="admin")
    answer = live.http.patch(f"{API}/users/{only.id}", json={"role": "viewer"})
    assert answer.status_code == 409, answer.text


@pytest.mark.both_databases
def test_workspaces_never_see_each_other(live: Live, services: Services, idp: IdP) -> None:
    services.people.create_user(email="a@example.com", role="admin")
    services.people.create_user(email="b@example.com", role="admin")
    other = services.people.create_workspace("other", "b@example.com")
    b_id = services.people.user_id_by_email("b@example.com", other.id)
    b_key = services.api_keys.create(
        name="b", role="admin", workspace_id=other.id, user_id=b_id
    ).key
    profile, _ = oauth_profile(live, idp, "client-credentials")
    connection = live.connect(profile["id"])["id"]
    with _client(live, b_key) as b:
        for path in (
            f"/profiles/{profile['id']}",
            f"/connections/{connection}",
            f"/connections/{connection}/token",
            f"/profiles/{profile['id']}/access",
        ):
            assert b.get(API + path).status_code == 404, path
        assert b.get(f"{API}/profiles").json() == []
        assert b.get(f"{API}/connections").json() == []
        assert [u["email"] for u in b.get(f"{API}/users").json()] == ["b@example.com"]
        assert b.get(f"/api/v1/proxy/{connection}/anything").status_code == 404
        assert b.get(f"{API}/me").json()["workspace"]["name"] == "other"


def test_an_install_from_before_people_migrates_into_the_first_admins_workspace(
    tmp_path: Path, master_key: str
) -> None:
    """A single-workspace store at the last migration before people: its keys and profiles
    land in the first workspace, and the first admin made afterwards owns its keys."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    database = Database(url)
    command.upgrade(alembic_config(database.url), "0005")
    with database.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO api_keys (id, workspace_id, name, role, prefix, secret_hash,"
                " created_at) VALUES ('k1', 'default', 'old', 'developer', 'p1', 'h',"
                " CURRENT_TIMESTAMP)"
            )
        )
    database.migrate()
    services = Services(Settings(database_url=url, master_key=master_key), db=database)
    try:
        assert services.people.me(ADMIN).workspace_name == "default"
        [old] = services.api_keys.list()
        assert old.user_id is None  # acts by its role until there is an admin
        admin = services.people.create_user(email="first@example.com", role="admin")
        assert [k.user_id for k in services.api_keys.list()] == [admin.id]
    finally:
        services.close()


def test_one_workspaces_admin_cannot_act_on_an_account_that_belongs_to_others_too(
    live: Live, services: Services
) -> None:
    """An admin of workspace B who adds A's admin to B gets no reset link for them (the
    link would set their one password), cannot rename them, and disabling them in B leaves
    them working in A."""
    victim = services.people.create_user(email="victim@example.com", role="admin")
    victim_key = services.api_keys.create(
        name="v", role="admin", workspace_id=DEFAULT_WORKSPACE_ID, user_id=victim.id
    ).key
    services.people.create_user(email="mallory@example.com", role="admin")
    other = services.people.create_workspace("mallory-ws", "mallory@example.com")
    mallory = services.people.user_id_by_email("mallory@example.com", other.id)
    mallory_key = services.api_keys.create(
        name="m", role="admin", workspace_id=other.id, user_id=mallory
    ).key
    with _client(live, mallory_key) as m, _client(live, victim_key) as v:
        added = m.post(f"{API}/users", json={"email": "victim@example.com", "role": "viewer"})
        assert added.status_code == 201, added.text
        assert m.post(f"{API}/users/{victim.id}/reset-link").status_code == 403
        assert m.patch(f"{API}/users/{victim.id}", json={"name": "pwned"}).status_code == 403
        disabled = m.patch(f"{API}/users/{victim.id}", json={"disabled": True})
        assert disabled.status_code == 200 and disabled.json()["disabled"] is True
        # Still themselves, and still working, in their own workspace.
        me = v.get(f"{API}/me")
        assert me.status_code == 200 and me.json()["role"] == "admin"
        assert me.json()["user"]["name"] == ""
        # A member of this workspace alone gets a link.
        only = m.post(f"{API}/users", json={"email": "new@example.com", "role": "viewer"})
        link = m.post(f"{API}/users/{only.json()['id']}/reset-link")
        assert link.status_code == 201, link.text
        assert "/reset/" in link.json()["url"]


def test_a_member_disabled_in_a_workspace_stops_there_at_once(
    live: Live, services: Services
) -> None:
    services.people.create_user(email="boss2@example.com", role="admin")
    key = _member(services, "dev2@example.com", "developer")
    dev = services.people.user_id_by_email("dev2@example.com", DEFAULT_WORKSPACE_ID)
    with _client(live, key) as http:
        assert http.get(f"{API}/me").status_code == 200
        services.people.update_member(ADMIN, dev, disabled=True)
        assert http.get(f"{API}/me").status_code == 401
        services.people.update_member(ADMIN, dev, disabled=False)
        assert http.get(f"{API}/me").status_code == 200


def test_owners_disconnect_their_own_connection_after_the_profile_is_unshared(
    live: Live, services: Services, idp: IdP
) -> None:
    admin_key = _member(services, "admin3@example.com", "admin")
    dev_key = _member(services, "dev3@example.com", "developer")
    dev = services.people.user_id_by_email("dev3@example.com", DEFAULT_WORKSPACE_ID)
    profile, _ = oauth_profile(live, idp, "client-credentials")
    with _client(live, admin_key) as admin, _client(live, dev_key) as http:
        admin.put(f"{API}/profiles/{profile['id']}/access", json={"users": [dev]})
        mine = http.post(f"{API}/profiles/{profile['id']}/connections", json={"owner": dev})
        assert mine.status_code == 201, mine.text
        admin.put(f"{API}/profiles/{profile['id']}/access", json={"users": []})
        assert http.get(f"{API}/connections/{mine.json()['id']}/token").status_code == 403
        assert http.delete(f"{API}/connections/{mine.json()['id']}").status_code == 200
