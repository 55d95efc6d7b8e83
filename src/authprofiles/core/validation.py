"""The seeds' rules for a profile, in one place. Every violation is reported at once.

The API, the CLI's import and the future web UI all call :func:`validate_draft`;
none of them repeats a rule.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError

from authprofiles.core.errors import FieldError, ValidationFailed
from authprofiles.core.profiles import (
    URL_FIELDS,
    AdditionalField,
    AuthorizationField,
    AuthorizationMode,
    AuthType,
    ClientAuthMethod,
    FieldLocation,
    FormField,
    FormFieldType,
    FormFieldVisibility,
    HttpMethod,
    ProfileDefinition,
    TestContentType,
)
from authprofiles.core.templating import BUILTIN_FIELDS, find_placeholders

MAX_CLIENT_CREDENTIAL_LENGTH = 255  # seeds 001 and 002: "a maximum length of 255 characters"
MAX_URL_LENGTH = 3000  # seeds 001 and 002: "a valid URL with a maximum length of 3000 characters"
MAX_NAME_LENGTH = 100
MAX_TEXT_LENGTH = 2000
_FIELD_KEY = re.compile(r"^[A-Za-z0-9_.\-]+$")
# RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")

#: Seed 000: "Except for Scope, Description, Refresh Token URL, Additional fields,
#: Authorization fields, and Auth Error Status Code, all the fields are mandatory."
#: Authorization URL and the tenancy choice apply to authorization code only; the password
#: grant adds seed 003's authorization mode and token test URL, method and content type.
MANDATORY_FIELDS: dict[AuthType, tuple[str, ...]] = {
    AuthType.AUTHORIZATION_CODE: (
        "identity_provider",
        "client_id",
        "client_secret",
        "authorization_url",
        "tenancy",
        "token_url",
    ),
    AuthType.CLIENT_CREDENTIALS: ("identity_provider", "client_id", "client_secret", "token_url"),
    AuthType.PASSWORD: (
        "identity_provider",
        "client_id",
        "client_secret",
        "token_url",
        "authorization_mode",
        "token_test_url",
        "token_test_method",
        "token_test_content_type",
    ),
}

_LABELS: dict[str, str] = {
    "identity_provider": "Identity provider name",
    "client_id": "Client ID",
    "client_secret": "Client secret",
    "authorization_url": "Authorization URL",
    "tenancy": "The tenancy choice (does any URL need a tenant?)",
    "token_url": "Token request URL",
    "authorization_mode": "Authorization mode (user or preauthorized)",
    "token_test_url": "Token test URL",
    "token_test_method": "Token test URL method",
    "token_test_content_type": "Token test URL content type",
}


class _Lenient(BaseModel):
    # Everything optional, so one pass can report every problem. Strict: a JSON value of
    # the wrong type ("401" for a number, "yes" for a boolean) is named, not coerced.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)


class AdditionalFieldDraft(_Lenient):
    key: str | None = None
    value: str | None = None


class AuthorizationFieldDraft(_Lenient):
    type: str | None = None
    key: str | None = None
    value: str | None = None


class FormFieldDraft(_Lenient):
    title: str | None = None
    key: str | None = None
    hint: str | None = None
    type: str | None = None
    mandatory: bool | None = None
    data_type: str | None = None
    visibility: str | None = None


class ProfileDraft(_Lenient):
    """A profile as submitted: any subset of the fields, not yet checked."""

    name: str | None = None
    auth_type: str | None = None
    identity_provider: str | None = None
    description: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    authorization_url: str | None = None
    token_url: str | None = None
    refresh_token_url: str | None = None
    revocation_url: str | None = None
    api_base_url: str | None = None
    egress_proxy_url: str | None = None
    scopes: list[str] | str | None = None
    pkce: bool | None = None
    client_auth_method: str | None = None
    tenancy: bool | None = None
    authorization_mode: str | None = None
    username: str | None = None
    password: str | None = None
    additional_fields: list[AdditionalFieldDraft] | None = None
    authorization_fields: list[AuthorizationFieldDraft] | None = None
    form_fields: list[FormFieldDraft] | None = None
    token_test_url: str | None = None
    token_test_method: str | None = None
    token_test_content_type: str | None = None
    auth_error_status_code: int | None = None


def parse_draft(data: dict[str, Any]) -> ProfileDraft:
    """Parse raw input; wrong JSON types and unknown fields become named field errors."""
    try:
        return ProfileDraft.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(
            [
                FieldError(
                    field_path(err["loc"], keep_last=err["type"] == "extra_forbidden"),
                    _pydantic_message(err),
                )
                for err in exc.errors()
            ]
        ) from None


def _is_union_tag(part: str) -> bool:
    # pydantic names the union member it tried in the location ("str", "list[str]",
    # "constrained-str", "function-after[...]"); people do not need them.
    return (
        part in ("str", "int", "bool", "float", "list", "dict")
        or "[" in part
        or part.startswith(("constrained-", "function-"))
    )


def field_path(loc: tuple[int | str, ...], *, keep_last: bool = False) -> str:
    """A pydantic error location as a dotted path, e.g. ``additional_fields[0].key``.

    ``keep_last`` keeps the last part verbatim: an unknown field is named as sent.
    """
    out = ""
    for index, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif _is_union_tag(part) and not (keep_last and index == len(loc) - 1):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def _pydantic_message(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "is not a profile field"
    return str(err["msg"])


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _enum_error(field: str, value: str, enum: type[Any]) -> FieldError:
    allowed = ", ".join(str(m.value) for m in enum)
    return FieldError(field, f"{value!r} is not one of: {allowed}")


def validate_draft(draft: ProfileDraft, *, require_complete: bool = True) -> ProfileDefinition:
    """Check every rule and return the typed definition, or raise with every violation.

    ``require_complete=False`` accepts a profile with mandatory fields still empty (an import
    without secrets, a draft); it is stored with the status ``not_configured``.
    """
    errors: list[FieldError] = []

    if _blank(draft.name):
        errors.append(FieldError("name", "Name is required"))
    elif draft.name is not None and len(draft.name) > MAX_NAME_LENGTH:
        errors.append(FieldError("name", f"Name must be at most {MAX_NAME_LENGTH} characters"))

    auth_type: AuthType | None = None
    if _blank(draft.auth_type):
        errors.append(FieldError("auth_type", "Authorization type is required"))
    else:
        try:
            auth_type = AuthType(str(draft.auth_type))
        except ValueError:
            errors.append(_enum_error("auth_type", str(draft.auth_type), AuthType))

    for field in ("client_id", "client_secret"):
        value = getattr(draft, field)
        if value is not None and len(value) > MAX_CLIENT_CREDENTIAL_LENGTH:
            errors.append(
                FieldError(
                    field,
                    f"must be at most {MAX_CLIENT_CREDENTIAL_LENGTH} characters (got {len(value)})",
                )
            )
    for field in ("identity_provider", "username"):
        value = getattr(draft, field)
        if value is not None and len(value) > MAX_CLIENT_CREDENTIAL_LENGTH:
            errors.append(
                FieldError(field, f"must be at most {MAX_CLIENT_CREDENTIAL_LENGTH} characters")
            )
    if draft.description is not None and len(draft.description) > MAX_TEXT_LENGTH:
        errors.append(FieldError("description", f"must be at most {MAX_TEXT_LENGTH} characters"))

    enums: dict[str, Any] = {}
    for field, enum in (
        ("client_auth_method", ClientAuthMethod),
        ("authorization_mode", AuthorizationMode),
        ("token_test_method", HttpMethod),
        ("token_test_content_type", TestContentType),
    ):
        raw = getattr(draft, field)
        if _blank(raw):
            continue
        candidate = raw.upper() if enum is HttpMethod else raw
        try:
            enums[field] = enum(candidate)
        except ValueError:
            errors.append(_enum_error(field, raw, enum))

    if draft.auth_error_status_code is not None and not (
        400 <= draft.auth_error_status_code <= 599
    ):
        errors.append(
            FieldError(
                "auth_error_status_code",
                "must be an HTTP error status code between 400 and 599",
            )
        )

    scopes = _normalise_scopes(draft.scopes, errors)
    additional = _check_additional_fields(
        draft.additional_fields or [], errors, require_value=require_complete
    )
    authorization = _check_authorization_fields(draft.authorization_fields or [], errors)
    form = _check_form_fields(draft.form_fields or [], errors)

    tenancy = draft.tenancy
    defined_keys = {f.key for f in additional} | {f.key for f in authorization}
    defined_keys |= {f.key for f in form}
    _check_urls(draft, tenancy=bool(tenancy), defined_keys=defined_keys, errors=errors)
    _check_value_placeholders(authorization, defined_keys, errors)

    if auth_type is not None and require_complete:
        present = {
            "tenancy": tenancy is not None,
            **{
                f: not _blank(getattr(draft, f))
                for f in MANDATORY_FIELDS[auth_type]
                if f != "tenancy"
            },
        }
        for field in MANDATORY_FIELDS[auth_type]:
            if not present[field]:
                errors.append(
                    FieldError(
                        field, f"{_LABELS[field]} is required for {auth_type.value} profiles"
                    )
                )

    if errors:
        raise ValidationFailed(errors)
    assert auth_type is not None and draft.name is not None

    return ProfileDefinition(
        name=draft.name,
        auth_type=auth_type,
        identity_provider=_none_if_blank(draft.identity_provider),
        description=_none_if_blank(draft.description),
        client_id=_none_if_blank(draft.client_id),
        client_secret=draft.client_secret or None,
        authorization_url=_none_if_blank(draft.authorization_url),
        token_url=_none_if_blank(draft.token_url),
        refresh_token_url=_none_if_blank(draft.refresh_token_url),
        revocation_url=_none_if_blank(draft.revocation_url),
        api_base_url=_none_if_blank(draft.api_base_url),
        egress_proxy_url=_none_if_blank(draft.egress_proxy_url),
        scopes=scopes,
        pkce=True if draft.pkce is None else draft.pkce,
        client_auth_method=enums.get("client_auth_method", ClientAuthMethod.CLIENT_SECRET_BASIC),
        tenancy=tenancy,
        authorization_mode=enums.get("authorization_mode"),
        username=_none_if_blank(draft.username),
        password=draft.password or None,
        additional_fields=additional,
        authorization_fields=authorization,
        form_fields=form,
        token_test_url=_none_if_blank(draft.token_test_url),
        token_test_method=enums.get("token_test_method"),
        token_test_content_type=enums.get("token_test_content_type"),
        auth_error_status_code=draft.auth_error_status_code,
    )


def missing_fields(definition: ProfileDefinition) -> list[str]:
    """Mandatory fields still empty; a profile with none is ``configured``."""
    missing = []
    for field in MANDATORY_FIELDS[definition.auth_type]:
        value = getattr(definition, field)
        if value is None or value == "":
            missing.append(field)
    # Seed 000: an additional field's value is required; an incomplete profile (e.g. one
    # imported without secrets) keeps the key with an empty value until it is given.
    for i, item in enumerate(definition.additional_fields):
        if item.value == "":
            missing.append(f"additional_fields[{i}].value")
    return missing


def _none_if_blank(value: str | None) -> str | None:
    return None if _blank(value) else value


def _normalise_scopes(raw: list[str] | str | None, errors: list[FieldError]) -> tuple[str, ...]:
    if raw is None:
        return ()
    # RFC 6749 section 3.3: a space-delimited list; accept it as one string or as a list.
    items = raw.split() if isinstance(raw, str) else [s.strip() for s in raw]
    scopes: list[str] = []
    for index, scope in enumerate(items):
        if not _SCOPE_TOKEN.match(scope):
            errors.append(
                FieldError(
                    f"scopes[{index}]",
                    f"{scope!r} is not a valid scope: no spaces, quotes or backslashes",
                )
            )
        elif scope not in scopes:
            scopes.append(scope)
    return tuple(scopes)


def _check_key(field: str, key: str | None, errors: list[FieldError]) -> bool:
    if _blank(key):
        errors.append(FieldError(field, "Field key is required"))
        return False
    assert key is not None
    if not _FIELD_KEY.match(key):
        errors.append(FieldError(field, f"{key!r} may hold only letters, digits, '_', '-' and '.'"))
        return False
    return True


def _check_additional_fields(
    items: list[AdditionalFieldDraft], errors: list[FieldError], *, require_value: bool
) -> tuple[AdditionalField, ...]:
    out: list[AdditionalField] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        ok = _check_key(f"additional_fields[{i}].key", item.key, errors)
        if require_value and (item.value is None or item.value == ""):
            errors.append(FieldError(f"additional_fields[{i}].value", "Field value is required"))
            ok = False
        if ok and item.key in seen:
            errors.append(FieldError(f"additional_fields[{i}].key", f"{item.key!r} is repeated"))
            ok = False
        if ok:
            assert item.key is not None
            seen.add(item.key)
            # An empty value is "not set yet" (see missing_fields).
            out.append(AdditionalField(key=item.key, value=item.value or ""))
    return tuple(out)


def _check_authorization_fields(
    items: list[AuthorizationFieldDraft], errors: list[FieldError]
) -> tuple[AuthorizationField, ...]:
    out: list[AuthorizationField] = []
    seen: set[tuple[str, str]] = set()
    for i, item in enumerate(items):
        ok = True
        location: FieldLocation | None = None
        if _blank(item.type):
            errors.append(FieldError(f"authorization_fields[{i}].type", "Field type is required"))
            ok = False
        else:
            try:
                location = FieldLocation(str(item.type))
            except ValueError:
                errors.append(
                    _enum_error(f"authorization_fields[{i}].type", str(item.type), FieldLocation)
                )
                ok = False
        ok = _check_key(f"authorization_fields[{i}].key", item.key, errors) and ok
        if ok:
            assert location is not None and item.key is not None
            if (location.value, item.key) in seen:
                errors.append(
                    FieldError(f"authorization_fields[{i}].key", f"{item.key!r} is repeated")
                )
                continue
            seen.add((location.value, item.key))
            out.append(AuthorizationField(type=location, key=item.key, value=item.value or None))
    return tuple(out)


def _check_form_fields(
    items: list[FormFieldDraft], errors: list[FieldError]
) -> tuple[FormField, ...]:
    out: list[FormField] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        ok = True
        if _blank(item.title):
            errors.append(FieldError(f"form_fields[{i}].title", "Title of field is required"))
            ok = False
        ok = _check_key(f"form_fields[{i}].key", item.key, errors) and ok
        kind, visibility = FormFieldType.TEXTBOX, FormFieldVisibility.VISIBLE
        if not _blank(item.type):
            try:
                kind = FormFieldType(str(item.type))
            except ValueError:
                errors.append(_enum_error(f"form_fields[{i}].type", str(item.type), FormFieldType))
                ok = False
        if not _blank(item.visibility):
            try:
                visibility = FormFieldVisibility(str(item.visibility))
            except ValueError:
                errors.append(
                    _enum_error(
                        f"form_fields[{i}].visibility", str(item.visibility), FormFieldVisibility
                    )
                )
                ok = False
        if ok and item.key in seen:
            errors.append(FieldError(f"form_fields[{i}].key", f"{item.key!r} is repeated"))
            ok = False
        if ok:
            assert item.title is not None and item.key is not None
            seen.add(item.key)
            out.append(
                FormField(
                    title=item.title,
                    key=item.key,
                    hint=item.hint or "",
                    type=kind,
                    mandatory=bool(item.mandatory),
                    data_type=item.data_type or "string",
                    visibility=visibility,
                )
            )
    return tuple(out)


def check_url(
    field: str,
    value: str,
    *,
    tenancy: bool,
    defined_keys: set[str],
    allow_builtins: bool,
) -> list[FieldError]:
    """One URL: length, http(s), known placeholders only, ``{tenant}`` only with tenancy."""
    errors: list[FieldError] = []
    if len(value) > MAX_URL_LENGTH:
        errors.append(
            FieldError(field, f"must be at most {MAX_URL_LENGTH} characters (got {len(value)})")
        )
        return errors
    found = find_placeholders(value)
    if found.unknown_braces:
        errors.append(
            FieldError(field, "only {tenant} and {{field}} placeholders may appear in braces")
        )
    if found.tenant and not tenancy:
        errors.append(
            FieldError(field, "uses {tenant} but tenancy is off: set tenancy to true or remove it")
        )
    known = defined_keys | (BUILTIN_FIELDS if allow_builtins else set())
    for key in found.fields:
        if key not in known:
            errors.append(
                FieldError(
                    field,
                    f"{{{{{key}}}}} names no field of this profile: add it as a form, "
                    "additional or authorization field",
                )
            )
    # Placeholders stand for one DNS label or one path segment; test with a sample value.
    sample = value.replace("{tenant}", "tenant")
    for key in found.fields:
        sample = re.sub(r"\{\{\s*" + re.escape(key) + r"\s*\}\}", "x", sample)
    try:
        parts = urlsplit(sample)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        parts, port_ok = None, False
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        shown = "this" if "@" in value else repr(value)  # never echo what may be a password
        errors.append(FieldError(field, f"{shown} is not a valid http or https URL"))
    elif any(c.isspace() for c in sample):
        errors.append(FieldError(field, "a URL may not contain spaces"))
    elif "@" in parts.netloc:
        # URLs are stored and shown as they are; a password in one would be neither
        # encrypted nor hidden.
        errors.append(
            FieldError(field, "a URL may not carry credentials (user:password@ before the host)")
        )
    return errors


def _check_urls(
    draft: ProfileDraft, *, tenancy: bool, defined_keys: set[str], errors: list[FieldError]
) -> None:
    for field in URL_FIELDS:
        value = getattr(draft, field)
        if _blank(value):
            continue
        errors.extend(
            check_url(
                field,
                value,
                tenancy=tenancy,
                defined_keys=defined_keys,
                # A token exists only when the API or the test URL is called.
                allow_builtins=field in ("api_base_url", "token_test_url"),
            )
        )


def _check_value_placeholders(
    fields: tuple[AuthorizationField, ...], defined_keys: set[str], errors: list[FieldError]
) -> None:
    from authprofiles.core.templating import FIELD_PATTERN

    known = defined_keys | BUILTIN_FIELDS
    for i, field in enumerate(fields):
        for key in FIELD_PATTERN.findall(field.value or ""):
            if key not in known:
                errors.append(
                    FieldError(
                        f"authorization_fields[{i}].value",
                        f"{{{{{key}}}}} names no field of this profile",
                    )
                )
