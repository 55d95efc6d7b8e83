"""The `authprofiles` CLI: api-keys create, profiles list/show/export/import."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from authprofiles.app import create_app
from authprofiles.cli.main import app as cli
from authprofiles.cli.main import main
from authprofiles.services.container import Services
from authprofiles.settings import Settings
from tests.conftest import ADMIN

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


@pytest.fixture
def runner(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str, master_key: str
) -> CliRunner:
    """Commands run against the test database; each builds its Settings from this env."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTHPROFILES_DATABASE_URL", database_url)
    monkeypatch.setenv("AUTHPROFILES_MASTER_KEY", master_key)
    monkeypatch.setenv("AUTHPROFILES_KEY_FILE", str(tmp_path / "must-not-be-created.key"))
    monkeypatch.setenv("COLUMNS", "200")
    return CliRunner()


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
