"""The profiles REST API: the three types, every seed rule as a 422, status, roles, delete."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from authprofiles.api.schemas import ProfilePublic
from authprofiles.app import create_app
from authprofiles.composition import Services
from authprofiles.core.profiles import AuthorizationMode, AuthType
from authprofiles.core.validation import MANDATORY_FIELDS, required_fields
from authprofiles.settings import Settings
from authprofiles.store.cipher import encode_key, new_key
from authprofiles.store.models import WorkspaceRow
from authprofiles.store.profiles import ProfileStore
from tests.conftest import ADMIN

PROFILES = "/api/v1/profiles"
PROBLEM_JSON = "application/problem+json"

CLIENT_SECRET = "cs-7f3a9c1e-client-secret"
PASSWORD = "pw-42b8d0e6-password"
PIN_VALUE = "pin-9d1c5a77-additional"
AUTH_FIELD_VALUE = "af-3e6b2f90-authorization"
SECRETS = (CLIENT_SECRET, PASSWORD, PIN_VALUE, AUTH_FIELD_VALUE)


def body(auth_type: str, name: str | None = None, /, **changes: Any) -> dict[str, Any]:
    """A complete, valid profile of the type, with every kind of secret set."""
    common: dict[str, Any] = {
        "name": name or auth_type.replace("oauth2_", ""),
        "identity_provider": "Okta",
        "description": "a profile for the tests",
        "client_id": "client-abc",
        "client_secret": CLIENT_SECRET,
        "token_url": "https://idp.example.com/oauth2/token",
        "refresh_token_url": "https://idp.example.com/oauth2/refresh",
        "revocation_url": "https://idp.example.com/oauth2/revoke",
        "api_base_url": "https://api.example.com/v1",
        "scopes": ["billing.read", "billing.write"],
        "client_auth_method": "client_secret_post",
        "additional_fields": [{"key": "pin", "value": PIN_VALUE}],
        "authorization_fields": [
            {"type": "header", "key": "X-Profile-Id", "value": AUTH_FIELD_VALUE},
            {"type": "query", "key": "account"},
        ],
        "form_fields": [{"title": "Account", "key": "account_no", "hint": "your number"}],
        "auth_error_status_code": 403,
    }
    if auth_type == "oauth2_authorization_code":
        common |= {
            "authorization_url": "https://{tenant}.idp.example.com/authorize?acct={{account_no}}",
            "tenancy": True,
            "pkce": True,
        }
    if auth_type == "oauth2_password":
        common |= {
            "authorization_mode": "preauthorized",
            "username": "service-user",
            "password": PASSWORD,
            "token_test_url": "https://api.example.com/me/{{account_no}}",
            "token_test_method": "POST",
            "token_test_content_type": "json",
        }
    return {"auth_type": auth_type, **common, **changes}


def minimal(auth_type: str, name: str | None = None) -> dict[str, Any]:
    """Only the mandatory fields of the type (seed 000, seed 003)."""
    full = body(
        auth_type,
        name,
        authorization_url="https://idp.example.com/authorize",
        device_authorization_url="https://idp.example.com/device",
        token_test_url="https://api.example.com/me",
    )
    mode = full.get("authorization_mode")
    needed = required_fields(
        AuthType(auth_type), lambda _field: False, AuthorizationMode(mode) if mode else None
    )
    keep = {"name", "auth_type", *needed}
    return {k: v for k, v in full.items() if k in keep}


def assert_problem(response: Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["title"] and problem["detail"]
    return problem


def assert_invalid(response: Response, *fields: str) -> list[str]:
    """A 422 problem whose `errors` list names each of ``fields``."""
    problem = assert_problem(response, 422)
    named = [error["field"] for error in problem["errors"]]
    assert all(error["message"] for error in problem["errors"])
    for field in fields:
        assert field in named, f"{field} not named in {named}"
    return named


def assert_conflict(response: Response, *fields: str) -> list[str]:
    """A 409 problem whose `errors` list names each of ``fields``."""
    problem = assert_problem(response, 409)
    named = [error["field"] for error in problem["errors"]]
    assert all(error["message"] for error in problem["errors"])
    for field in fields:
        assert field in named, f"{field} not named in {named}"
        assert field in problem["detail"]
    return named


def create(
    client: TestClient, headers: dict[str, str], data: dict[str, Any], **params: Any
) -> dict[str, Any]:
    response = client.post(PROFILES, json=data, headers=headers, params=params)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def stored(services: Services, profile_id: str) -> Any:
    """The profile as the store holds it, secrets decrypted."""
    return services.profiles.get(ADMIN, profile_id)


# == the three types ==============================================================================


@pytest.mark.parametrize(
    "auth_type", ["oauth2_authorization_code", "oauth2_client_credentials", "oauth2_password"]
)
def test_each_type_is_created_with_every_field_and_secrets_only_as_set_flags(
    client: TestClient, admin_headers: dict[str, str], auth_type: str
) -> None:
    sent = body(auth_type)
    response = client.post(PROFILES, json=sent, headers=admin_headers)
    assert response.status_code == 201, response.text
    created = response.json()

    assert set(created) == set(ProfilePublic.model_fields)
    for secret in SECRETS:
        assert secret not in response.text
    assert "client_secret" not in created and "password" not in created
    assert created["client_secret_set"] is True
    assert created["password_set"] is (auth_type == "oauth2_password")
    assert created["additional_fields"] == [{"key": "pin", "value_set": True}]
    assert created["authorization_fields"] == [
        {"type": "header", "key": "X-Profile-Id", "value_set": True},
        {"type": "query", "key": "account", "value_set": False},
    ]
    assert created["status"] == "configured"
    assert created["missing_fields"] == []
    assert created["callback_url"] == "http://127.0.0.1:8000/oauth/callback"
    for field, value in sent.items():
        if field in ("client_secret", "password", "additional_fields", "authorization_fields"):
            continue
        if field == "form_fields":
            assert created[field][0] | value[0] == created[field][0]
            continue
        assert created[field] == value, field

    again = client.get(f"{PROFILES}/{created['id']}", headers=admin_headers)
    assert again.status_code == 200
    assert again.json() == created


@pytest.mark.parametrize(
    "auth_type", ["oauth2_authorization_code", "oauth2_client_credentials", "oauth2_password"]
)
def test_each_type_is_configured_with_only_its_mandatory_fields(
    rules_api: tuple[TestClient, dict[str, str]], auth_type: str
) -> None:
    client, headers = rules_api
    created = create(client, headers, minimal(auth_type, f"minimal-{auth_type}"))
    assert created["status"] == "configured"
    assert created["scopes"] == [] and created["additional_fields"] == []


def test_the_list_shows_id_name_type_identity_provider_and_status(
    client: TestClient, admin_headers: dict[str, str], viewer_headers: dict[str, str]
) -> None:
    a = create(client, admin_headers, body("oauth2_client_credentials", "billing"))
    b = create(
        client,
        admin_headers,
        {**minimal("oauth2_authorization_code", "asana"), "client_secret": None},
        allow_incomplete=True,
    )
    response = client.get(PROFILES, headers=viewer_headers)
    assert response.status_code == 200
    items = response.json()
    assert items == [
        {
            "id": b["id"],
            "name": "asana",
            "auth_type": "oauth2_authorization_code",
            "identity_provider": "Okta",
            "status": "not_configured",
        },
        {
            "id": a["id"],
            "name": "billing",
            "auth_type": "oauth2_client_credentials",
            "identity_provider": "Okta",
            "status": "configured",
        },
    ]
    assert CLIENT_SECRET not in response.text


# == every seed rule, broken through the API ======================================================


@pytest.fixture(scope="module")
def rules_api(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """One SQLite-backed app for the rule table: validation does not depend on the database."""
    tmp = tmp_path_factory.mktemp("rules")
    settings = Settings(
        database_url=f"sqlite:///{tmp / 'rules.db'}",
        master_key=encode_key(new_key()),
        key_file=tmp / "unused.key",
    )
    services = Services(settings)
    services.db.migrate()
    headers = {"Authorization": f"Bearer {services.api_keys.create(name='r', role='admin').key}"}
    app = create_app(services=services, migrate=False, background_refresh=False)
    with TestClient(app) as client:
        yield client, headers
    services.close()


def _drop(auth_type: str, field: str) -> dict[str, Any]:
    return {k: v for k, v in minimal(auth_type).items() if k != field}


MANDATORY_CASES = [
    pytest.param(_drop(t.value, f), f, id=f"{t.value} without {f}")
    for t, fields in MANDATORY_FIELDS.items()
    for f in fields
]
URL_FIELDS = (
    "authorization_url",
    "token_url",
    "refresh_token_url",
    "revocation_url",
    "api_base_url",
    "egress_proxy_url",
    "token_test_url",
)
CC = "oauth2_client_credentials"
AC = "oauth2_authorization_code"
LONG_URL = "https://idp.example.com/" + "a" * 2977  # 3001 characters

RULE_CASES = [
    *MANDATORY_CASES,
    pytest.param(body(CC, client_id="i" * 256), "client_id", id="client_id of 256 characters"),
    pytest.param(
        body(CC, client_secret="s" * 256), "client_secret", id="client_secret of 256 characters"
    ),
    *[
        pytest.param(body(AC, **{f: "ftp://idp.example.com/x"}), f, id=f"{f} not http(s)")
        for f in URL_FIELDS
    ],
    *[pytest.param(body(AC, **{f: "not a url"}), f, id=f"{f} not a URL") for f in URL_FIELDS],
    *[pytest.param(body(AC, **{f: LONG_URL}), f, id=f"{f} of 3001 characters") for f in URL_FIELDS],
    *[
        pytest.param(
            body(
                AC,
                tenancy=False,
                **{
                    "authorization_url": "https://idp.example.com/authorize",
                    f: "https://{tenant}.example.com/x",
                },
            ),
            f,
            id=f"{{tenant}} in {f} with tenancy off",
        )
        for f in URL_FIELDS
    ],
    pytest.param(
        body(CC, token_url="https://{tenant}.example.com/token"),
        "token_url",
        id="{tenant} without any tenancy choice",
    ),
    pytest.param(
        body(AC, authorization_url="https://idp.example.com/{{nowhere}}/authorize"),
        "authorization_url",
        id="{{field}} naming no field",
    ),
    pytest.param(
        body(CC, authorization_fields=[{"type": "header", "key": "X-A", "value": "{{ghost}}"}]),
        "authorization_fields[0].value",
        id="{{field}} in an authorization field value naming no field",
    ),
    pytest.param(
        body(CC, additional_fields=[{"value": "2344567"}]),
        "additional_fields[0].key",
        id="additional field without key",
    ),
    pytest.param(
        body(CC, additional_fields=[{"key": "pin"}]),
        "additional_fields[0].value",
        id="additional field without value",
    ),
    pytest.param(
        body(CC, authorization_fields=[{"key": "Profile_id", "value": "123_xyz"}]),
        "authorization_fields[0].type",
        id="authorization field without type",
    ),
    pytest.param(
        body(CC, authorization_fields=[{"type": "header", "value": "123_xyz"}]),
        "authorization_fields[0].key",
        id="authorization field without key",
    ),
    pytest.param(
        body(CC, authorization_fields=[{"type": "cookie", "key": "k"}]),
        "authorization_fields[0].type",
        id="authorization field of an unknown type",
    ),
    pytest.param(
        body(CC, form_fields=[{"key": "pin"}]),
        "form_fields[0].title",
        id="form field without title",
    ),
    pytest.param(
        body(CC, form_fields=[{"title": "PIN"}]), "form_fields[0].key", id="form field without key"
    ),
    pytest.param(
        body("oauth2_password", token_test_method="TRACE"),
        "token_test_method",
        id="token test method not PUT/POST/PATCH/DELETE/GET",
    ),
    pytest.param(
        body("oauth2_password", token_test_content_type="yaml"),
        "token_test_content_type",
        id="token test content type not in the seed list",
    ),
    pytest.param(
        body("oauth2_password", authorization_mode="sometimes"),
        "authorization_mode",
        id="authorization mode neither user nor preauthorized",
    ),
    pytest.param(body(CC, auth_type="oauth2_implicit"), "auth_type", id="unknown auth_type"),
    pytest.param(body(CC, name=""), "name", id="empty name"),
    pytest.param(body(CC, client_colour="blue"), "client_colour", id="unknown field"),
    pytest.param(
        body(CC, additional_fields=[{"key": "pin", "value": "1", "colour": "x"}]),
        "additional_fields[0].colour",
        id="unknown nested field",
    ),
    pytest.param(body(CC, client_id=12345), "client_id", id="number for a string"),
    pytest.param(body(AC, tenancy="perhaps"), "tenancy", id="string for a boolean"),
    pytest.param(body(AC, pkce="true"), "pkce", id="string true for a boolean"),
    pytest.param(body(CC, scopes=7), "scopes", id="number for a list"),
    pytest.param(body(CC, additional_fields="pin=1"), "additional_fields", id="string for a list"),
    pytest.param(
        body(CC, auth_error_status_code="401"),
        "auth_error_status_code",
        id="string for an integer",
    ),
]


@pytest.mark.parametrize(("data", "field"), RULE_CASES)
def test_breaking_a_rule_is_a_422_problem_naming_the_field(
    rules_api: tuple[TestClient, dict[str, str]], data: dict[str, Any], field: str
) -> None:
    client, headers = rules_api
    named = assert_invalid(client.post(PROFILES, json=data, headers=headers), field)
    # Only the broken field is named: the rest of the body was valid. Union-typed fields
    # are named once per member pydantic tried, under the same name.
    assert set(named) == {field}


def test_every_violation_is_reported_at_once_in_one_response(
    rules_api: tuple[TestClient, dict[str, str]],
) -> None:
    client, headers = rules_api
    data = {
        "name": "many-problems",
        "auth_type": "oauth2_authorization_code",
        "client_id": "i" * 256,
        "authorization_url": "ftp://idp.example.com/authorize",
        "token_url": "https://{tenant}.example.com/token",
        "tenancy": False,
        "refresh_token_url": "https://idp.example.com/{{nothing}}",
        "additional_fields": [{"key": "pin"}],
        "authorization_fields": [{"key": "X-A"}],
        "form_fields": [{"key": "pin2"}],
    }
    named = assert_invalid(
        client.post(PROFILES, json=data, headers=headers),
        "identity_provider",
        "client_id",
        "client_secret",
        "authorization_url",
        "token_url",
        "refresh_token_url",
        "additional_fields[0].value",
        "authorization_fields[0].type",
        "form_fields[0].title",
    )
    assert len(named) >= 9


def test_several_type_errors_are_reported_at_once_too(
    rules_api: tuple[TestClient, dict[str, str]],
) -> None:
    client, headers = rules_api
    data = body(CC, name=5, pkce="sometimes", colour="red")
    assert_invalid(client.post(PROFILES, json=data, headers=headers), "name", "pkce", "colour")


def test_a_bad_query_parameter_is_named(rules_api: tuple[TestClient, dict[str, str]]) -> None:
    client, headers = rules_api
    response = client.post(
        PROFILES, json=body(CC, "q"), headers=headers, params={"allow_incomplete": "maybe"}
    )
    assert assert_invalid(response, "allow_incomplete") == ["allow_incomplete"]


def test_a_body_that_is_not_json_is_a_problem(rules_api: tuple[TestClient, dict[str, str]]) -> None:
    client, headers = rules_api
    response = client.post(
        PROFILES, content=b"{not json", headers={**headers, "Content-Type": "application/json"}
    )
    assert_problem(response, 422)


def test_a_rejected_secret_is_not_echoed(rules_api: tuple[TestClient, dict[str, str]]) -> None:
    client, headers = rules_api
    secret = "echo-me-not-" + "x" * 250
    response = client.post(PROFILES, json=body(CC, client_secret=secret), headers=headers)
    assert_invalid(response, "client_secret")
    assert "echo-me-not" not in response.text
    response = client.post(PROFILES, json=body(CC, client_secret=[CLIENT_SECRET]), headers=headers)
    assert_invalid(response, "client_secret")
    assert CLIENT_SECRET not in response.text


# == name: unique per workspace, immutable ========================================================


def test_a_name_is_unique_within_a_workspace(
    client: TestClient, admin_headers: dict[str, str], services: Services
) -> None:
    create(client, admin_headers, body(CC, "billing"))
    response = client.post(PROFILES, json=body(AC, "billing"), headers=admin_headers)
    assert_conflict(response, "name")

    # Another workspace may use the name, and cannot see the first workspace's profile.
    with services.db.session() as session:
        session.add(WorkspaceRow(id="other", name="Other"))
    other = services.api_keys.create(name="other-admin", role="admin", workspace_id="other")
    other_headers = {"Authorization": f"Bearer {other.key}"}
    theirs = create(client, other_headers, body(CC, "billing"))
    assert theirs["workspace_id"] == "other"
    listed = client.get(PROFILES, headers=other_headers).json()
    assert [p["id"] for p in listed] == [theirs["id"]]
    mine = client.get(PROFILES, headers=admin_headers).json()
    assert client.get(f"{PROFILES}/{mine[0]['id']}", headers=other_headers).status_code == 404


def test_two_creators_racing_for_a_name_get_one_profile_and_one_409(
    client: TestClient,
    admin_headers: dict[str, str],
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    create(client, admin_headers, body(CC, "billing"))
    # The second creator checked before the first committed: the unique constraint decides.
    monkeypatch.setattr(ProfileStore, "name_taken", lambda *_args: False)
    response = client.post(PROFILES, json=body(AC, "billing"), headers=admin_headers)
    assert assert_conflict(response, "name") == ["name"]
    assert len(services.profiles.list(ADMIN)) == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [({"name": "renamed"}, "name"), ({"auth_type": "oauth2_password"}, "auth_type")],
)
def test_patching_name_or_auth_type_is_a_422_naming_the_field(
    client: TestClient,
    admin_headers: dict[str, str],
    services: Services,
    change: dict[str, Any],
    field: str,
) -> None:
    created = create(client, admin_headers, body(CC, "billing"))
    response = client.patch(f"{PROFILES}/{created['id']}", json=change, headers=admin_headers)
    assert assert_invalid(response, field) == [field]
    profile = stored(services, created["id"])
    assert (profile.name, profile.auth_type.value) == ("billing", CC)


def test_sending_the_unchanged_name_and_type_back_is_accepted(
    rules_api: tuple[TestClient, dict[str, str]],
) -> None:
    client, headers = rules_api
    created = create(client, headers, body(CC, "round-trip"))
    response = client.patch(
        f"{PROFILES}/{created['id']}",
        json={"name": "round-trip", "auth_type": CC, "description": "changed"},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["description"] == "changed"


def test_a_patch_breaking_rules_names_every_field_and_changes_nothing(
    rules_api: tuple[TestClient, dict[str, str]],
) -> None:
    client, headers = rules_api
    created = create(client, headers, body(CC, "patch-rules"))
    response = client.patch(
        f"{PROFILES}/{created['id']}",
        json={"name": "x", "token_url": "ftp://nope", "client_id": "i" * 256},
        headers=headers,
    )
    # Immutable fields are checked first and alone: fix those, then the rest is checked.
    assert_invalid(response, "name")
    response = client.patch(
        f"{PROFILES}/{created['id']}",
        json={"token_url": "ftp://nope", "client_id": "i" * 256, "identity_provider": ""},
        headers=headers,
    )
    assert_invalid(response, "token_url", "client_id", "identity_provider")
    after = client.get(f"{PROFILES}/{created['id']}", headers=headers).json()
    assert after == created


# == status =======================================================================================


def test_status_is_not_configured_until_the_secret_is_added(
    client: TestClient, admin_headers: dict[str, str], services: Services
) -> None:
    draft = {k: v for k, v in body(CC, "billing").items() if k != "client_secret"}
    assert_invalid(client.post(PROFILES, json=draft, headers=admin_headers), "client_secret")

    created = create(client, admin_headers, draft, allow_incomplete="true")
    assert created["status"] == "not_configured"
    assert created["missing_fields"] == ["client_secret"]
    assert created["client_secret_set"] is False

    response = client.patch(
        f"{PROFILES}/{created['id']}", json={"client_secret": CLIENT_SECRET}, headers=admin_headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "configured"
    assert response.json()["missing_fields"] == []
    listed = client.get(PROFILES, headers=admin_headers).json()
    assert listed[0]["status"] == "configured"
    assert stored(services, created["id"]).client_secret == CLIENT_SECRET


def test_an_additional_field_value_left_out_of_an_incomplete_profile_is_missing(
    client: TestClient, admin_headers: dict[str, str], services: Services
) -> None:
    draft = body(CC, "billing", additional_fields=[{"key": "pin"}])
    assert_invalid(
        client.post(PROFILES, json=draft, headers=admin_headers), "additional_fields[0].value"
    )
    created = create(client, admin_headers, draft, allow_incomplete="true")
    assert created["status"] == "not_configured"
    assert created["missing_fields"] == ["additional_fields[0].value"]
    assert created["additional_fields"] == [{"key": "pin", "value_set": False}]

    url = f"{PROFILES}/{created['id']}"
    # An incomplete profile can be edited step by step; it stays not_configured meanwhile.
    response = client.patch(url, json={"description": "x"}, headers=admin_headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "not_configured"
    response = client.patch(
        url, json={"additional_fields": [{"key": "pin", "value": PIN_VALUE}]}, headers=admin_headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "configured"
    assert stored(services, created["id"]).additional_fields[0].value == PIN_VALUE


# == secrets are write-only =======================================================================


def test_a_patch_without_secrets_keeps_the_stored_ones(
    client: TestClient, admin_headers: dict[str, str], services: Services
) -> None:
    created = create(client, admin_headers, body("oauth2_password", "legacy"))
    # What a client would send after reading the profile: no secret values at all.
    response = client.patch(
        f"{PROFILES}/{created['id']}",
        json={
            "description": "edited",
            "additional_fields": [{"key": "pin"}, {"key": "device", "value": "d-1"}],
            "authorization_fields": [
                {"type": "header", "key": "X-Profile-Id"},
                {"type": "query", "key": "account"},
            ],
        },
        headers=admin_headers,
    )
    assert response.status_code == 200, response.text
    public = response.json()
    assert public["client_secret_set"] is True and public["password_set"] is True
    assert public["additional_fields"] == [
        {"key": "pin", "value_set": True},
        {"key": "device", "value_set": True},
    ]
    for secret in SECRETS:
        assert secret not in response.text

    profile = stored(services, created["id"])
    assert profile.description == "edited"
    assert profile.client_secret == CLIENT_SECRET
    assert profile.password == PASSWORD
    assert {f.key: f.value for f in profile.additional_fields} == {
        "pin": PIN_VALUE,
        "device": "d-1",
    }
    assert profile.authorization_fields[0].value == AUTH_FIELD_VALUE
    with services.db.read() as session:
        again = ProfileStore(services.keyring).get(session, "default", created["id"])
    assert again.client_secret == CLIENT_SECRET


def test_a_patch_with_a_new_secret_replaces_it(
    client: TestClient, admin_headers: dict[str, str], services: Services
) -> None:
    created = create(client, admin_headers, body(CC, "billing"))
    response = client.patch(
        f"{PROFILES}/{created['id']}",
        json={
            "client_secret": "rotated-secret",
            "additional_fields": [{"key": "pin", "value": "2"}],
        },
        headers=admin_headers,
    )
    assert response.status_code == 200, response.text
    assert "rotated-secret" not in response.text
    profile = stored(services, created["id"])
    assert profile.client_secret == "rotated-secret"
    assert profile.additional_fields[0].value == "2"


def test_null_clears_a_secret(
    client: TestClient, admin_headers: dict[str, str], services: Services
) -> None:
    created = create(client, admin_headers, body("oauth2_password", "legacy"))
    url = f"{PROFILES}/{created['id']}"

    # Clearing a mandatory secret makes the profile incomplete: it needs the opt-in.
    assert_invalid(
        client.patch(url, json={"client_secret": None}, headers=admin_headers), "client_secret"
    )
    response = client.patch(
        url,
        json={
            "client_secret": None,
            "password": None,
            "authorization_fields": [{"type": "header", "key": "X-Profile-Id", "value": None}],
        },
        headers=admin_headers,
        params={"allow_incomplete": "true"},
    )
    assert response.status_code == 200, response.text
    public = response.json()
    assert public["client_secret_set"] is False
    assert public["password_set"] is False
    assert public["authorization_fields"] == [
        {"type": "header", "key": "X-Profile-Id", "value_set": False}
    ]
    assert public["status"] == "not_configured"
    # A preauthorized profile holds the password its tokens are obtained with.
    assert public["missing_fields"] == ["client_secret", "password"]
    profile = stored(services, created["id"])
    assert profile.client_secret is None and profile.password is None
    assert profile.authorization_fields[0].value is None
    assert profile.additional_fields[0].value == PIN_VALUE


# == roles and authentication =====================================================================


def test_a_viewer_reads_but_cannot_create_change_or_delete(
    client: TestClient, admin_headers: dict[str, str], viewer_headers: dict[str, str]
) -> None:
    created = create(client, admin_headers, body(CC, "billing"))
    url = f"{PROFILES}/{created['id']}"
    assert client.get(PROFILES, headers=viewer_headers).status_code == 200
    read = client.get(url, headers=viewer_headers)
    assert read.status_code == 200 and read.json()["client_secret_set"] is True
    assert CLIENT_SECRET not in read.text

    problem = assert_problem(client.post(PROFILES, json=body(CC, "x"), headers=viewer_headers), 403)
    assert "admin" in problem["detail"]
    assert_problem(client.patch(url, json={"description": "x"}, headers=viewer_headers), 403)
    assert_problem(client.delete(url, headers=viewer_headers), 403)
    assert client.get(url, headers=admin_headers).json() == created


def test_a_developer_uses_profiles_but_cannot_create_change_or_delete_them(
    client: TestClient, admin_headers: dict[str, str], developer_headers: dict[str, str]
) -> None:
    created = create(client, admin_headers, body(CC, "billing"))
    url = f"{PROFILES}/{created['id']}"
    assert client.get(url, headers=developer_headers).status_code == 200
    assert_problem(client.post(PROFILES, json=body(CC, "x"), headers=developer_headers), 403)
    assert_problem(client.patch(url, json={"description": "x"}, headers=developer_headers), 403)
    assert_problem(client.delete(url, headers=developer_headers), 403)
    assert [p["name"] for p in client.get(PROFILES, headers=admin_headers).json()] == ["billing"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer ap_0000000000000000_not-a-real-secret"},
        {"Authorization": "Bearer something-else"},
        {"Authorization": "Basic YWRtaW46YWRtaW4="},
        {"Authorization": "Bearer "},
    ],
    ids=["no key", "unknown key", "not an api key", "basic auth", "empty bearer"],
)
def test_no_or_bad_key_is_a_401_problem_with_www_authenticate(
    rules_api: tuple[TestClient, dict[str, str]], headers: dict[str, str]
) -> None:
    client, _ = rules_api
    for response in (
        client.get(PROFILES, headers=headers),
        client.post(PROFILES, json=body(CC, "nope"), headers=headers),
        client.get(f"{PROFILES}/anything", headers=headers),
    ):
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_a_key_with_the_right_secret_but_wrong_prefix_is_refused(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    key = admin_headers["Authorization"].removeprefix("Bearer ")
    _, prefix, secret = key.split("_", 2)
    forged = f"ap_{prefix}_{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}"
    response = client.get(PROFILES, headers={"Authorization": f"Bearer {forged}"})
    assert_problem(response, 401)


# == delete =======================================================================================


def test_delete_is_final(client: TestClient, admin_headers: dict[str, str]) -> None:
    created = create(client, admin_headers, body(CC, "billing"))
    url = f"{PROFILES}/{created['id']}"
    response = client.delete(url, headers=admin_headers)
    assert response.status_code == 200, response.text
    assert response.json()["deleted"] is True
    assert_problem(client.get(url, headers=admin_headers), 404)
    assert_problem(client.patch(url, json={"description": "x"}, headers=admin_headers), 404)
    assert_problem(client.delete(url, headers=admin_headers), 404)
    assert client.get(PROFILES, headers=admin_headers).json() == []
    # The name is free again.
    create(client, admin_headers, body(CC, "billing"))


def test_an_unknown_profile_is_a_404_problem(
    rules_api: tuple[TestClient, dict[str, str]],
) -> None:
    client, headers = rules_api
    problem = assert_problem(client.get(f"{PROFILES}/no-such-id", headers=headers), 404)
    assert "no-such-id" in problem["detail"]


# == a crash mid-write leaves the old state =======================================================


def test_a_crash_after_the_insert_is_flushed_stores_nothing(
    client: TestClient,
    admin_headers: dict[str, str],
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_add = ProfileStore.add

    def add_then_crash(self: ProfileStore, *args: Any, **kwargs: Any) -> Any:
        real_add(self, *args, **kwargs)  # the row is flushed inside the transaction
        raise RuntimeError("simulated crash after flush")

    monkeypatch.setattr(ProfileStore, "add", add_then_crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        services.profiles.create(ADMIN, body(CC, "billing"))
    monkeypatch.setattr(ProfileStore, "add", real_add)

    assert services.profiles.list(ADMIN) == []
    assert client.get(PROFILES, headers=admin_headers).json() == []
    create(client, admin_headers, body(CC, "billing"))


def test_a_crash_after_the_update_is_flushed_keeps_the_old_version(
    client: TestClient,
    admin_headers: dict[str, str],
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    created = create(client, admin_headers, body(CC, "billing"))
    before = stored(services, created["id"])
    real_replace = ProfileStore.replace

    def replace_then_crash(self: ProfileStore, *args: Any, **kwargs: Any) -> Any:
        real_replace(self, *args, **kwargs)
        raise RuntimeError("simulated crash after flush")

    monkeypatch.setattr(ProfileStore, "replace", replace_then_crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        services.profiles.update(
            ADMIN,
            created["id"],
            {"client_secret": "half-written", "description": "half", "scopes": ["x"]},
        )
    monkeypatch.setattr(ProfileStore, "replace", real_replace)

    after = stored(services, created["id"])
    assert after == before
    assert after.client_secret == CLIENT_SECRET
    assert client.get(f"{PROFILES}/{created['id']}", headers=admin_headers).json() == created


def test_an_unexpected_error_is_a_500_problem_without_details(
    rules_api: tuple[TestClient, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, headers = rules_api

    def explode(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError(f"boom {CLIENT_SECRET}")

    monkeypatch.setattr(ProfileStore, "add", explode)
    app_client = TestClient(client.app, raise_server_exceptions=False)
    response = app_client.post(PROFILES, json=body(CC, "explodes"), headers=headers)
    problem = assert_problem(response, 500)
    assert CLIENT_SECRET not in response.text and "boom" not in problem["detail"]


# == schema and health ============================================================================


def test_openapi_describes_the_profile_endpoints(
    rules_api: tuple[TestClient, dict[str, str]],
) -> None:
    client, _ = rules_api
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    assert set(paths[PROFILES]) >= {"get", "post"}
    assert set(paths[f"{PROFILES}/{{profile_id}}"]) >= {"get", "patch", "delete"}
    post = paths[PROFILES]["post"]
    assert "201" in post["responses"]
    assert any(p["name"] == "allow_incomplete" for p in post["parameters"])
    components = schema["components"]["schemas"]
    public = components["ProfilePublic"]["properties"]
    for field in ("client_secret_set", "password_set", "status", "callback_url", "missing_fields"):
        assert field in public
    assert "client_secret" not in public and "password" not in public
    body_ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    create = components[body_ref.rsplit("/", 1)[1]]["properties"]
    for field in ("name", "auth_type", "client_secret", "additional_fields", "form_fields"):
        assert field in create
    assert "/healthz" in paths and "/readyz" in paths


def test_healthz_and_readyz_answer_200(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ok"


def test_readyz_is_503_before_migrations(tmp_path: Path, master_key: str) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'fresh.db'}",
        master_key=master_key,
        key_file=tmp_path / "unused.key",
    )
    services = Services(settings)
    app = create_app(services=services, migrate=False, background_refresh=False)
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 503
    services.close()


def test_a_name_stored_before_todays_rules_does_not_make_the_profile_uneditable(
    client: TestClient, admin_headers: dict[str, str], services: Services
) -> None:
    """Names are immutable: one stored when control characters were still accepted is not
    judged again on every later change."""
    from authprofiles.core.validation import parse_draft, validate_draft
    from authprofiles.store.models import DEFAULT_WORKSPACE_ID, ProfileRow

    with services.db.session() as session:
        stored = services.profile_store.add(
            session,
            DEFAULT_WORKSPACE_ID,
            validate_draft(
                parse_draft(
                    {
                        "name": "legacy",
                        "auth_type": "oauth2_client_credentials",
                        "identity_provider": "IdP",
                        "client_id": "c",
                        "client_secret": "s",
                        "token_url": "https://idp.example.com/token",
                    }
                )
            ),
        )
        row = session.get(ProfileRow, stored.id)
        assert row is not None
        row.name = "legacy\u202e"

    changed = client.patch(
        f"/api/v1/profiles/{stored.id}",
        json={"description": "still editable"},
        headers=admin_headers,
    )

    assert changed.status_code == 200, changed.text
    assert changed.json()["name"] == "legacy\u202e"
    assert changed.json()["description"] == "still editable"
