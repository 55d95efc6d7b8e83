"""Secrets never leave in plain text: not in responses, not in logs, not in the database."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from authprofiles.composition import Services
from authprofiles.store.models import ProfileRow
from tests.conftest import ADMIN

PROFILES = "/api/v1/profiles"
CLIENT_SECRET = "cs-7f3a9c1e-client-secret"
PASSWORD = "pw-42b8d0e6-password"
PIN_VALUE = "pin-9d1c5a77-additional"
AUTH_FIELD_VALUE = "af-3e6b2f90-authorization"
SECRETS = (CLIENT_SECRET, PASSWORD, PIN_VALUE, AUTH_FIELD_VALUE)
NEW_SECRET = "cs-rotated-5b0e77d1-secret"
NEW_PIN = "pin-rotated-0c4f21aa-value"


def body(auth_type: str, name: str | None = None, /, **changes: Any) -> dict[str, Any]:
    """A complete profile of the type holding every kind of secret the type has."""
    data: dict[str, Any] = {
        "name": name or auth_type,
        "auth_type": auth_type,
        "identity_provider": "Okta",
        "client_id": "client-abc",
        "client_secret": CLIENT_SECRET,
        "token_url": "https://idp.example.com/oauth2/token",
        "additional_fields": [{"key": "pin", "value": PIN_VALUE}],
        "authorization_fields": [
            {"type": "header", "key": "X-Profile-Id", "value": AUTH_FIELD_VALUE}
        ],
    }
    if auth_type == "oauth2_authorization_code":
        data |= {"authorization_url": "https://idp.example.com/authorize", "tenancy": False}
    if auth_type == "oauth2_password":
        data |= {
            "authorization_mode": "preauthorized",
            "username": "service-user",
            "password": PASSWORD,
            "token_test_url": "https://api.example.com/me",
            "token_test_method": "GET",
            "token_test_content_type": "json",
        }
    return {**data, **changes}


ALL_SECRETS = (*SECRETS, NEW_SECRET, NEW_PIN)


def _flow(client: TestClient, headers: dict[str, str]) -> list[str]:
    """Create, read, list, update and fail: every response text the API gave."""
    seen: list[str] = []

    def keep(response: Any) -> Any:
        seen.append(response.text)
        seen.append(json.dumps(dict(response.headers)))
        return response

    ids = []
    for auth_type in ("oauth2_authorization_code", "oauth2_client_credentials", "oauth2_password"):
        response = keep(client.post(PROFILES, json=body(auth_type), headers=headers))
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    keep(client.get(PROFILES, headers=headers))
    for profile_id in ids:
        keep(client.get(f"{PROFILES}/{profile_id}", headers=headers))
    response = keep(
        client.patch(
            f"{PROFILES}/{ids[2]}",
            json={
                "client_secret": NEW_SECRET,
                "additional_fields": [{"key": "pin", "value": NEW_PIN}],
            },
            headers=headers,
        )
    )
    assert response.status_code == 200, response.text
    keep(client.patch(f"{PROFILES}/{ids[1]}", json={"description": "x"}, headers=headers))
    # Failures too: a rejected body holding secrets, a name clash, a wrong type.
    keep(client.post(PROFILES, json=body("oauth2_password"), headers=headers))
    keep(client.post(PROFILES, json=body("oauth2_password", "p2", foo=1), headers=headers))
    keep(
        client.post(
            PROFILES,
            json=body("oauth2_password", "p3", password=[PASSWORD], client_secret={"v": NEW_PIN}),
            headers=headers,
        )
    )
    keep(
        client.patch(
            f"{PROFILES}/{ids[0]}",
            json={"name": CLIENT_SECRET, "client_secret": CLIENT_SECRET + "x" * 300},
            headers=headers,
        )
    )
    return seen


def test_no_secret_is_in_any_response(client: TestClient, admin_headers: dict[str, str]) -> None:
    for response_text in _flow(client, admin_headers):
        for secret in ALL_SECRETS:
            assert secret not in response_text


def test_no_secret_is_in_any_log_line(
    client: TestClient,
    admin_headers: dict[str, str],
    services: Services,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # SQL echo too: the statements and their parameters are logged at INFO.
    sql_logger = logging.getLogger("sqlalchemy.engine")
    sql_level = sql_logger.level
    sql_logger.setLevel(logging.INFO)
    try:
        _flow(client, admin_headers)
        document = services.profiles.export(ADMIN, include_secrets=True)
        assert CLIENT_SECRET in json.dumps(document)  # the export itself does hold them
        services.profiles.export(ADMIN, include_secrets=False)
        services.profiles.import_documents(ADMIN, document)
    finally:
        sql_logger.setLevel(sql_level)

    assert any("sqlalchemy.engine" in r.name for r in caplog.records), "SQL was not logged"
    for record in caplog.records:
        line = record.getMessage() + (record.exc_text or "")
        for secret in ALL_SECRETS:
            assert secret not in line, f"{record.name}: {line[:200]}"


def _all_ciphertexts(services: Services) -> list[tuple[str, str]]:
    """Every (ciphertext, context) in the profiles table."""
    out = []
    with services.db.read() as session:
        for row in session.query(ProfileRow):
            config = json.loads(row.config)
            if row.client_secret_enc:
                out.append((row.client_secret_enc, f"profiles:{row.id}:client_secret"))
            if row.password_enc:
                out.append((row.password_enc, f"profiles:{row.id}:password"))
            for item in config["additional_fields"]:
                out.append((item["value_enc"], f"profiles:{row.id}:additional:{item['key']}"))
            for item in config["authorization_fields"]:
                if item["value_enc"]:
                    context = f"profiles:{row.id}:authorization:{item['type']}:{item['key']}"
                    out.append((item["value_enc"], context))
    return out


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_no_secret_is_in_plain_text_in_the_sqlite_file(
    client: TestClient, admin_headers: dict[str, str], services: Services, database_url: str
) -> None:
    _flow(client, admin_headers)
    path = Path(database_url.removeprefix("sqlite:///"))

    def files() -> dict[str, bytes]:
        found = {}
        for suffix in ("", "-wal", "-journal", "-shm"):
            candidate = Path(f"{path}{suffix}")
            if candidate.exists():
                found[candidate.name] = candidate.read_bytes()
        return found

    def assert_clean(contents: dict[str, bytes]) -> None:
        for name, raw in contents.items():
            for secret in ALL_SECRETS:
                for encoded in (secret.encode(), secret.encode("utf-16-le")):
                    assert encoded not in raw, f"{secret} in plain text in {name}"

    before = files()
    assert path.name in before
    assert_clean(before)  # the write-ahead log holds the recent writes

    with sqlite3.connect(path) as raw_connection:
        raw_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    after = files()
    # The grep can see what is there: non-secret values and ciphertexts are in the file.
    everything = b"".join(after.values())
    assert b"client-abc" in everything
    assert b"service-user" in everything
    ciphertexts = _all_ciphertexts(services)
    assert len(ciphertexts) >= 10
    assert all(token.encode() in everything for token, _ in ciphertexts)
    assert_clean(after)


def test_every_secret_is_stored_as_a_ciphertext_bound_to_its_place(services: Services) -> None:
    created = services.profiles.create(ADMIN, body("oauth2_password"))
    ciphertexts = _all_ciphertexts(services)
    assert len(ciphertexts) == 4  # client secret, password, one additional, one authorization
    plain = {services.keyring.decrypt(token, context) for token, context in ciphertexts}
    assert plain == {CLIENT_SECRET, PASSWORD, PIN_VALUE, AUTH_FIELD_VALUE}
    for token, _ in ciphertexts:
        assert token.startswith(f"v1.{services.keyring.active_id}.")
        for secret in SECRETS:
            assert secret not in token
    # A ciphertext copied into another profile's column does not decrypt there.
    other = services.profiles.create(ADMIN, body("oauth2_client_credentials"))
    with services.db.session() as session:
        source = session.get(ProfileRow, created.id)
        target = session.get(ProfileRow, other.id)
        assert source is not None and target is not None
        target.client_secret_enc = source.client_secret_enc
    with pytest.raises(Exception, match="failed authentication"):
        services.profiles.get(ADMIN, other.id)


def test_no_secret_is_in_plain_text_in_any_column(
    client: TestClient, admin_headers: dict[str, str], services: Services
) -> None:
    _flow(client, admin_headers)
    with services.db.read() as session:
        for table in ("profiles", "api_keys", "workspaces"):
            rows = session.execute(text(f"SELECT * FROM {table}")).all()
            assert rows or table != "profiles"
            dump = repr(rows)
            for secret in ALL_SECRETS:
                assert secret not in dump, f"{secret} in {table}"


def test_api_keys_are_stored_only_as_hashes(
    services: Services, admin_headers: dict[str, str]
) -> None:
    key = admin_headers["Authorization"].removeprefix("Bearer ")
    secret_part = key.split("_", 2)[2]
    with services.db.read() as session:
        dump = repr(session.execute(text("SELECT * FROM api_keys")).all())
    assert secret_part not in dump
