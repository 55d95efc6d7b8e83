"""The console's profile form is made from the registry of auth types: every field has an
input, every choice is the API's, and whatever validation can call mandatory is shown
when it is (so its error lands beside an input); the script's rules say what
``required_fields`` says."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest

from authprofiles.core.auth_types import CHOICE_LABELS, FIELD_HINTS, FORM_SECTIONS, AuthType
from authprofiles.core.profiles import (
    PROFILE_FIELDS,
    AuthorizationMode,
    ClientAuthMethod,
    FieldLocation,
    FormFieldType,
    FormFieldVisibility,
    HttpMethod,
    Profile,
    TestContentType,
    fields_of,
)
from authprofiles.core.validation import required_fields
from authprofiles.web.console.profiles import (
    SECTIONS,
    choices_of,
    delete_message,
    form_rules,
    required_now,
    shown,
    status_of,
)

FORM_INPUTS = {i.name: i for s in SECTIONS for i in s.inputs}


def test_every_profile_field_has_one_input_in_the_form() -> None:
    in_form = [name for _title, names in FORM_SECTIONS for name in names]
    assert len(in_form) == len(set(in_form))
    # name and auth_type come first, on their own; the callback URL is shown, not stored.
    assert set(in_form) == (set(PROFILE_FIELDS) - {"name", "auth_type"}) | {"callback_url"}
    assert all(FIELD_HINTS.get(name) for name in in_form)


@pytest.mark.parametrize("auth_type", list(AuthType))
def test_a_type_shows_exactly_its_fields(auth_type: AuthType) -> None:
    own = {name for name, form in FORM_INPUTS.items() if auth_type.value in form.types}
    expected = set(fields_of(auth_type)) - {"name", "auth_type"}
    if auth_type is AuthType.AUTHORIZATION_CODE:
        expected.add("callback_url")
    assert own == expected


@pytest.mark.parametrize(
    ("field", "enum"),
    [
        ("authorization_mode", AuthorizationMode),
        ("client_auth_method", ClientAuthMethod),
        ("token_test_method", HttpMethod),
        ("token_test_content_type", TestContentType),
        ("authorization_fields.type", FieldLocation),
        ("form_fields.type", FormFieldType),
        ("form_fields.visibility", FormFieldVisibility),
    ],
)
def test_the_choices_are_the_apis_values_in_the_seeds_words(field: str, enum: Any) -> None:
    values = [choice.value for choice in choices_of(field)]
    assert sorted(values) == sorted(m.value for m in enum)
    assert set(CHOICE_LABELS[field]) == set(values)  # every one worded by the registry


def test_the_seeds_wording_and_order() -> None:
    assert [c.value for c in choices_of("token_test_method")] == [
        "PUT",
        "POST",
        "PATCH",
        "DELETE",
        "GET",
    ]
    tenancy = choices_of("tenancy")
    assert tenancy[0].label == "No, this tool and all of its tasks do not have tenancy URLs."
    assert tenancy[1].label.startswith("Yes, some tasks will have tenancy URLs")
    assert [c.label for c in choices_of("authorization_fields.type")] == [
        "Header",
        "Payload",
        "Query String",
        "Path Param",
    ]


def _required_as_the_script_says(
    rules: dict[str, Any], auth_type: str, method: str, mode: str | None, test_url: bool
) -> set[str]:
    """profiles.js ``requiredFields``, in Python."""
    typed = rules["types"][auth_type]
    out: list[str] = []
    for name in typed["mandatory"]:
        out.extend(rules["credential"][method] if name == "client_secret" else [name])
    if mode:
        out.extend(typed["in_mode"].get(mode, []))
    if test_url:
        out.extend(typed["with_test_url"])
    return set(out)


STATES = list(
    itertools.product(
        AuthType,
        ClientAuthMethod,
        [None, *AuthorizationMode],
        [False, True],
    )
)


@pytest.mark.parametrize(("auth_type", "method", "mode", "test_url"), STATES)
def test_what_validation_calls_mandatory_is_shown_and_marked(
    auth_type: AuthType,
    method: ClientAuthMethod,
    mode: AuthorizationMode | None,
    test_url: bool,
) -> None:
    values: dict[str, Any] = {
        "client_auth_method": method.value,
        "authorization_mode": mode.value if mode else None,
        "token_test_url": "https://api.example.com/me" if test_url else None,
    }
    required = set(
        required_fields(
            auth_type,
            lambda name: name == "token_test_url" and test_url,
            mode,
            client_auth_method=method,
        )
    )
    script = _required_as_the_script_says(
        form_rules(), auth_type.value, method.value, values["authorization_mode"], test_url
    )
    assert script == required
    assert required_now(auth_type, values) == frozenset(required)
    for name in required:
        assert shown(FORM_INPUTS[name], auth_type.value, values), name


def _profile(**fields: Any) -> Profile:
    now = datetime.now(UTC)
    base: dict[str, Any] = {
        "id": "p1",
        "workspace_id": "w",
        "created_at": now,
        "updated_at": now,
        "name": "billing",
        "auth_type": AuthType.CLIENT_CREDENTIALS,
        "identity_provider": "Okta",
        "client_id": "id",
        "client_secret": "secret-value",
        "token_url": "https://idp.example.com/token",
    }
    return Profile.model_validate({**base, **fields})


def test_the_status_says_why() -> None:
    assert status_of(_profile()).label == "Configured"
    missing = status_of(_profile(client_secret=None, token_url=None))
    assert missing.label == "Not Configured"
    assert missing.reason == "Missing: Client Secret, Token Request URL."
    failing = status_of(_profile(failing_reason="invalid_client: the client was refused"))
    assert failing.label == "Failing"
    assert failing.reason == "invalid_client: the client was refused"


def test_the_delete_confirmation_says_what_goes_with_the_profile() -> None:
    revoking = delete_message(_profile(revocation_url="https://idp.example.com/revoke"), 3)
    assert "cannot be recovered" in revoking
    assert "Its 3 connections and their tokens are deleted" in revoking
    assert "revoked first at the identity provider" in revoking
    kept = delete_message(_profile(), 1)
    assert "no revocation URL" in kept and "stay valid there until they expire" in kept
    assert "It has no connections." in delete_message(_profile(), 0)
