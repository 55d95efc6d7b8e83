"""The seeds' profile rules, checked in the core alone (no sockets, no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from authprofiles.core.errors import ValidationFailed
from authprofiles.core.profiles import (
    AuthorizationMode,
    AuthType,
    HttpMethod,
    Profile,
    ProfileDefinition,
    ProfileStatus,
)
from authprofiles.core.validation import (
    MANDATORY_FIELDS,
    MAX_CLIENT_CREDENTIAL_LENGTH,
    MAX_FIELD_VALUE_LENGTH,
    MAX_FIELDS,
    MAX_PASSWORD_LENGTH,
    MAX_SCOPE_LENGTH,
    MAX_SCOPES,
    MAX_SHORT_TEXT_LENGTH,
    MAX_TEXT_LENGTH,
    MAX_URL_LENGTH,
    missing_fields,
    parse_draft,
    required_fields,
    validate_draft,
)

URL_FIELDS_ANY_TYPE = (
    "authorization_url",
    "token_url",
    "refresh_token_url",
    "revocation_url",
    "api_base_url",
    "egress_proxy_url",
    "token_test_url",
)

VALID: dict[str, dict[str, Any]] = {
    "oauth2_authorization_code": {
        "name": "asana",
        "auth_type": "oauth2_authorization_code",
        "identity_provider": "Asana",
        "client_id": "client-1",
        "client_secret": "secret-1",
        "authorization_url": "https://app.asana.com/-/oauth_authorize",
        "token_url": "https://app.asana.com/-/oauth_token",
        "tenancy": False,
    },
    "oauth2_client_credentials": {
        "name": "billing",
        "auth_type": "oauth2_client_credentials",
        "identity_provider": "Okta",
        "client_id": "client-2",
        "client_secret": "secret-2",
        "token_url": "https://idp.example.com/oauth2/token",
    },
    "oauth2_password": {
        "name": "legacy",
        "auth_type": "oauth2_password",
        "identity_provider": "Legacy IdP",
        "client_id": "client-3",
        "client_secret": "secret-3",
        "token_url": "https://legacy.example.com/oauth/token",
        "authorization_mode": "preauthorized",
        "username": "service-user",
        "password": "service-password",
        "token_test_url": "https://legacy.example.com/api/me",
        "token_test_method": "GET",
        "token_test_content_type": "json",
    },
    "oauth2_device_code": {
        "name": "cli-tool",
        "auth_type": "oauth2_device_code",
        "identity_provider": "GitHub",
        "client_id": "client-4",
        "client_secret": "secret-4",
        "device_authorization_url": "https://github.com/login/device/code",
        "token_url": "https://github.com/login/oauth/access_token",
    },
}


def _validate(data: dict[str, Any], *, require_complete: bool = True) -> ProfileDefinition:
    return validate_draft(parse_draft(data), require_complete=require_complete)


def _fields_of(exc: pytest.ExceptionInfo[ValidationFailed]) -> list[str]:
    return [e.field for e in exc.value.errors]


def _errors(data: dict[str, Any], *, require_complete: bool = True) -> list[str]:
    with pytest.raises(ValidationFailed) as exc:
        _validate(data, require_complete=require_complete)
    return _fields_of(exc)


def _with(kind: str, /, **changes: Any) -> dict[str, Any]:
    return {**VALID[kind], **changes}


def _without(auth_type: str, *fields: str) -> dict[str, Any]:
    return {k: v for k, v in VALID[auth_type].items() if k not in fields}


# -- each type, complete --------------------------------------------------------------


@pytest.mark.parametrize("auth_type", list(VALID))
def test_a_complete_profile_of_each_type_validates(auth_type: str) -> None:
    definition = _validate(VALID[auth_type])
    assert definition.auth_type == AuthType(auth_type)
    assert missing_fields(definition) == []


# -- mandatory fields per type (seed 000 note, seed 003) ------------------------------

MANDATORY_CASES = [
    (auth_type.value, field) for auth_type, fields in MANDATORY_FIELDS.items() for field in fields
]


@pytest.mark.parametrize(("auth_type", "field"), MANDATORY_CASES)
def test_leaving_out_a_mandatory_field_is_reported_by_name(auth_type: str, field: str) -> None:
    assert field in _errors(_without(auth_type, field))


@pytest.mark.parametrize(
    ("auth_type", "field"), [case for case in MANDATORY_CASES if case[1] != "tenancy"]
)
def test_a_blank_mandatory_string_counts_as_missing(auth_type: str, field: str) -> None:
    assert field in _errors(_with(auth_type, **{field: "   "}))


def test_the_mandatory_fields_are_the_seed_lists() -> None:
    common = {"identity_provider", "client_id", "client_secret", "token_url"}
    assert set(MANDATORY_FIELDS[AuthType.CLIENT_CREDENTIALS]) == common
    assert set(MANDATORY_FIELDS[AuthType.AUTHORIZATION_CODE]) == common | {
        "authorization_url",
        "tenancy",
    }
    assert set(MANDATORY_FIELDS[AuthType.PASSWORD]) == common | {"authorization_mode"}


@pytest.mark.parametrize("auth_type", list(VALID))
def test_scope_description_refresh_url_extra_fields_and_error_code_are_optional(
    auth_type: str,
) -> None:
    # Seed 000: "Except for Scope, Description, Refresh Token URL, Additional fields,
    # Authorization fields, and Auth Error Status Code, all the fields are mandatory."
    definition = _validate(VALID[auth_type])
    assert definition.scopes == ()
    assert definition.description is None
    assert definition.refresh_token_url is None
    assert definition.additional_fields == ()
    assert definition.authorization_fields == ()
    assert definition.auth_error_status_code is None
    assert definition.effective_auth_error_status_code == 401


@pytest.mark.parametrize("auth_type", ["oauth2_client_credentials", "oauth2_password"])
def test_authorization_url_and_tenancy_are_required_only_for_authorization_code(
    auth_type: str,
) -> None:
    definition = _validate(_without(auth_type, "authorization_url", "tenancy"))
    assert definition.authorization_url is None
    assert definition.tenancy is None


# -- what each mode needs (seed 003: preauthorized credentials are "provided in advance") --


def test_a_preauthorized_password_profile_without_its_credentials_is_not_configured() -> None:
    data = _without("oauth2_password", "username", "password")
    with pytest.raises(ValidationFailed) as failed:
        _validate(data)
    assert _fields_of(failed) == ["username", "password"]
    assert all("in preauthorized mode" in e.message for e in failed.value.errors)
    # Kept incomplete, it says so, naming both, instead of failing on connect.
    definition = _validate(data, require_complete=False)
    assert missing_fields(definition) == ["username", "password"]
    assert _profile(definition).status is ProfileStatus.NOT_CONFIGURED
    only_user = _validate(_without("oauth2_password", "password"), require_complete=False)
    assert missing_fields(only_user) == ["password"]


@pytest.mark.parametrize(
    ("auth_type", "mode", "beyond_the_mandatory"),
    [
        (AuthType.AUTHORIZATION_CODE, None, ()),
        (AuthType.CLIENT_CREDENTIALS, None, ()),
        (AuthType.PASSWORD, AuthorizationMode.USER, ()),
        (AuthType.PASSWORD, AuthorizationMode.PREAUTHORIZED, ("username", "password")),
    ],
)
def test_what_each_type_and_mode_needs_to_be_configured(
    auth_type: AuthType, mode: AuthorizationMode | None, beyond_the_mandatory: tuple[str, ...]
) -> None:
    needed = required_fields(auth_type, lambda _field: False, mode)
    assert needed == MANDATORY_FIELDS[auth_type] + beyond_the_mandatory


def test_a_user_mode_password_profile_needs_no_credentials_of_its_own() -> None:
    data = _with("oauth2_password", authorization_mode="user")
    data = {k: v for k, v in data.items() if k not in ("username", "password")}
    definition = _validate(data)
    assert missing_fields(definition) == []
    assert _profile(definition).status is ProfileStatus.CONFIGURED


def test_the_password_grant_names_its_mode_and_the_test_urls_details_at_once() -> None:
    fields = _errors(
        _without(
            "oauth2_password", "authorization_mode", "token_test_method", "token_test_content_type"
        )
    )
    assert set(fields) == {"authorization_mode", "token_test_method", "token_test_content_type"}


# -- the token test URL is optional (seed 003: "optionally define a URL to test") -------


@pytest.mark.parametrize("auth_type", list(VALID))
def test_a_profile_without_a_token_test_url_is_complete_and_configured(auth_type: str) -> None:
    data = _without(auth_type, "token_test_url", "token_test_method", "token_test_content_type")
    definition = _validate(data)
    assert definition.token_test_url is None
    assert missing_fields(definition) == []
    assert _profile(definition).status is ProfileStatus.CONFIGURED


def test_a_password_profiles_token_test_url_needs_its_method_and_content_type() -> None:
    data = _without("oauth2_password", "token_test_method", "token_test_content_type")
    with pytest.raises(ValidationFailed) as failed:
        _validate(data)
    assert _fields_of(failed) == ["token_test_method", "token_test_content_type"]
    assert all("token_test_url is set" in e.message for e in failed.value.errors)
    # Kept incomplete, it is not configured, naming both.
    definition = _validate(data, require_complete=False)
    assert missing_fields(definition) == ["token_test_method", "token_test_content_type"]
    assert _profile(definition).status is ProfileStatus.NOT_CONFIGURED


def test_the_test_urls_details_alone_are_not_required() -> None:
    data = _without("oauth2_password", "token_test_url", "token_test_content_type")
    assert _validate(data).token_test_method is HttpMethod.GET


@pytest.mark.parametrize("auth_type", ["oauth2_client_credentials", "oauth2_authorization_code"])
def test_other_types_test_with_get_and_any_content_type_when_they_are_left_out(
    auth_type: str,
) -> None:
    definition = _validate(_with(auth_type, token_test_url="https://api.example.com/me"))
    assert (definition.token_test_method, definition.token_test_content_type) == (None, None)
    assert missing_fields(definition) == []


@pytest.mark.parametrize("method", ["PUT", "POST", "PATCH", "DELETE", "GET", "post"])
def test_token_test_method_accepts_the_five_seed_methods(method: str) -> None:
    definition = _validate(_with("oauth2_password", token_test_method=method))
    assert definition.token_test_method == HttpMethod(method.upper())


@pytest.mark.parametrize("method", ["TRACE", "HEAD", "OPTIONS", "FETCH"])
def test_token_test_method_rejects_any_other_method(method: str) -> None:
    assert _errors(_with("oauth2_password", token_test_method=method)) == ["token_test_method"]


def test_token_test_content_type_must_be_one_of_the_seed_list() -> None:
    assert _errors(_with("oauth2_password", token_test_content_type="yaml")) == [
        "token_test_content_type"
    ]


def test_authorization_mode_is_user_or_preauthorized() -> None:
    assert _validate(_with("oauth2_password", authorization_mode="user")).authorization_mode
    assert _errors(_with("oauth2_password", authorization_mode="sometimes")) == [
        "authorization_mode"
    ]


def test_an_unknown_auth_type_is_named() -> None:
    assert _errors(_with("oauth2_client_credentials", auth_type="basic")) == ["auth_type"]


def test_name_and_auth_type_are_always_required() -> None:
    fields = _errors({}, require_complete=False)
    assert set(fields) == {"name", "auth_type"}


# -- lengths ----------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["client_id", "client_secret"])
def test_client_id_and_secret_accept_255_characters(field: str) -> None:
    value = "x" * MAX_CLIENT_CREDENTIAL_LENGTH
    definition = _validate(_with("oauth2_client_credentials", **{field: value}))
    assert getattr(definition, field) == value


@pytest.mark.parametrize("field", ["client_id", "client_secret"])
def test_client_id_and_secret_reject_256_characters(field: str) -> None:
    value = "x" * (MAX_CLIENT_CREDENTIAL_LENGTH + 1)
    assert _errors(_with("oauth2_client_credentials", **{field: value})) == [field]


def test_the_length_error_does_not_echo_the_secret() -> None:
    secret = "do-not-echo-" + "s" * 300
    with pytest.raises(ValidationFailed) as exc:
        _validate(_with("oauth2_client_credentials", client_secret=secret))
    assert "do-not-echo" not in str(exc.value.errors) + exc.value.detail


# -- URLs -------------------------------------------------------------------------------


def _url_of_length(length: int) -> str:
    head = "https://idp.example.com/"
    return head + "a" * (length - len(head))


@pytest.mark.parametrize("field", URL_FIELDS_ANY_TYPE)
def test_a_url_of_3000_characters_is_accepted(field: str) -> None:
    url = _url_of_length(MAX_URL_LENGTH)
    assert getattr(_validate(_with("oauth2_authorization_code", **{field: url})), field) == url


@pytest.mark.parametrize("field", URL_FIELDS_ANY_TYPE)
def test_a_url_of_3001_characters_is_rejected(field: str) -> None:
    url = _url_of_length(MAX_URL_LENGTH + 1)
    assert _errors(_with("oauth2_authorization_code", **{field: url})) == [field]


@pytest.mark.parametrize(
    "url",
    [
        "ftp://idp.example.com/token",
        "javascript:alert(1)",
        "idp.example.com/token",
        "not a url",
        "https://",
        "https:///path-only",
        "https://idp.example.com/has space",
        "https://idp.example.com:0/x",
    ],
)
@pytest.mark.parametrize("field", URL_FIELDS_ANY_TYPE)
def test_a_url_must_be_a_valid_http_or_https_url(field: str, url: str) -> None:
    assert field in _errors(_with("oauth2_authorization_code", **{field: url}))


@pytest.mark.parametrize(
    "url", ["http://user:secret@proxy.example.com:3128", "https://token@api.example.com/v1"]
)
@pytest.mark.parametrize("field", URL_FIELDS_ANY_TYPE)
def test_a_url_may_not_carry_credentials(field: str, url: str) -> None:
    """They would be stored and shown in plain text; the error says so without echoing."""
    with pytest.raises(ValidationFailed) as failed:
        _validate(_with("oauth2_authorization_code", **{field: url}))
    errors = [e for e in failed.value.errors if e.field == field]
    assert errors and "credentials" in errors[0].message
    assert "secret" not in errors[0].message and "token@" not in errors[0].message


@pytest.mark.parametrize("url", ["http://localhost:8080/token", "https://idp.example.com/t?x=1"])
def test_http_and_https_urls_with_ports_and_queries_are_accepted(url: str) -> None:
    assert _validate(_with("oauth2_client_credentials", token_url=url)).token_url == url


# -- placeholders -------------------------------------------------------------------------


@pytest.mark.parametrize("field", URL_FIELDS_ANY_TYPE)
def test_tenant_placeholder_is_refused_when_tenancy_is_off(field: str) -> None:
    url = "https://{tenant}.service-now.com/api/now"
    assert _errors(_with("oauth2_authorization_code", tenancy=False, **{field: url})) == [field]


@pytest.mark.parametrize("field", URL_FIELDS_ANY_TYPE)
def test_tenant_placeholder_is_accepted_when_tenancy_is_on(field: str) -> None:
    url = "https://{tenant}.service-now.com/api/now"
    definition = _validate(_with("oauth2_authorization_code", tenancy=True, **{field: url}))
    assert getattr(definition, field) == url


def test_tenant_placeholder_without_a_tenancy_choice_is_refused() -> None:
    data = _with("oauth2_client_credentials", token_url="https://{tenant}.example.com/token")
    assert _errors(data) == ["token_url"]


def test_a_field_placeholder_must_name_a_defined_field() -> None:
    url = "https://platform.example.com/sap/opu/odata/sap/{{authfield1}}/?$format=json"
    assert _errors(_with("oauth2_authorization_code", authorization_url=url)) == [
        "authorization_url"
    ]


@pytest.mark.parametrize(
    "definer",
    [
        {"form_fields": [{"title": "Auth field", "key": "authfield1"}]},
        {"additional_fields": [{"key": "authfield1", "value": "v"}]},
        {"authorization_fields": [{"type": "path", "key": "authfield1"}]},
    ],
    ids=["form field", "additional field", "authorization field"],
)
def test_a_field_placeholder_may_name_a_form_additional_or_authorization_field(
    definer: dict[str, Any],
) -> None:
    url = "https://platform.example.com/sap/opu/odata/sap/{{authfield1}}/?$format=json"
    data = _with("oauth2_authorization_code", authorization_url=url, **definer)
    assert _validate(data).authorization_url == url


def test_seed_003_token_test_url_with_tenant_and_field_is_accepted() -> None:
    data = _with(
        "oauth2_password",
        tenancy=True,
        allow_insecure_http=True,  # the seed's example is plain http
        token_test_url="http://{tenant}.example.com/test/{{tokenId}}",
        form_fields=[{"title": "Token id", "key": "tokenId"}],
    )
    assert _validate(data).token_test_url == "http://{tenant}.example.com/test/{{tokenId}}"


def test_access_token_is_a_builtin_only_for_api_and_test_urls() -> None:
    ok = _with(
        "oauth2_client_credentials",
        api_base_url="https://api.example.com/{{access_token}}",
    )
    assert _validate(ok).api_base_url
    bad = _with("oauth2_client_credentials", token_url="https://idp.example.com/{{access_token}}")
    assert _errors(bad) == ["token_url"]


def test_an_authorization_field_value_placeholder_must_name_a_defined_field() -> None:
    data = _with(
        "oauth2_client_credentials",
        authorization_fields=[{"type": "header", "key": "X-Pin", "value": "{{pin}}"}],
    )
    assert _errors(data) == ["authorization_fields[0].value"]
    data["form_fields"] = [{"title": "PIN", "key": "pin"}]
    assert _validate(data).authorization_fields[0].value == "{{pin}}"


@pytest.mark.parametrize("url", ["https://{host}.example.com/", "https://x.example.com/{a}}"])
def test_braces_other_than_the_two_placeholders_are_refused(url: str) -> None:
    assert _errors(_with("oauth2_client_credentials", token_url=url)) == ["token_url"]


# -- additional, authorization and form fields ----------------------------------------------


def test_an_additional_field_needs_a_key() -> None:
    data = _with("oauth2_authorization_code", additional_fields=[{"value": "2344567"}])
    assert _errors(data) == ["additional_fields[0].key"]


def test_an_additional_field_needs_a_value() -> None:
    data = _with("oauth2_authorization_code", additional_fields=[{"key": "pin"}])
    assert _errors(data) == ["additional_fields[0].value"]
    data["additional_fields"] = [{"key": "pin", "value": ""}]
    assert _errors(data) == ["additional_fields[0].value"]


def test_an_authorization_field_needs_a_type_and_a_key() -> None:
    data = _with("oauth2_authorization_code", authorization_fields=[{"value": "123_xyz"}])
    assert set(_errors(data)) == {"authorization_fields[0].type", "authorization_fields[0].key"}


def test_an_authorization_field_type_is_header_payload_query_or_path() -> None:
    fields = [{"type": t, "key": f"k{i}"} for i, t in enumerate(["header", "payload", "query"])]
    fields.append({"type": "path", "key": "k3"})
    definition = _validate(_with("oauth2_authorization_code", authorization_fields=fields))
    assert [f.type.value for f in definition.authorization_fields] == [
        "header",
        "payload",
        "query",
        "path",
    ]
    bad = _with("oauth2_authorization_code", authorization_fields=[{"type": "cookie", "key": "k"}])
    assert _errors(bad) == ["authorization_fields[0].type"]


def test_an_authorization_field_value_is_optional() -> None:
    data = _with(
        "oauth2_authorization_code",
        authorization_fields=[{"type": "header", "key": "Profile_id"}],
    )
    assert _validate(data).authorization_fields[0].value is None


def test_a_form_field_needs_a_title_and_a_key() -> None:
    data = _with("oauth2_password", form_fields=[{"hint": "your PIN"}])
    assert set(_errors(data)) == {"form_fields[0].title", "form_fields[0].key"}


def test_a_form_field_has_seed_003_defaults_and_choices() -> None:
    data = _with(
        "oauth2_password",
        form_fields=[
            {"title": "PIN", "key": "pin"},
            {
                "title": "Secret word",
                "key": "word",
                "hint": "the word",
                "type": "password",
                "mandatory": True,
                "data_type": "string",
                "visibility": "hidden",
            },
        ],
    )
    first, second = _validate(data).form_fields
    assert (first.type.value, first.visibility.value, first.mandatory) == (
        "textbox",
        "visible",
        False,
    )
    assert (second.type.value, second.visibility.value, second.mandatory) == (
        "password",
        "hidden",
        True,
    )
    bad = _with("oauth2_password", form_fields=[{"title": "t", "key": "k", "visibility": "ghost"}])
    assert _errors(bad) == ["form_fields[0].visibility"]


def test_repeated_field_keys_are_named() -> None:
    data = _with(
        "oauth2_authorization_code",
        additional_fields=[{"key": "pin", "value": "1"}, {"key": "pin", "value": "2"}],
    )
    assert _errors(data) == ["additional_fields[1].key"]


# -- several at once, parsing ----------------------------------------------------------------


def test_every_violation_is_reported_in_one_pass() -> None:
    data = {
        "name": "",
        "auth_type": "oauth2_authorization_code",
        "client_id": "x" * 256,
        "authorization_url": "ftp://nope",
        "token_url": "https://{tenant}.example.com/token",
        "tenancy": False,
        "additional_fields": [{"key": "pin"}],
        "authorization_fields": [{"key": "k"}],
        "form_fields": [{"key": "k"}],
    }
    fields = set(_errors(data))
    assert {
        "name",
        "client_id",
        "client_secret",
        "identity_provider",
        "authorization_url",
        "token_url",
        "additional_fields[0].value",
        "authorization_fields[0].type",
        "form_fields[0].title",
    } <= fields


def test_an_unknown_field_is_named() -> None:
    with pytest.raises(ValidationFailed) as exc:
        parse_draft({**VALID["oauth2_client_credentials"], "client_colour": "blue"})
    assert _fields_of(exc) == ["client_colour"]


def test_an_unknown_nested_field_is_named_with_its_path() -> None:
    with pytest.raises(ValidationFailed) as exc:
        parse_draft({"additional_fields": [{"key": "k", "value": "v", "colour": "x"}]})
    assert _fields_of(exc) == ["additional_fields[0].colour"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("client_id", 12345),
        ("tenancy", "perhaps"),
        ("pkce", {"on": True}),
        ("auth_error_status_code", "four-oh-one"),
        ("auth_error_status_code", "401"),
        ("pkce", "true"),
        ("additional_fields", "pin=1"),
        ("scopes", 7),
    ],
)
def test_a_wrong_json_type_is_named(field: str, value: Any) -> None:
    with pytest.raises(ValidationFailed) as exc:
        parse_draft({**VALID["oauth2_client_credentials"], field: value})
    assert set(_fields_of(exc)) == {field}


def test_scopes_may_be_a_space_separated_string_and_are_deduplicated() -> None:
    data = _with("oauth2_client_credentials", scopes="read write read")
    assert _validate(data).scopes == ("read", "write")


def test_a_scope_with_a_quote_is_refused() -> None:
    data = _with("oauth2_client_credentials", scopes=["ok", 'bad"one'])
    assert _errors(data) == ["scopes[1]"]


def test_auth_error_status_code_must_be_an_http_error_code() -> None:
    assert _validate(_with("oauth2_client_credentials", auth_error_status_code=403))
    assert _errors(_with("oauth2_client_credentials", auth_error_status_code=200)) == [
        "auth_error_status_code"
    ]


# -- status -------------------------------------------------------------------------------------


def _profile(definition: ProfileDefinition, **extra: Any) -> Profile:
    now = datetime.now(UTC)
    return Profile(
        **definition.model_dump(),
        id="p1",
        workspace_id="default",
        created_at=now,
        updated_at=now,
        **extra,
    )


def test_incomplete_profiles_may_be_kept_as_not_configured() -> None:
    definition = _validate(
        _without("oauth2_client_credentials", "client_secret"), require_complete=False
    )
    assert missing_fields(definition) == ["client_secret"]
    assert _profile(definition).status is ProfileStatus.NOT_CONFIGURED


def test_a_complete_profile_is_configured_and_a_refused_one_is_failing() -> None:
    definition = _validate(VALID["oauth2_client_credentials"])
    assert _profile(definition).status is ProfileStatus.CONFIGURED
    failing = _profile(definition, failing_reason="invalid_grant")
    assert failing.status is ProfileStatus.FAILING


def test_rules_other_than_completeness_still_apply_to_incomplete_profiles() -> None:
    data = _with("oauth2_client_credentials", client_id="x" * 256)
    del data["client_secret"]
    assert _errors(data, require_complete=False) == ["client_id"]


def test_an_incomplete_profile_may_keep_an_additional_field_whose_value_is_not_given_yet() -> None:
    data = _with("oauth2_client_credentials", additional_fields=[{"key": "pin"}])
    definition = _validate(data, require_complete=False)
    assert definition.additional_fields[0].key == "pin"
    assert missing_fields(definition) == ["additional_fields[0].value"]
    assert _profile(definition).status is ProfileStatus.NOT_CONFIGURED


# -- a placeholder in the host fills one label under a fixed domain ------------------------

HOST_FIELDS = {"form_fields": [{"title": k, "key": k} for k in ("host", "region", "a", "b", "p")]}


@pytest.mark.parametrize(
    "url",
    [
        "https://{tenant}.service-now.com/api",
        "https://api.{{region}}.example.com/v1",
        "https://{tenant}-eu.example.com/v1",
        "https://{tenant}.example.com:8443/v1",
    ],
)
@pytest.mark.parametrize("field", URL_FIELDS_ANY_TYPE)
def test_a_placeholder_may_fill_one_host_label_under_a_fixed_domain(field: str, url: str) -> None:
    data = _with("oauth2_authorization_code", tenancy=True, **HOST_FIELDS, **{field: url})
    assert getattr(_validate(data), field) == url


@pytest.mark.parametrize(
    "url",
    [
        "https://{{host}}/token",  # the whole host
        "https://{tenant}/token",
        "https://{{host}}:8443/token",
        "https://{tenant}.com/token",  # any .com domain
        "https://api{{host}}.com/token",
        "https://{tenant}.{{region}}.example.com/token",  # two labels
        "https://{{a}}{{b}}.example.com/token",
        "https://{tenant}.0.1/token",  # "127" makes it 127.0.0.1
        "https://{tenant}.example.0x7f/token",
        "https://api.example.com:{{p}}/token",  # the port
        "https://{tenant}.example.com:{{p}}/token",
    ],
)
@pytest.mark.parametrize("field", URL_FIELDS_ANY_TYPE)
def test_a_placeholder_may_not_pick_the_host_or_the_port(field: str, url: str) -> None:
    data = _with("oauth2_authorization_code", tenancy=True, **HOST_FIELDS, **{field: url})
    assert _errors(data) == [field]


def test_the_access_token_may_not_stand_in_the_host() -> None:
    data = _with("oauth2_client_credentials", api_base_url="https://{{access_token}}.example.com/")
    assert _errors(data) == ["api_base_url"]


# -- plain http only to loopback, unless allow_insecure_http -------------------------------

HTTPS_ONLY = (
    "authorization_url",
    "token_url",
    "refresh_token_url",
    "revocation_url",
    "api_base_url",
    "token_test_url",
)


@pytest.mark.parametrize(
    "url",
    [
        "http://api.example.com/x",
        "HTTP://api.example.com/x",
        "http://10.0.0.5/x",
        "http://0x7f.1/x",  # 127.0.0.1 to some resolvers, but not a loopback name or address
        "http://127.0.0.1.example.com/x",
        "http://localhost.example.com/x",
        "http://{tenant}.example.com/x",
    ],
)
@pytest.mark.parametrize("field", HTTPS_ONLY)
def test_http_is_refused_for_urls_that_carry_credentials(field: str, url: str) -> None:
    data = _with("oauth2_authorization_code", tenancy=True, **{field: url})
    with pytest.raises(ValidationFailed) as failed:
        _validate(data)
    assert _fields_of(failed) == [field]
    assert "allow_insecure_http" in failed.value.errors[0].message


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/x",
        "http://127.8.9.10/x",
        "http://[::1]:9000/x",
        "http://localhost/x",
        "http://LOCALHOST:8080/x",
        "http://idp.localhost:8080/x",
    ],
)
@pytest.mark.parametrize("field", HTTPS_ONLY)
def test_http_to_a_loopback_host_is_accepted(field: str, url: str) -> None:
    assert getattr(_validate(_with("oauth2_authorization_code", **{field: url})), field) == url


@pytest.mark.parametrize("field", HTTPS_ONLY)
def test_allow_insecure_http_accepts_http_to_any_host(field: str) -> None:
    url = "http://api.example.com/x"
    data = _with("oauth2_authorization_code", allow_insecure_http=True, **{field: url})
    definition = _validate(data)
    assert getattr(definition, field) == url
    assert definition.allow_insecure_http is True


def test_allow_insecure_http_is_off_by_default() -> None:
    assert _validate(VALID["oauth2_client_credentials"]).allow_insecure_http is False


def test_an_http_egress_proxy_is_accepted() -> None:
    """It tunnels https with CONNECT and sees nothing in clear."""
    data = _with("oauth2_client_credentials", egress_proxy_url="http://proxy.corp.example:3128")
    assert _validate(data).egress_proxy_url == "http://proxy.corp.example:3128"


def test_allow_insecure_http_must_be_a_boolean() -> None:
    with pytest.raises(ValidationFailed) as exc:
        parse_draft({**VALID["oauth2_client_credentials"], "allow_insecure_http": "yes"})
    assert _fields_of(exc) == ["allow_insecure_http"]


# -- names and display text refuse control and bidirectional characters --------------------

HIDDEN = [
    "\u202e",  # RIGHT-TO-LEFT OVERRIDE
    "\u202a",
    "\u2066",  # LEFT-TO-RIGHT ISOLATE
    "\u2069",
    "\u200e",  # LEFT-TO-RIGHT MARK
    "\u200f",
    "\u200b",  # ZERO WIDTH SPACE
    "\ufeff",
    "\x07",
    "\x1b",
    "\x7f",
    "\x85",
    "\u2028",
    "\n",
    "\t",
]


@pytest.mark.parametrize("char", HIDDEN, ids=lambda c: f"U+{ord(c):04X}")
def test_a_name_with_a_control_or_bidirectional_character_is_refused(char: str) -> None:
    with pytest.raises(ValidationFailed) as failed:
        _validate(_with("oauth2_client_credentials", name=f"pay{char}roll"))
    assert _fields_of(failed) == ["name"]
    assert f"U+{ord(char):04X}" in failed.value.errors[0].message
    assert char not in failed.value.errors[0].message


@pytest.mark.parametrize("char", HIDDEN, ids=lambda c: f"U+{ord(c):04X}")
def test_display_text_refuses_them_too(char: str) -> None:
    data = _with(
        "oauth2_password",
        identity_provider=f"Okta{char}x",
        form_fields=[{"title": f"PIN{char}x", "key": "pin", "hint": f"h{char}x"}],
    )
    assert set(_errors(data)) == {
        "identity_provider",
        "form_fields[0].title",
        "form_fields[0].hint",
    }


def test_a_description_keeps_line_breaks_and_tabs_but_not_bidirectional_overrides() -> None:
    ok = _with("oauth2_client_credentials", description="line one\r\n\tline two")
    assert _validate(ok).description == "line one\r\n\tline two"
    bad = _with("oauth2_client_credentials", description="line \u202eone")
    assert _errors(bad) == ["description"]


def test_names_in_any_script_are_accepted() -> None:
    name = "Café Ünïcode 日本語 עברית"
    assert _validate(_with("oauth2_client_credentials", name=name)).name == name


# -- sizes ---------------------------------------------------------------------------------

LISTS = {
    "additional_fields": lambda i: {"key": f"k{i}", "value": "v"},
    "authorization_fields": lambda i: {"type": "header", "key": f"k{i}", "value": "v"},
    "form_fields": lambda i: {"title": "t", "key": f"k{i}"},
}


@pytest.mark.parametrize("field", list(LISTS))
def test_at_most_100_fields_of_each_kind(field: str) -> None:
    entries = [LISTS[field](i) for i in range(MAX_FIELDS)]
    assert len(getattr(_validate(_with("oauth2_password", **{field: entries})), field)) == 100
    too_many = [LISTS[field](i) for i in range(10_000)]
    with pytest.raises(ValidationFailed) as failed:
        _validate(_with("oauth2_password", **{field: too_many}))
    assert _fields_of(failed) == [field]
    assert "at most 100" in failed.value.errors[0].message


@pytest.mark.parametrize("field", ["additional_fields", "authorization_fields"])
def test_a_field_value_is_at_most_4096_characters_and_never_echoed(field: str) -> None:
    fits = [{**LISTS[field](0), "value": "v" * MAX_FIELD_VALUE_LENGTH}]
    assert _validate(_with("oauth2_client_credentials", **{field: fits}))
    huge = [{**LISTS[field](0), "value": "secret-" + "v" * 10_000_000}]
    with pytest.raises(ValidationFailed) as failed:
        _validate(_with("oauth2_client_credentials", **{field: huge}))
    assert _fields_of(failed) == [f"{field}[0].value"]
    assert "secret-" not in failed.value.errors[0].message + failed.value.detail


@pytest.mark.parametrize("field", list(LISTS))
def test_a_field_key_is_at_most_100_characters(field: str) -> None:
    data = _with("oauth2_password", **{field: [{**LISTS[field](0), "key": "k" * 101}]})
    with pytest.raises(ValidationFailed) as failed:
        _validate(data)
    assert _fields_of(failed) == [f"{field}[0].key"]
    assert len(failed.value.errors[0].message) < 200


def test_form_field_texts_have_limits() -> None:
    data = _with(
        "oauth2_password",
        form_fields=[
            {
                "title": "t" * (MAX_SHORT_TEXT_LENGTH + 1),
                "key": "k",
                "hint": "h" * (MAX_TEXT_LENGTH + 1),
                "data_type": "d" * (MAX_SHORT_TEXT_LENGTH + 1),
            }
        ],
    )
    assert set(_errors(data)) == {
        "form_fields[0].title",
        "form_fields[0].hint",
        "form_fields[0].data_type",
    }


def test_at_most_100_scopes_of_at_most_255_characters() -> None:
    scopes = [f"s{i}" for i in range(MAX_SCOPES)]
    assert len(_validate(_with("oauth2_client_credentials", scopes=scopes)).scopes) == 100
    assert _errors(_with("oauth2_client_credentials", scopes=[*scopes, "one-more"])) == ["scopes"]
    as_text = " ".join(f"s{i}" for i in range(10_000))
    assert _errors(_with("oauth2_client_credentials", scopes=as_text)) == ["scopes"]
    long_scope = _with("oauth2_client_credentials", scopes=["ok", "s" * (MAX_SCOPE_LENGTH + 1)])
    assert _errors(long_scope) == ["scopes[1]"]


def test_the_password_is_at_most_1024_characters_and_never_echoed() -> None:
    fits = _with("oauth2_password", username="u", password="p" * MAX_PASSWORD_LENGTH)
    assert _validate(fits).password
    data = _with("oauth2_password", username="u", password="hunter2-" + "p" * 5000)
    with pytest.raises(ValidationFailed) as failed:
        _validate(data)
    assert _fields_of(failed) == ["password"]
    assert "hunter2" not in failed.value.errors[0].message


def test_the_username_is_at_most_255_characters() -> None:
    data = _with("oauth2_password", username="u" * (MAX_CLIENT_CREDENTIAL_LENGTH + 1))
    assert _errors(data) == ["username"]


def test_a_huge_wrong_choice_is_not_repeated_in_the_error() -> None:
    with pytest.raises(ValidationFailed) as failed:
        _validate(_with("oauth2_client_credentials", client_auth_method="x" * 1_000_000))
    assert _fields_of(failed) == ["client_auth_method"]
    assert len(failed.value.errors[0].message) < 200
