"""A row whose secrets this server cannot decrypt is that row's problem, never the list's.

Such a row (written under a master key the server does not hold, or damaged) is listed
with status ``failing`` and a reason naming the key it needs; using it alone answers 503
``Secrets unreadable`` naming that key, never a 500 and never the secret.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from authprofiles.cli.main import app as cli
from authprofiles.composition import Services
from authprofiles.core.connections import TokenSet
from authprofiles.store.cipher import Keyring, new_key
from authprofiles.store.connections import ConnectionStore
from authprofiles.store.models import ConnectionRow, ProfileRow
from authprofiles.store.profiles import ProfileStore
from tests.support.seed import add_connection, add_profile, client_credentials_profile

FOREIGN_SECRET = "foreign-secret-7d2c1e"
FOREIGN_FIELD = "foreign-field-90ab33"
FOREIGN_TOKEN = "foreign-access-token-51f0"


def _data(name: str, secret: str, field_value: str) -> dict[str, Any]:
    return client_credentials_profile(
        name,
        secret,
        authorization_fields=[{"type": "header", "key": "X-Key", "value": field_value}],
    )


def _tokens(access: str) -> TokenSet:
    return TokenSet(
        access_token=access,
        token_type="Bearer",
        expires_at=datetime.now(UTC) + timedelta(hours=1),
    )


def _connect(store: ConnectionStore, session: Any, profile_id: str, access: str) -> str:
    return add_connection(store, session, profile_id, _tokens(access)).id


@pytest.fixture
def rows(services: Services) -> dict[str, str]:
    """Good profiles with connections, one profile and one connection under a key this
    server never had, and a good profile whose connection is under that key."""
    foreign = Keyring([new_key()])
    ids: dict[str, str] = {"foreign_key": foreign.active_id}
    with services.db.session() as session:
        for name in ("alpha", "omega"):
            profile = add_profile(services.profile_store, session, _data(name, "s", "f"))
            ids[name] = profile.id
            ids[f"{name}_connection"] = _connect(
                services.connection_store, session, profile.id, f"at-{name}"
            )
        bad = add_profile(
            ProfileStore(foreign), session, _data("middle", FOREIGN_SECRET, FOREIGN_FIELD)
        )
        ids["bad"] = bad.id
        ids["bad_connection"] = _connect(ConnectionStore(foreign), session, ids["alpha"], "x")
        ids["connection_of_bad"] = _connect(
            services.connection_store, session, bad.id, FOREIGN_TOKEN
        )
    return ids


def _no_secret_in(text: str) -> None:
    for secret in (FOREIGN_SECRET, FOREIGN_FIELD, FOREIGN_TOKEN):
        assert secret not in text


def test_the_list_shows_a_profile_it_cannot_decrypt_as_failing_and_every_other_one(
    client: TestClient, admin_headers: dict[str, str], rows: dict[str, str]
) -> None:
    response = client.get("/api/v1/profiles", params={"limit": 1000}, headers=admin_headers)
    assert response.status_code == 200, response.text
    body = response.json()
    items = body if isinstance(body, list) else body["items"]
    status = {item["name"]: item["status"] for item in items}
    assert status == {"alpha": "configured", "middle": "failing", "omega": "configured"}
    _no_secret_in(response.text)


def test_reading_or_using_an_undecryptable_row_answers_503_naming_the_key(
    client: TestClient, admin_headers: dict[str, str], rows: dict[str, str], services: Services
) -> None:
    foreign = rows["foreign_key"]
    with services.db.read() as session:
        stored = session.get(ProfileRow, rows["bad"])
        assert stored is not None
        ciphertext = stored.client_secret_enc
    attempts = {
        "read the profile": client.get(f"/api/v1/profiles/{rows['bad']}", headers=admin_headers),
        "change the profile": client.patch(
            f"/api/v1/profiles/{rows['bad']}",
            json={"description": "changed"},
            headers=admin_headers,
        ),
        "connect with the profile": client.post(
            f"/api/v1/profiles/{rows['bad']}/connections", json={}, headers=admin_headers
        ),
        "a token of its connection": client.get(
            f"/api/v1/connections/{rows['connection_of_bad']}/token", headers=admin_headers
        ),
        "a token of a connection under the key": client.get(
            f"/api/v1/connections/{rows['bad_connection']}/token", headers=admin_headers
        ),
        "read that connection": client.get(
            f"/api/v1/connections/{rows['bad_connection']}", headers=admin_headers
        ),
    }
    for what, response in attempts.items():
        assert response.status_code == 503, (what, response.status_code, response.text)
        assert response.headers["content-type"].startswith("application/problem+json"), what
        assert response.json()["title"] == "Secrets unreadable", what
        assert foreign in response.json()["detail"], what
        _no_secret_in(response.text)
    # Nothing was written over the row that could not be read.
    with services.db.read() as session:
        after = session.get(ProfileRow, rows["bad"])
        assert after is not None and after.client_secret_enc == ciphertext
        connection = session.get(ConnectionRow, rows["bad_connection"])
        assert connection is not None and connection.status == "active"
    # Everything else still works.
    for name in ("alpha", "omega"):
        assert client.get(f"/api/v1/profiles/{rows[name]}", headers=admin_headers).is_success
        connection_id = rows[f"{name}_connection"]
        token = client.get(f"/api/v1/connections/{connection_id}/token", headers=admin_headers)
        assert token.status_code == 200 and token.json()["access_token"] == f"at-{name}"


def test_the_cli_lists_and_exports_every_profile_and_names_the_one_it_cannot_read(
    rows: dict[str, str],
    services: Services,
    database_url: str,
    master_key: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTHPROFILES_DATABASE_URL", database_url)
    monkeypatch.setenv("AUTHPROFILES_MASTER_KEY", master_key)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    foreign = rows["foreign_key"]

    listed = runner.invoke(cli, ["profiles", "list", "--json"])
    assert listed.exit_code == 0, listed.output + repr(listed.exception)
    assert {p["name"]: p["status"] for p in yaml.safe_load(listed.stdout)} == {
        "alpha": "configured",
        "middle": "failing",
        "omega": "configured",
    }

    shown = runner.invoke(cli, ["profiles", "show", "middle", "--json"])
    assert shown.exit_code == 0, shown.output + repr(shown.exception)
    assert foreign in yaml.safe_load(shown.stdout)["failing_reason"]

    exported = runner.invoke(cli, ["profiles", "export"])
    assert exported.exit_code == 0, exported.output + repr(exported.exception)
    document = yaml.safe_load(exported.stdout)
    assert [p["name"] for p in document["profiles"]] == ["alpha", "middle", "omega"]
    assert "Exported without its secrets" in exported.stderr and foreign in exported.stderr

    # A backup meant to hold every secret says it does not, in its exit code too, and
    # still holds everything it could read.
    target = tmp_path / "backup.yaml"
    backup = runner.invoke(cli, ["profiles", "export", "--include-secrets", "-o", str(target)])
    assert backup.exit_code == 1, backup.output + repr(backup.exception)
    assert "middle" in backup.stderr and foreign in backup.stderr
    saved = {p["name"]: p for p in yaml.safe_load(target.read_text())["profiles"]}
    assert saved["alpha"]["client_secret"] == "s"
    assert "client_secret" not in saved["middle"]
    for output in (listed.output, shown.output, exported.output, backup.output):
        _no_secret_in(output)
    _no_secret_in(target.read_text())


def test_a_profile_it_cannot_decrypt_can_still_be_deleted_and_says_nothing_was_revoked(
    client: TestClient, admin_headers: dict[str, str], rows: dict[str, str], services: Services
) -> None:
    response = client.delete(f"/api/v1/profiles/{rows['bad']}", headers=admin_headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["deleted"] is True and body["revoked"] == []
    assert any(rows["foreign_key"] in error for error in body["revocation_errors"])
    _no_secret_in(response.text)
    with services.db.read() as session:
        assert session.get(ProfileRow, rows["bad"]) is None
        assert session.get(ConnectionRow, rows["connection_of_bad"]) is None
