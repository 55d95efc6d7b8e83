"""The `authprofiles` CLI: serve, api-keys, profiles, connections; the store it finds."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from authprofiles import __version__
from authprofiles.app import create_app
from authprofiles.cli import common
from authprofiles.cli.main import app as cli
from authprofiles.cli.main import main
from authprofiles.composition import Services
from authprofiles.services.connections import ConnectionRequest
from authprofiles.settings import Settings
from authprofiles.store.db import Database
from tests.conftest import ADMIN
from tests.support.idp import IdP
from tests.support.live import ProcessServer

CLIENT_SECRET = "cli-client-secret-6a1f"
PASSWORD = "cli-password-93be"
PIN_VALUE = "cli-pin-value-2c7d"
AUTH_FIELD_VALUE = "cli-auth-field-5e08"
SECRETS = (CLIENT_SECRET, PASSWORD, PIN_VALUE, AUTH_FIELD_VALUE)


def _profiles() -> list[dict[str, Any]]:
    return [
        {
            "name": "billing",
            "auth_type": "oauth2_client_credentials",
            "identity_provider": "Okta",
            "description": "machine to machine",
            "client_id": "billing-client",
            "client_secret": CLIENT_SECRET,
            "token_url": "https://idp.example.com/oauth2/token",
            "scopes": ["billing.read"],
            # Values YAML would read as numbers, booleans or null unless quoted.
            "additional_fields": [
                {"key": "pin", "value": PIN_VALUE},
                {"key": "code", "value": "007"},
                {"key": "flag", "value": "yes"},
                {"key": "none", "value": "null"},
            ],
            "authorization_fields": [
                {"type": "header", "key": "X-Profile-Id", "value": AUTH_FIELD_VALUE},
                {"type": "query", "key": "account"},
            ],
        },
        {
            "name": "legacy",
            "auth_type": "oauth2_password",
            "identity_provider": "Legacy",
            "client_id": "legacy-client",
            "client_secret": CLIENT_SECRET,
            "token_url": "https://{tenant}.legacy.example.com/token",
            "tenancy": True,
            "authorization_mode": "preauthorized",
            "username": "svc",
            "password": PASSWORD,
            "token_test_url": "https://{tenant}.legacy.example.com/test/{{tokenId}}",
            "token_test_method": "PUT",
            "token_test_content_type": "xml",
            "form_fields": [{"title": "Token id", "key": "tokenId", "type": "password"}],
        },
        {
            "name": "asana",
            "auth_type": "oauth2_authorization_code",
            "identity_provider": "Asana",
            "client_id": "asana-client",
            "client_secret": CLIENT_SECRET,
            "authorization_url": "https://app.asana.com/-/oauth_authorize",
            "token_url": "https://app.asana.com/-/oauth_token",
            "tenancy": False,
            "auth_error_status_code": 403,
        },
    ]


def run(runner: CliRunner, *args: str, ok: bool = True) -> Result:
    result = runner.invoke(cli, list(args))
    if ok:
        assert result.exit_code == 0, result.output + repr(result.exception)
    return result


@pytest.fixture
def filled(services: Services) -> Services:
    for data in _profiles():
        services.profiles.create(ADMIN, data)
    return services


@contextmanager
def _with_services(url: str, master_key: str) -> Iterator[Services]:
    services = Services(Settings(database_url=url, master_key=master_key))
    services.db.migrate()
    try:
        yield services
    finally:
        services.close()


# == api-keys =====================================================================================


def test_api_keys_create_json_prints_a_key_once_that_works_against_the_api(
    runner: CliRunner, services: Services
) -> None:
    result = run(runner, "api-keys", "create", "--name", "ci-admin", "--role", "admin", "--json")
    created = json.loads(result.stdout)
    assert set(created) == {"id", "name", "role", "key"}
    assert (created["name"], created["role"]) == ("ci-admin", "admin")
    key = created["key"]
    assert key.startswith("ap_")

    app = create_app(services=services, migrate=False, background_refresh=False)
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {key}"}
        response = client.post("/api/v1/profiles", json=_profiles()[0], headers=headers)
        assert response.status_code == 201, response.text
        assert client.get("/api/v1/profiles", headers=headers).status_code == 200

    listed = run(runner, "api-keys", "list")
    assert "ci-admin" in listed.stdout
    assert key not in listed.stdout and key.split("_", 2)[2] not in listed.stdout


def test_api_keys_create_gives_each_role_its_rights(runner: CliRunner, services: Services) -> None:
    viewer = json.loads(
        run(runner, "api-keys", "create", "--name", "v", "--role", "viewer", "--json").stdout
    )["key"]
    app = create_app(services=services, migrate=False, background_refresh=False)
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {viewer}"}
        assert client.get("/api/v1/profiles", headers=headers).status_code == 200
        response = client.post("/api/v1/profiles", json=_profiles()[0], headers=headers)
        assert response.status_code == 403


def test_api_keys_create_without_json_prints_the_key_with_a_warning(runner: CliRunner) -> None:
    result = run(runner, "api-keys", "create", "--name", "me", "--role", "developer")
    assert "not shown again" in result.stdout
    assert any(line.startswith("ap_") for line in result.stdout.splitlines())


def test_api_keys_create_refuses_an_unknown_role(runner: CliRunner) -> None:
    result = run(runner, "api-keys", "create", "--name", "x", "--role", "root", ok=False)
    assert result.exit_code == 2
    assert "root" in result.stderr


# == profiles list / show =========================================================================


def test_profiles_list_shows_every_profile_and_its_status(
    runner: CliRunner, filled: Services
) -> None:
    filled.profiles.update(
        ADMIN, _id(filled, "asana"), {"client_secret": None}, allow_incomplete=True
    )
    listed = json.loads(run(runner, "profiles", "list", "--json").stdout)
    assert [(p["name"], p["auth_type"], p["status"]) for p in listed] == [
        ("asana", "oauth2_authorization_code", "not_configured"),
        ("billing", "oauth2_client_credentials", "configured"),
        ("legacy", "oauth2_password", "configured"),
    ]
    assert set(listed[0]) == {"id", "name", "auth_type", "identity_provider", "status"}

    table = run(runner, "profiles", "list").stdout
    for name in ("asana", "billing", "legacy", "not_configured", "configured"):
        assert name in table


def _id(services: Services, name: str) -> str:
    return next(p.id for p in services.profiles.list(ADMIN) if p.name == name)


def test_profiles_show_names_secrets_only_as_set(runner: CliRunner, filled: Services) -> None:
    shown = json.loads(run(runner, "profiles", "show", "billing", "--json").stdout)
    assert shown["client_secret_set"] is True
    assert shown["additional_fields"][0] == {"key": "pin", "value_set": True}
    assert shown["status"] == "configured"
    by_id = json.loads(run(runner, "profiles", "show", shown["id"], "--json").stdout)
    assert by_id == shown

    table = run(runner, "profiles", "show", "legacy").stdout
    assert "password_set" in table and "legacy-client" in table
    for output in (json.dumps(shown), table):
        for secret in SECRETS:
            assert secret not in output


def test_profiles_show_of_an_unknown_profile_says_so(
    runner: CliRunner, services: Services, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    code, _, err = _main(monkeypatch, capsys, "profiles", "show", "nope")
    assert code == 1
    assert "nope" in err


# == export / import ==============================================================================


def test_export_leaves_secrets_out_by_default_and_says_so_on_stderr(
    runner: CliRunner, filled: Services
) -> None:
    result = run(runner, "profiles", "export")
    document = yaml.safe_load(result.stdout)
    assert document["version"] == 1 and document["secrets_included"] is False
    assert [p["name"] for p in document["profiles"]] == ["asana", "billing", "legacy"]
    for secret in SECRETS:
        assert secret not in result.stdout
    billing = document["profiles"][1]
    assert "client_secret" not in billing
    assert billing["additional_fields"] == [
        {"key": "pin"},
        {"key": "code"},
        {"key": "flag"},
        {"key": "none"},
    ]
    assert billing["client_id"] == "billing-client"
    assert "without secrets" in result.stderr and "--include-secrets" in result.stderr
    assert "Secrets were left out" in result.stdout  # the file itself carries the note


def test_export_include_secrets_writes_them_to_a_private_file(
    runner: CliRunner, filled: Services, tmp_path: Path
) -> None:
    target = tmp_path / "with-secrets.yaml"
    result = run(runner, "profiles", "export", "--include-secrets", "-o", str(target))
    assert "with secrets" in result.stderr
    assert target.stat().st_mode & 0o777 == 0o600
    text = target.read_text()
    assert text.startswith("# authprofiles export. WARNING")
    document = yaml.safe_load(text)
    assert document["secrets_included"] is True
    billing = next(p for p in document["profiles"] if p["name"] == "billing")
    legacy = next(p for p in document["profiles"] if p["name"] == "legacy")
    assert billing["client_secret"] == CLIENT_SECRET
    assert billing["additional_fields"][0] == {"key": "pin", "value": PIN_VALUE}
    assert [f["value"] for f in billing["additional_fields"][1:]] == ["007", "yes", "null"]
    assert billing["authorization_fields"][0]["value"] == AUTH_FIELD_VALUE
    assert legacy["password"] == PASSWORD


def test_import_round_trips_into_a_fresh_database(
    runner: CliRunner,
    filled: Services,
    tmp_path: Path,
    master_key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    without = tmp_path / "without.yaml"
    with_secrets = tmp_path / "with.yaml"
    run(runner, "profiles", "export", "-o", str(without))
    run(runner, "profiles", "export", "--include-secrets", "-o", str(with_secrets))
    originals = {p.name: p.definition() for p in filled.profiles.list(ADMIN)}

    fresh_url = f"sqlite:///{tmp_path / 'fresh.db'}"
    monkeypatch.setenv("AUTHPROFILES_DATABASE_URL", fresh_url)

    # Without secrets: every profile comes back, not configured.
    result = run(runner, "profiles", "import", str(without))
    assert "created" in result.stdout
    listed = json.loads(run(runner, "profiles", "list", "--json").stdout)
    assert {p["name"]: p["status"] for p in listed} == {
        "asana": "not_configured",
        "billing": "not_configured",
        "legacy": "not_configured",
    }
    shown = json.loads(run(runner, "profiles", "show", "billing", "--json").stdout)
    assert shown["missing_fields"] == [
        "client_secret",
        *(f"additional_fields[{i}].value" for i in range(4)),
    ]
    assert shown["additional_fields"][0] == {"key": "pin", "value_set": False}
    assert shown["authorization_fields"][0] == {
        "type": "header",
        "key": "X-Profile-Id",
        "value_set": False,
    }

    # With secrets: the same profiles are updated and configured, secrets identical.
    result = run(runner, "profiles", "import", str(with_secrets))
    assert "updated" in result.stdout
    listed = json.loads(run(runner, "profiles", "list", "--json").stdout)
    assert {p["status"] for p in listed} == {"configured"}
    with _with_services(fresh_url, master_key) as services:
        imported = {p.name: p.definition() for p in services.profiles.list(ADMIN)}
    assert imported == originals


def test_import_reads_stdin(runner: CliRunner, filled: Services, tmp_path: Path) -> None:
    exported = run(runner, "profiles", "export", "--include-secrets").stdout
    result = runner.invoke(cli, ["profiles", "import", "-"], input=exported)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("updated") == 3


def _main(monkeypatch: pytest.MonkeyPatch, capsys: Any, *args: str) -> tuple[int, str, str]:
    """Run the console script's entry point (which prints domain errors) in-process."""
    monkeypatch.setattr(sys, "argv", ["authprofiles", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    out, err = capsys.readouterr()
    code = exc.value.code
    return (code if isinstance(code, int) else 1), out, err


def test_an_invalid_import_file_reports_every_problem_and_writes_nothing(
    runner: CliRunner,
    filled: Services,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    before = {p.name: p for p in filled.profiles.list(ADMIN)}
    bad = {
        "version": 1,
        "profiles": [
            {"name": "good-one", "auth_type": "oauth2_client_credentials", "client_id": "x"},
            {"name": "bad-url", "auth_type": "oauth2_client_credentials", "token_url": "ftp://x"},
            {"name": "bad-type", "auth_type": "oauth2_magic"},
            {"name": "billing", "auth_type": "oauth2_password"},
            {"name": "good-one", "auth_type": "oauth2_client_credentials"},
            {"auth_type": "oauth2_client_credentials", "colour": "red"},
            "not a mapping",
        ],
    }
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))

    code, _, err = _main(monkeypatch, capsys, "profiles", "import", str(path))
    assert code == 2
    for field in (
        "profiles[1].token_url",
        "profiles[2].auth_type",
        "profiles[3].auth_type",
        "profiles[4].name",
        "profiles[5].colour",
        "profiles[6]",
    ):
        assert field in err, f"{field} not reported in:\n{err}"

    after = {p.name: p for p in filled.profiles.list(ADMIN)}
    assert after == before  # "good-one" was not written either


def test_import_of_a_file_that_is_not_an_export_is_refused(
    runner: CliRunner, services: Services, tmp_path: Path
) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- just\n- a list\n")
    result = run(runner, "profiles", "import", str(path), ok=False)
    assert result.exit_code == 2
    assert "not an authprofiles export" in result.stderr
    assert services.profiles.list(ADMIN) == []


# == the store every command finds (issue 9, item 2) ==============================================


@pytest.fixture
def elsewhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty directory and no AUTHPROFILES_* setting: a newcomer's shell, somewhere."""
    for name in list(os.environ):
        if name.startswith("AUTHPROFILES_"):
            monkeypatch.delenv(name)
    directory = (tmp_path / "elsewhere").resolve()
    directory.mkdir()
    monkeypatch.chdir(directory)
    return directory


def _said(text: str) -> str:
    """Output with its line breaks and runs of spaces made single spaces."""
    return " ".join(text.split())


@pytest.mark.parametrize(
    "command",
    [
        ["api-keys", "create", "--name", "me", "--role", "admin", "--json"],
        ["api-keys", "list"],
        ["profiles", "list"],
        ["profiles", "create", "-"],
        ["profiles", "import", "-"],
        ["connections", "list"],
        ["keys", "rotate"],
    ],
    ids=lambda command: " ".join(command[:2]),
)
def test_a_command_run_where_there_is_no_database_refuses_and_creates_nothing(
    elsewhere: Path, command: list[str]
) -> None:
    result = CliRunner().invoke(cli, command, input='{"version": 1, "profiles": []}')
    assert result.exit_code == 1, result.output
    said = _said(result.stderr)
    for needed in ("AUTHPROFILES_DATABASE_URL", "--database", str(elsewhere), "authprofiles.db"):
        assert needed in said, said
    assert list(elsewhere.iterdir()) == []


def test_a_command_without_the_master_key_refuses_and_creates_no_key_file(
    elsewhere: Path,
) -> None:
    database = Database(f"sqlite:///{elsewhere / 'authprofiles.db'}")
    database.migrate()
    database.dispose()

    refused = CliRunner().invoke(cli, ["profiles", "list"])
    assert refused.exit_code == 1, refused.output
    said = _said(refused.stderr)
    for needed in ("AUTHPROFILES_MASTER_KEY", "AUTHPROFILES_KEY_FILE", str(elsewhere)):
        assert needed in said, said
    # API keys are hashes, not encrypted: they need the database only.
    made = CliRunner().invoke(cli, ["api-keys", "create", "--name", "me", "--role", "admin"])
    assert made.exit_code == 0, made.output
    assert not (elsewhere / "authprofiles.key").exists()
    assert list(elsewhere.glob("*.key")) == []


def test_serve_creates_its_store_on_first_start_says_where_and_the_cli_finds_it(
    elsewhere: Path,
) -> None:
    # Every interface: the callback URL is the loopback one, with a hint to set it.
    env = {"AUTHPROFILES_HOST": "0.0.0.0", "AUTHPROFILES_LOG_LEVEL": "warning"}
    server = ProcessServer(env, elsewhere, separate_stderr=True).start()
    try:
        database, key_file = elsewhere / "authprofiles.db", elsewhere / "authprofiles.key"
        assert key_file.stat().st_mode & 0o777 == 0o600
        said = _said(server.log.read_text())
        assert f"database {database} (created now)" in said, said
        assert f"master key {key_file} (created now" in said, said
        assert f"callback URL http://127.0.0.1:{server.port}/oauth/callback" in said, said
        assert "set AUTHPROFILES_PUBLIC_URL" in said, said

        # Run where the server runs, the CLI uses the same store: its key works there.
        created = CliRunner().invoke(
            cli, ["api-keys", "create", "--name", "ops", "--role", "admin", "--json"]
        )
        assert created.exit_code == 0, created.output
        key = json.loads(created.stdout)["key"]
        response = httpx.get(
            f"{server.url}/api/v1/profiles",
            headers={"Authorization": f"Bearer {key}"},
            trust_env=False,
        )
        assert response.status_code == 200, response.text
        listed = CliRunner().invoke(cli, ["profiles", "list", "--json"])
        assert listed.exit_code == 0, listed.output
        assert list(elsewhere.glob("*.db")) == [database]
        assert list(elsewhere.glob("*.key")) == [key_file]
    finally:
        server.stop()


# == the public URL follows host and port (issue 9, item 1) =======================================


def test_serve_on_another_port_hands_out_that_ports_callback_url_from_every_worker(
    elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = ProcessServer(
        {"AUTHPROFILES_LOG_LEVEL": "warning"}, elsewhere, workers=2, separate_stderr=True
    ).start()
    try:
        callback = f"http://127.0.0.1:{server.port}/oauth/callback"
        assert server.port != 8000
        assert f"callback URL {callback}" in _said(server.log.read_text())
        created = CliRunner().invoke(
            cli, ["api-keys", "create", "--name", "ops", "--role", "admin", "--json"]
        )
        key = json.loads(created.stdout)["key"]
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {key}"}, trust_env=False
        ) as http:
            profile = http.post("/api/v1/profiles", json=_profiles()[2])
            assert profile.status_code == 201, profile.text
            assert profile.json()["callback_url"] == callback
            started = http.post(
                f"/api/v1/profiles/{profile.json()['id']}/connections", json={"owner": "shared"}
            )
            assert started.status_code == 201, started.text
            query = parse_qs(urlsplit(started.json()["authorization_url"]).query)
            assert query["redirect_uri"] == [callback]
            # Each worker built its own settings from the environment `serve` left them.
            answers = {
                http.get(f"/api/v1/profiles/{profile.json()['id']}").json()["callback_url"]
                for _ in range(6)
            }
            assert answers == {callback}
    finally:
        server.stop()

    # The CLI shows the callback URL of the port its environment names.
    monkeypatch.setenv("AUTHPROFILES_PORT", str(server.port))
    shown = CliRunner().invoke(cli, ["profiles", "show", "asana", "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["callback_url"] == callback


# == whole ids, --json, --version, create, delete, connections (issue 9, item 11) =================


def test_version_prints_the_package_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"authprofiles {__version__}"


def _pending(services: Services, profile: str, owner: str) -> str:
    started = services.connections.create(
        ADMIN, _id(services, profile), ConnectionRequest(owner=owner)
    )
    return started.connection.id


@pytest.fixture
def narrow(monkeypatch: pytest.MonkeyPatch) -> None:
    """A terminal 40 columns wide."""
    monkeypatch.setattr(common.console, "width", 40)


def test_tables_show_every_id_whole_on_a_narrow_terminal(
    runner: CliRunner, filled: Services, narrow: None
) -> None:
    key_ids = [filled.api_keys.create(name=f"key-{i}", role="viewer").id for i in range(2)]
    connection_ids = [_pending(filled, "asana", owner) for owner in ("shared", "alice")]
    profile_ids = [p.id for p in filled.profiles.list(ADMIN)]

    for command, ids in (
        (["api-keys", "list"], key_ids),
        (["profiles", "list"], profile_ids),
        (["connections", "list"], connection_ids),
        (["profiles", "show", "billing"], [_id(filled, "billing")]),
        (["connections", "show", connection_ids[0]], connection_ids[:1]),
    ):
        output = run(runner, *command).stdout
        for full in ids:
            assert full in output, f"{command}: {full} not whole in\n{output}"
        assert "…" not in output, output


def test_every_list_command_takes_json(runner: CliRunner, filled: Services) -> None:
    key = filled.api_keys.create(name="ci", role="developer")
    keys = json.loads(run(runner, "api-keys", "list", "--json").stdout)
    assert keys == [
        {
            "id": key.id,
            "name": "ci",
            "role": "developer",
            "created_at": key.created_at.isoformat(),
            "revoked_at": None,
        }
    ]
    profiles = json.loads(run(runner, "profiles", "list", "--json").stdout)
    assert [p["name"] for p in profiles] == ["asana", "billing", "legacy"]
    shared = _pending(filled, "asana", "shared")
    connections = json.loads(run(runner, "connections", "list", "--json").stdout)
    assert [(c["id"], c["owner"], c["status"]) for c in connections] == [
        (shared, "shared", "pending")
    ]


def test_connections_list_filters_by_profile_owner_and_status(
    runner: CliRunner, filled: Services
) -> None:
    shared = _pending(filled, "asana", "shared")
    alice = _pending(filled, "asana", "alice")

    def ids(*options: str) -> list[str]:
        listed = json.loads(run(runner, "connections", "list", "--json", *options).stdout)
        return [c["id"] for c in listed]

    assert ids() == [shared, alice]
    assert ids("--profile", "asana") == [shared, alice]
    assert ids("--profile", _id(filled, "asana")) == [shared, alice]
    assert ids("--profile", "billing") == []
    assert ids("--owner", "alice") == [alice]
    assert ids("--status", "pending", "--owner", "shared") == [shared]
    assert ids("--status", "active") == []
    refused = run(runner, "connections", "list", "--status", "asleep", ok=False)
    assert refused.exit_code == 2


def test_connections_show_and_delete_a_connection(
    runner: CliRunner, filled: Services, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    connection = _pending(filled, "asana", "alice")
    shown = json.loads(run(runner, "connections", "show", connection, "--json").stdout)
    assert (shown["id"], shown["owner"], shown["status"]) == (connection, "alice", "pending")
    assert "asana" in run(runner, "connections", "show", connection).stdout

    deleted = json.loads(run(runner, "connections", "delete", connection, "--json").stdout)
    assert deleted == {"deleted": True, "id": connection, "revoked": [], "revocation_errors": []}
    assert filled.connections.list(ADMIN) == []
    code, _, err = _main(monkeypatch, capsys, "connections", "show", connection)
    assert code == 1 and connection in err


def test_profiles_create_reads_yaml_from_a_file_and_json_from_stdin(
    runner: CliRunner, services: Services, tmp_path: Path
) -> None:
    billing, asana = _profiles()[0], _profiles()[2]
    path = tmp_path / "billing.yaml"
    path.write_text(yaml.safe_dump(billing))
    made = run(runner, "profiles", "create", str(path)).stdout
    assert "Created profile billing" in made and _id(services, "billing") in made
    for secret in SECRETS:
        assert secret not in made

    created = json.loads(
        runner.invoke(cli, ["profiles", "create", "-", "--json"], input=json.dumps(asana)).stdout
    )
    assert created["name"] == "asana" and created["status"] == "configured"
    assert created["id"] == _id(services, "asana")
    stored = {p.name: p.definition() for p in services.profiles.list(ADMIN)}
    assert stored["billing"].client_secret == CLIENT_SECRET

    incomplete = {"name": "later", "auth_type": "oauth2_client_credentials"}
    result = runner.invoke(
        cli,
        ["profiles", "create", "-", "--allow-incomplete", "--json"],
        input=yaml.dump(incomplete),
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "not_configured"


def test_profiles_create_reports_every_problem_at_once_and_stores_nothing(
    runner: CliRunner,
    filled: Services,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    before = filled.profiles.list(ADMIN)
    path = tmp_path / "bad.json"
    path.write_text(
        json.dumps(
            {
                "name": "broken",
                "auth_type": "oauth2_client_credentials",
                "token_url": "ftp://idp.example.com/token",
                "colour": "red",
                "scopes": ["has space"],
            }
        )
    )
    code, _, err = _main(monkeypatch, capsys, "profiles", "create", str(path))
    assert code == 2
    for field in ("token_url", "colour", "scopes", "identity_provider"):
        assert field in err, f"{field} not reported in:\n{err}"

    duplicate = tmp_path / "duplicate.yaml"
    duplicate.write_text(yaml.safe_dump(_profiles()[0]))
    code, _, err = _main(monkeypatch, capsys, "profiles", "create", str(duplicate))
    assert code != 0 and "billing" in err and "already exists" in err

    not_one = tmp_path / "list.yaml"
    not_one.write_text("- a\n- b\n")
    code, _, err = _main(monkeypatch, capsys, "profiles", "create", str(not_one))
    assert code == 2 and "one profile" in err
    assert filled.profiles.list(ADMIN) == before


def _revocable_profile(services: Services, idp: IdP) -> Any:
    """A client credentials profile named ``machine`` whose IdP revokes tokens."""
    client = idp.register_client("client-credentials")
    return services.profiles.create(
        ADMIN,
        {
            "name": "machine",
            "auth_type": "oauth2_client_credentials",
            "identity_provider": "Test IdP",
            "client_id": client.client_id,
            "client_secret": client.client_secret,
            "token_url": idp.token_url,
            "revocation_url": idp.revocation_url,
        },
    )


def test_profiles_delete_revokes_the_tokens_at_the_idp_and_says_so(
    runner: CliRunner, services: Services, idp: IdP
) -> None:
    profile = _revocable_profile(services, idp)
    tokens = [
        services.connections.create(
            ADMIN, profile.id, ConnectionRequest(owner=owner)
        ).connection.tokens
        for owner in ("shared", "alice")
    ]
    access = [t.access_token for t in tokens if t is not None]
    assert len(access) == 2 and all(idp.is_active(token) for token in access)

    result = run(runner, "profiles", "delete", "machine")
    said = _said(result.stdout)
    assert f"Deleted profile machine ({profile.id}) and 2 connection(s)." in said
    assert "Revoked at the identity provider: access_token, access_token." in said
    assert not any(idp.is_active(token) for token in access)
    assert services.profiles.list(ADMIN) == []
    for token in access:
        assert token not in result.output


def test_connections_delete_revokes_its_tokens_at_the_idp(
    runner: CliRunner, services: Services, idp: IdP
) -> None:
    profile = _revocable_profile(services, idp)
    connection = services.connections.create(
        ADMIN, profile.id, ConnectionRequest(owner="shared")
    ).connection
    assert connection.tokens is not None and idp.is_active(connection.tokens.access_token)

    report = json.loads(run(runner, "connections", "delete", connection.id, "--json").stdout)
    assert report == {
        "deleted": True,
        "id": connection.id,
        "revoked": ["access_token"],
        "revocation_errors": [],
    }
    assert not idp.is_active(connection.tokens.access_token)
    assert [p.name for p in services.profiles.list(ADMIN)] == ["machine"]
