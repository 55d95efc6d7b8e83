"""Profiles that authenticate with private_key_jwt or as public clients, through the API:
the private key is write-only, encrypted at rest bound to its place, left out of exports
without secrets, and a secret the method does not send is refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlalchemy import text

from authprofiles.composition import Services
from authprofiles.services.keys import rotate_master_key
from authprofiles.settings import Settings
from authprofiles.store.cipher import KeyError_, Keyring, decode_key, key_id
from authprofiles.store.models import ProfileRow
from tests.conftest import ADMIN

PROFILES = "/api/v1/profiles"


def new_pem() -> str:
    return (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


#: The base64 body of a PEM: what would show if the key leaked anywhere.
def key_body(pem: str) -> str:
    return "".join(pem.strip().splitlines()[1:-1])


@pytest.fixture
def private_key() -> str:
    return new_pem()


def jwt_profile(private_key: str, **changes: Any) -> dict[str, Any]:
    return {
        "name": "jwt-client",
        "auth_type": "oauth2_client_credentials",
        "identity_provider": "Okta",
        "client_id": "client-jwt",
        "token_url": "https://idp.example.com/oauth2/token",
        "client_auth_method": "private_key_jwt",
        "private_key": private_key,
        "private_key_id": "key-2025",
        "issuer": "https://idp.example.com",
        "device_authorization_url": "https://idp.example.com/oauth2/device",
        **changes,
    }


def test_the_private_key_is_write_only(
    client: TestClient, admin_headers: dict[str, str], private_key: str
) -> None:
    seen: list[str] = []
    created = client.post(PROFILES, json=jwt_profile(private_key), headers=admin_headers)
    assert created.status_code == 201, created.text
    seen.append(created.text)
    profile = created.json()
    assert profile["private_key_set"] is True
    assert profile["client_secret_set"] is False
    assert "private_key" not in profile
    assert profile["private_key_id"] == "key-2025"
    assert profile["client_assertion_audience"] is None
    assert profile["issuer"] == "https://idp.example.com"
    assert profile["device_authorization_url"] == "https://idp.example.com/oauth2/device"
    assert profile["status"] == "configured"
    assert profile["missing_fields"] == []

    url = f"{PROFILES}/{profile['id']}"
    read = client.get(url, headers=admin_headers)
    seen += [read.text, client.get(PROFILES, headers=admin_headers).text]
    assert read.json()["private_key_set"] is True

    # A change that leaves the key out keeps it.
    changed = client.patch(
        url, json={"client_assertion_audience": "https://idp.example.com"}, headers=admin_headers
    )
    assert changed.status_code == 200, changed.text
    seen.append(changed.text)
    assert changed.json()["private_key_set"] is True
    assert changed.json()["client_assertion_audience"] == "https://idp.example.com"

    # A key that cannot be read is refused without being quoted.
    broken = private_key.replace("M", "#", 2)
    refused = client.patch(url, json={"private_key": broken}, headers=admin_headers)
    assert refused.status_code == 422
    assert [e["field"] for e in refused.json()["errors"]] == ["private_key"]
    seen.append(refused.text)
    for response_text in seen:
        assert key_body(private_key) not in response_text
        assert key_body(private_key)[:40] not in response_text


def test_switching_methods_asks_to_clear_the_credential_no_longer_sent(
    client: TestClient, admin_headers: dict[str, str], private_key: str
) -> None:
    created = client.post(PROFILES, json=jwt_profile(private_key), headers=admin_headers)
    url = f"{PROFILES}/{created.json()['id']}"

    # Back to a secret: the stored key is named until it is cleared in the same change.
    kept_key = client.patch(
        url,
        json={"client_auth_method": "client_secret_basic", "client_secret": "s3cret"},
        headers=admin_headers,
    )
    assert kept_key.status_code == 422
    assert [e["field"] for e in kept_key.json()["errors"]] == ["private_key"]
    switched = client.patch(
        url,
        json={
            "client_auth_method": "client_secret_basic",
            "client_secret": "s3cret",
            "private_key": None,
        },
        headers=admin_headers,
    )
    assert switched.status_code == 200, switched.text
    assert switched.json()["private_key_set"] is False
    assert switched.json()["client_secret_set"] is True

    # To a public client: no secret is kept for it.
    public = client.patch(url, json={"client_auth_method": "none"}, headers=admin_headers)
    assert public.status_code == 422
    assert [e["field"] for e in public.json()["errors"]] == ["client_secret"]
    public = client.patch(
        url, json={"client_auth_method": "none", "client_secret": None}, headers=admin_headers
    )
    assert public.status_code == 200, public.text
    assert public.json()["client_secret_set"] is False
    assert public.json()["status"] == "configured"


def test_private_key_jwt_without_its_key_is_named(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    data = {k: v for k, v in jwt_profile("").items() if k != "private_key"}
    refused = client.post(PROFILES, json=data, headers=admin_headers)
    assert refused.status_code == 422
    assert [e["field"] for e in refused.json()["errors"]] == ["private_key"]
    kept = client.post(
        PROFILES, params={"allow_incomplete": "true"}, json=data, headers=admin_headers
    )
    assert kept.status_code == 201, kept.text
    assert kept.json()["missing_fields"] == ["private_key"]
    assert kept.json()["status"] == "not_configured"


def test_the_private_key_is_stored_as_a_ciphertext_bound_to_its_place(
    services: Services, private_key: str
) -> None:
    created = services.profiles.create(ADMIN, jwt_profile(private_key))
    with services.db.read() as session:
        row = session.get(ProfileRow, created.id)
        assert row is not None and row.private_key_enc is not None
        ciphertext = row.private_key_enc
        assert ciphertext.startswith(f"v1.{services.keyring.active_id}.")
        assert services.keyring.decrypt(ciphertext, f"profiles:{created.id}:private_key") == (
            private_key.strip()
        )
        assert key_body(private_key) not in row.config
        dump = repr(session.execute(text("SELECT * FROM profiles")).all())
        assert key_body(private_key) not in dump
    assert services.profiles.get(ADMIN, created.id).private_key == private_key.strip()

    # Copied into another profile's column, it does not decrypt there.
    other = services.profiles.create(ADMIN, jwt_profile(new_pem(), name="other"))
    with services.db.session() as session:
        target = session.get(ProfileRow, other.id)
        assert target is not None
        target.private_key_enc = ciphertext
    with pytest.raises(Exception, match="failed authentication"):
        services.profiles.get(ADMIN, other.id)


def test_an_export_without_secrets_leaves_the_key_out_and_one_with_them_restores_it(
    services: Services, private_key: str
) -> None:
    services.profiles.create(ADMIN, jwt_profile(private_key))
    without = services.profiles.export(ADMIN, include_secrets=False)
    assert key_body(private_key) not in json.dumps(without)
    (document,) = without["profiles"]
    assert "private_key" not in document
    assert document["private_key_id"] == "key-2025"

    with_secrets = services.profiles.export(ADMIN, include_secrets=True)
    assert with_secrets["profiles"][0]["private_key"] == private_key.strip()
    # Imported again over itself: the key is kept as it was.
    services.profiles.import_documents(ADMIN, without)
    (again,) = services.profiles.list(ADMIN)
    assert again.private_key == private_key.strip()


def test_a_public_client_profile_needs_no_secret(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    data = {
        "name": "public-app",
        "auth_type": "oauth2_authorization_code",
        "identity_provider": "Okta",
        "client_id": "spa-client",
        "authorization_url": "https://idp.example.com/authorize",
        "token_url": "https://idp.example.com/token",
        "tenancy": False,
        "client_auth_method": "none",
    }
    created = client.post(PROFILES, json=data, headers=admin_headers)
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "configured"
    assert created.json()["client_secret_set"] is False
    with_secret = client.post(
        PROFILES, json={**data, "name": "public-2", "client_secret": "x"}, headers=admin_headers
    )
    assert with_secret.status_code == 422
    assert [e["field"] for e in with_secret.json()["errors"]] == ["client_secret"]


@pytest.fixture
def key_file_settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url, master_key=None, key_file=tmp_path / "authprofiles.key"
    )


@pytest.fixture
def key_file_services(key_file_settings: Settings) -> Iterator[Services]:
    services = Services(key_file_settings)  # creates the key file on first use
    services.db.migrate()
    yield services
    services.close()


def test_keys_rotate_reencrypts_the_private_key(
    key_file_settings: Settings, key_file_services: Services, private_key: str
) -> None:
    created = key_file_services.profiles.create(ADMIN, jwt_profile(private_key))
    old = [decode_key(k) for k in json.loads(key_file_settings.key_file.read_text())["keys"]]

    result = rotate_master_key(key_file_settings, db=key_file_services.db)

    context = f"profiles:{created.id}:private_key"
    with key_file_services.db.read() as session:
        row = session.get(ProfileRow, created.id)
        assert row is not None and row.private_key_enc is not None
        assert Keyring.key_id_of(row.private_key_enc) == result.new_key_id
        with pytest.raises(KeyError_):
            Keyring(old).decrypt(row.private_key_enc, context)
    assert result.new_key_id != key_id(old[0])
    fresh = Services(key_file_settings)
    try:
        assert fresh.profiles.get(ADMIN, created.id).private_key == private_key.strip()
    finally:
        fresh.close()
