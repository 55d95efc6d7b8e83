"""The seeds' rules for a profile, in one place. Every violation is reported at once.

The API, the CLI's import and the future web UI all call :func:`validate_draft`;
none of them repeats a rule.
"""

from __future__ import annotations

import copy
import ipaddress
import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import BaseModel, ConfigDict, ValidationError

from authprofiles.core.auth_types import AUTH_TYPES, spec_for
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
from authprofiles.core.templating import (
    BUILTIN_FIELDS,
    FIELD_PATTERN,
    find_placeholders,
    host_placeholder_problem,
    is_valid_tenant,
)

MAX_CLIENT_CREDENTIAL_LENGTH = 255  # seeds 001 and 002: "a maximum length of 255 characters"
MAX_URL_LENGTH = 3000  # seeds 001 and 002: "a valid URL with a maximum length of 3000 characters"
MAX_NAME_LENGTH = 100
MAX_TEXT_LENGTH = 2000
# Sizes no one configuring an integration comes near, which keep a profile from growing to
# megabytes that are stored, encrypted, and decrypted again on every token and proxy call.
#: Entries in each of additional_fields, authorization_fields and form_fields.
MAX_FIELDS = 100
#: A field key: it names a header, a query or form parameter, a JSON member or a placeholder.
MAX_FIELD_KEY_LENGTH = 100
#: An additional or authorization field value: an API key, an id, a static header value.
#: Most servers take a whole header line of 8 KB at most, so a longer value could not be
#: sent in a header anyway.
MAX_FIELD_VALUE_LENGTH = 4096
#: RFC 6749 section 3.3 sets no limit; identity providers publish tens of scopes, each a
#: name or a URL well under 255 characters.
MAX_SCOPES = 100
MAX_SCOPE_LENGTH = 255
#: The password grant's stored password (RFC 6749 section 4.3.2); long passphrases fit.
MAX_PASSWORD_LENGTH = 1024
#: A form field's title and data type: one line of a form.
MAX_SHORT_TEXT_LENGTH = 255
#: A PEM private key for private_key_jwt. An 8192-bit RSA key takes about 6,400
#: characters, EC keys a few hundred; a longer one would be checked at length on every
#: change for no gain in safety.
MAX_PRIVATE_KEY_LENGTH = 8192
#: RFC 7518 section 3.3 (RS256 and its kin): "A key of size 2048 bits or larger MUST be
#: used with these algorithms."
MIN_RSA_KEY_BITS = 2048
#: The curves of RFC 7518 section 3.4's ES256, ES384 and ES512, by their SEC 2 names.
SIGNING_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})

_FIELD_KEY = re.compile(r"^[A-Za-z0-9_.\-]+$")
# RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")
# Unicode general categories refused in names and other text people read: controls (Cc),
# format characters (Cf: the bidirectional embeddings and overrides U+202A-U+202E and
# isolates U+2066-U+2069, the marks U+200E and U+200F, zero-width characters),
# surrogates (Cs, which no UTF-8 text can hold) and the line and paragraph separators
# (Zl, Zp). They make a name read differently from how it is stored and compared ("Trojan
# Source", CVE-2021-42574), or break the line it is shown on.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_MULTILINE_CONTROLS = frozenset("\n\r\t")

#: URLs that carry a client secret, a token or a user's password, or (the authorization
#: URL) the page where the user signs in: over plain http:// anyone on the way reads them.
#: RFC 6749 section 3.2: "requests to the token endpoint result in the transmission of
#: clear-text credentials ... the authorization server MUST require the use of TLS";
#: RFC 6750 section 5.3: "Always use TLS (https)" when a bearer token is sent.
#: The egress proxy is left out: an http:// forward proxy tunnels each https:// request
#: with CONNECT (RFC 9110 section 9.3.6) and sees nothing of it in clear; http:// targets
#: are held to this rule themselves, and the proxy URL may not carry credentials.
HTTPS_ONLY_URL_FIELDS: frozenset[str] = frozenset(
    {
        "issuer",
        "authorization_url",
        "device_authorization_url",
        "token_url",
        "refresh_token_url",
        "revocation_url",
        "api_base_url",
        "token_test_url",
    }
)

#: What each auth type needs, from the registry of auth types (``core.auth_types``):
#: the fields a complete profile sets, those the token test URL brings with it, and those
#: an authorization mode adds. Seed 003's token test URL is optional ("optionally define a
#: URL to test the authorization settings"), for every type.
MANDATORY_FIELDS: dict[AuthType, tuple[str, ...]] = {s.auth_type: s.mandatory for s in AUTH_TYPES}


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
    issuer: str | None = None
    authorization_url: str | None = None
    device_authorization_url: str | None = None
    token_url: str | None = None
    refresh_token_url: str | None = None
    revocation_url: str | None = None
    api_base_url: str | None = None
    egress_proxy_url: str | None = None
    allow_insecure_http: bool | None = None
    scopes: list[str] | str | None = None
    pkce: bool | None = None
    client_auth_method: str | None = None
    private_key: str | None = None
    private_key_id: str | None = None
    client_assertion_audience: str | None = None
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
    """Parse raw input; wrong JSON types and unknown fields become named field errors
    (:func:`check_profile_input` reports them with the rules the rest breaks)."""
    try:
        return ProfileDraft.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(input_errors(exc.errors(), unknown=_NOT_A_PROFILE_FIELD)) from None


_Model = TypeVar("_Model", bound=BaseModel)
_NOT_A_PROFILE_FIELD = "is not a profile field"


def parse_what_parses(
    model: type[_Model],
    data: dict[str, Any],
    *,
    unknown: str = "is not a known field",
    stand_ins: dict[str, Any] | None = None,
) -> tuple[_Model, list[FieldError]]:
    """Parse ``data`` as ``model`` leaving out what does not parse: the model made of the
    rest, and an error naming each value left out (a wrong JSON type, an unknown field).

    This is how one answer can name the wrong types together with the rules the rest
    breaks. A value of a wrong type goes, or its item of a list becomes ``{}``; a
    top-level field named in ``stand_ins`` takes the value given there instead, chosen so
    that no rule is reported that the intended value might have kept.
    """
    remaining = copy.deepcopy(data)
    errors: list[FieldError] = []
    first = True
    while True:
        try:
            return model.model_validate(remaining), errors
        except ValidationError as exc:
            before = copy.deepcopy(remaining)
            if first:
                errors = input_errors(exc.errors(), unknown=unknown)
            for err in exc.errors():
                loc = tuple(err["loc"])
                _leave_out(remaining, loc, whole_field=not first, stand_ins=stand_ins or {})
            if remaining == before:  # an error about no field: nothing left to leave out
                raise ValidationFailed(errors) from None
            first = False


def _leave_out(
    data: dict[str, Any],
    loc: tuple[int | str, ...],
    *,
    whole_field: bool,
    stand_ins: dict[str, Any],
) -> None:
    """Take the value at ``loc`` out of ``data``: the nearest value that holds it, from a
    dict, or (an item of a list) in place as ``{}``; or with ``whole_field``, the top-level
    field, which ends any round of parsing that still fails (the last resort)."""
    if not loc or not isinstance(loc[0], str):
        return
    top = loc[0]
    if whole_field or len(loc) == 1:
        if top in stand_ins and not whole_field:
            data[top] = stand_ins[top]
        else:
            data.pop(top, None)
        return
    parent: Any = data
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if isinstance(parent, dict) and isinstance(part, str) and part in parent:
            if last:
                del parent[part]
                return
            parent = parent[part]
        elif isinstance(parent, list) and isinstance(part, int) and 0 <= part < len(parent):
            if last or not isinstance(parent[part], dict):
                parent[part] = {}
                return
            parent = parent[part]
        elif isinstance(part, str) and _is_union_tag(part):
            continue  # pydantic names the member of a union it tried; the data has no such key
        else:
            break
    data.pop(top, None)


#: pydantic's error types for a value of the wrong type, as the JSON type that was wanted.
_JSON_TYPES = {
    "string_type": "a string",
    "bool_type": "true or false",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "list_type": "an array",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
}


def json_type_of(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def input_message(err: Any) -> str:
    """A pydantic error on JSON input, in the words of JSON: ``must be true or false, not a
    string``. Never quotes the value: it may be a secret."""
    wanted = _JSON_TYPES.get(err["type"])
    if wanted is None:
        if err["type"] == "missing":
            return "is required"
        return str(err["msg"])
    return f"must be {wanted}, not {json_type_of(err.get('input'))}"


def input_errors(
    errors: Sequence[Any], *, unknown: str = "is not a known field", skip: int = 0
) -> list[FieldError]:
    """pydantic's errors on JSON input, each named by its path (the first ``skip`` parts
    of its location left out). A value that fits none of the types of a union is one
    error naming them all: ``must be a string or an array, not a number``."""
    out: list[FieldError | None] = []
    #: For each field of the wrong type: where its error goes, the types wanted, what came.
    wrong_type: dict[str, tuple[int, list[str], str]] = {}
    for err in errors:
        loc = tuple(err["loc"])[skip:]
        extra = err["type"] == "extra_forbidden"
        field = field_path(loc, keep_last=extra)
        wanted = _JSON_TYPES.get(err["type"])
        if wanted is None:
            out.append(FieldError(field, unknown if extra else input_message(err)))
            continue
        if field not in wrong_type:
            wrong_type[field] = (len(out), [], json_type_of(err.get("input")))
            out.append(None)
        types = wrong_type[field][1]
        if wanted not in types:
            types.append(wanted)
    for field, (index, types, got) in wrong_type.items():
        out[index] = FieldError(field, f"must be {' or '.join(types)}, not {got}")
    return [e for e in out if e is not None]


def covered(errors: list[FieldError], by: list[FieldError]) -> list[FieldError]:
    """``errors`` less those about a field ``by`` already names, or about a part of one:
    a value left out for its wrong type is not also "required", nor are its parts."""
    named = {e.field for e in by}

    def about_named(field: str) -> bool:
        return any(field == n or field.startswith((n + ".", n + "[")) for n in named)

    return [e for e in errors if not about_named(e.field)]


#: What a top-level field of the wrong type is checked as: tenancy and allow_insecure_http
#: at their most permissive, so that the URLs are not also refused for `{tenant}` or
#: http:// when the value meant was true.
_PERMISSIVE_STAND_INS: dict[str, Any] = {"tenancy": True, "allow_insecure_http": True}


def check_profile_input(
    data: dict[str, Any], *, require_complete: bool = True
) -> ProfileDefinition:
    """:func:`parse_draft` and :func:`validate_draft` in one, with every problem reported
    at once: the values of a wrong JSON type (and unknown fields) together with the rules
    the rest of the input breaks."""
    draft, type_errors = parse_what_parses(
        ProfileDraft, data, unknown=_NOT_A_PROFILE_FIELD, stand_ins=_PERMISSIVE_STAND_INS
    )
    try:
        definition = validate_draft(draft, require_complete=require_complete)
    except ValidationFailed as exc:
        raise ValidationFailed(type_errors + covered(exc.errors, type_errors)) from None
    if type_errors:
        raise ValidationFailed(type_errors)
    return definition


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


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _shown(value: str, limit: int = 40) -> str:
    """A value quoted in a message, cut short: an error never repeats megabytes."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


def _enum_error(field: str, value: str, enum: type[Any]) -> FieldError:
    allowed = ", ".join(str(m.value) for m in enum)
    return FieldError(field, f"{_shown(value)} is not one of: {allowed}")


def hidden_character(value: str, *, multiline: bool) -> str | None:
    """The first control or invisible formatting character in text people read, if any."""
    for char in value:
        if multiline and char in _MULTILINE_CONTROLS:
            continue
        if unicodedata.category(char) in _HIDDEN_CATEGORIES:
            return f"U+{ord(char):04X}"
    return None


def _check_text(
    errors: list[FieldError],
    field: str,
    value: str | None,
    *,
    max_length: int,
    shown: bool = False,
    multiline: bool = False,
) -> bool:
    """A text input's length and, for text people read (``shown``), its characters.

    Never echoes the value: some of these are secrets.
    """
    if value is None:
        return True
    if len(value) > max_length:
        errors.append(
            FieldError(field, f"must be at most {max_length} characters (got {len(value)})")
        )
        return False
    hidden = hidden_character(value, multiline=multiline) if shown else None
    if hidden:
        errors.append(
            FieldError(
                field,
                f"may not hold control or invisible formatting characters (found {hidden}), "
                "such as the bidirectional overrides that make text read differently "
                "from how it is stored",
            )
        )
        return False
    return True


_Item = TypeVar("_Item")


def _at_most_fields(field: str, items: Sequence[_Item], errors: list[FieldError]) -> list[_Item]:
    """The list, or its first ``MAX_FIELDS`` entries (checked as usual) with an error."""
    if len(items) > MAX_FIELDS:
        errors.append(FieldError(field, f"may hold at most {MAX_FIELDS} fields (got {len(items)})"))
    return list(items[:MAX_FIELDS])


def required_fields(
    auth_type: AuthType,
    is_set: Callable[[str], bool],
    mode: AuthorizationMode | None = None,
    *,
    client_auth_method: ClientAuthMethod = ClientAuthMethod.CLIENT_SECRET_BASIC,
) -> tuple[str, ...]:
    """The fields a complete profile of this type sets, given which fields are set and its
    authorization mode: what a ``configured`` profile needs to be connected with nothing
    more than a person connecting is asked for (a tenant, form fields, and in user mode
    their own username and password)."""
    required = with_client_credential(MANDATORY_FIELDS[auth_type], client_auth_method)
    if mode is not None:
        required += spec_for(auth_type).mandatory_in_mode.get(mode.value, ())
    if is_set("token_test_url"):
        required += spec_for(auth_type).mandatory_with_token_test_url
    return required


def validate_draft(draft: ProfileDraft, *, require_complete: bool = True) -> ProfileDefinition:
    """Check every rule and return the typed definition, or raise with every violation.

    ``require_complete=False`` accepts a profile with mandatory fields still empty (an import
    without secrets, a draft); it is stored with the status ``not_configured``.
    """
    errors: list[FieldError] = []

    if _blank(draft.name):
        errors.append(FieldError("name", "Name is required"))
    else:
        _check_text(errors, "name", draft.name, max_length=MAX_NAME_LENGTH, shown=True)

    auth_type: AuthType | None = None
    if _blank(draft.auth_type):
        errors.append(FieldError("auth_type", "Authorization type is required"))
    else:
        try:
            auth_type = AuthType(str(draft.auth_type))
        except ValueError:
            errors.append(_enum_error("auth_type", str(draft.auth_type), AuthType))

    for field in ("client_id", "client_secret", "username", "private_key_id"):
        _check_text(errors, field, getattr(draft, field), max_length=MAX_CLIENT_CREDENTIAL_LENGTH)
    _check_private_key(draft.private_key, errors)
    _check_text(errors, "password", draft.password, max_length=MAX_PASSWORD_LENGTH)
    _check_text(
        errors,
        "identity_provider",
        draft.identity_provider,
        max_length=MAX_CLIENT_CREDENTIAL_LENGTH,
        shown=True,
    )
    # A description may run over several lines; it keeps its line breaks and tabs.
    _check_text(
        errors,
        "description",
        draft.description,
        max_length=MAX_TEXT_LENGTH,
        shown=True,
        multiline=True,
    )

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
        _at_most_fields("additional_fields", draft.additional_fields or [], errors),
        errors,
        require_value=require_complete,
    )
    authorization = _check_authorization_fields(
        _at_most_fields("authorization_fields", draft.authorization_fields or [], errors), errors
    )
    form = _check_form_fields(
        _at_most_fields("form_fields", draft.form_fields or [], errors), errors
    )

    tenancy = draft.tenancy
    defined_keys = {f.key for f in additional} | {f.key for f in authorization}
    defined_keys |= {f.key for f in form}
    _check_urls(draft, tenancy=bool(tenancy), defined_keys=defined_keys, errors=errors)
    _check_issuer(draft.issuer, errors)
    method = (
        ClientAuthMethod.CLIENT_SECRET_BASIC
        if _blank(draft.client_auth_method)
        else enums.get("client_auth_method")
    )
    if method is not None:  # else the method itself is reported
        errors.extend(
            client_credential_conflicts(method, lambda field: not _blank(getattr(draft, field)))
        )
    _check_value_placeholders(authorization, defined_keys, errors)

    if auth_type is not None and require_complete:

        def is_set(field: str) -> bool:
            return tenancy is not None if field == "tenancy" else not _blank(getattr(draft, field))

        mode = enums.get("authorization_mode")
        credential_method = method or ClientAuthMethod.CLIENT_SECRET_BASIC
        for field in required_fields(auth_type, is_set, mode, client_auth_method=credential_method):
            if is_set(field):
                continue
            if field != "client_secret" and field in client_credential_fields(credential_method):
                why = f"with client_auth_method {credential_method.value}"
            elif field in spec_for(auth_type).mandatory_with_token_test_url:
                why = f"when token_test_url is set on {auth_type.value} profiles"
            elif mode is not None and field in spec_for(auth_type).mandatory_in_mode.get(
                mode.value, ()
            ):
                why = f"for {auth_type.value} profiles in {mode.value} mode"
            else:
                why = f"for {auth_type.value} profiles"
            errors.append(
                FieldError(field, f"{spec_for(auth_type).label_of(field)} is required {why}")
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
        issuer=_none_if_blank(draft.issuer),
        authorization_url=_none_if_blank(draft.authorization_url),
        device_authorization_url=_none_if_blank(draft.device_authorization_url),
        token_url=_none_if_blank(draft.token_url),
        refresh_token_url=_none_if_blank(draft.refresh_token_url),
        revocation_url=_none_if_blank(draft.revocation_url),
        api_base_url=_none_if_blank(draft.api_base_url),
        egress_proxy_url=_none_if_blank(draft.egress_proxy_url),
        allow_insecure_http=bool(draft.allow_insecure_http),
        scopes=scopes,
        pkce=True if draft.pkce is None else draft.pkce,
        client_auth_method=enums.get("client_auth_method", ClientAuthMethod.CLIENT_SECRET_BASIC),
        private_key=draft.private_key or None,
        private_key_id=_none_if_blank(draft.private_key_id),
        client_assertion_audience=_none_if_blank(draft.client_assertion_audience),
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

    def is_set(field: str) -> bool:
        value = getattr(definition, field)
        return not (value is None or value == "")

    required = required_fields(
        definition.auth_type,
        is_set,
        definition.authorization_mode,
        client_auth_method=definition.client_auth_method,
    )
    missing = [f for f in required if not is_set(f)]
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
    if len(items) > MAX_SCOPES:
        errors.append(
            FieldError("scopes", f"may hold at most {MAX_SCOPES} scopes (got {len(items)})")
        )
        return ()
    scopes: list[str] = []
    for index, scope in enumerate(items):
        if not _check_text(errors, f"scopes[{index}]", scope, max_length=MAX_SCOPE_LENGTH):
            continue
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
    if not _check_text(errors, field, key, max_length=MAX_FIELD_KEY_LENGTH):
        return False
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
        value_field = f"additional_fields[{i}].value"
        ok = _check_text(errors, value_field, item.value, max_length=MAX_FIELD_VALUE_LENGTH) and ok
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
        value_field = f"authorization_fields[{i}].value"
        ok = _check_text(errors, value_field, item.value, max_length=MAX_FIELD_VALUE_LENGTH) and ok
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
        # The end user reads these in the authorization form (seed 003).
        for name, value, limit in (
            ("title", item.title, MAX_SHORT_TEXT_LENGTH),
            ("hint", item.hint, MAX_TEXT_LENGTH),
            ("data_type", item.data_type, MAX_SHORT_TEXT_LENGTH),
        ):
            field = f"form_fields[{i}].{name}"
            ok = _check_text(errors, field, value, max_length=limit, shown=True) and ok
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
    allow_insecure_http: bool = False,
) -> list[FieldError]:
    """One URL: length, http(s), known placeholders only, ``{tenant}`` only with tenancy, a
    placeholder in the host only as one label under a fixed domain, and http:// only to
    loopback hosts unless ``allow_insecure_http``."""
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
    try:
        authority = urlsplit(value).netloc
    except ValueError:  # an unbalanced "[": reported below as not a URL
        authority = ""
    host_problem = host_placeholder_problem(authority)
    if host_problem:
        # Field values can pick the host only in the way the template allows; a value is
        # also held, when rendered, to be one DNS label (see core.templating).
        errors.append(FieldError(field, host_problem))
        return errors
    if set(FIELD_PATTERN.findall(authority)) & BUILTIN_FIELDS:
        errors.append(
            FieldError(
                field,
                "{{access_token}} may not stand in the host: name lookups and logs "
                "would carry the token",
            )
        )
        return errors
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
    elif (
        parts.scheme == "http" and not allow_insecure_http and not is_loopback_host(parts.hostname)
    ):
        errors.append(
            FieldError(
                field,
                "http:// would carry secrets and tokens in clear text: use https://, or set "
                "allow_insecure_http to accept that (http:// to a loopback host is allowed)",
            )
        )
    return errors


def is_loopback_host(host: str) -> bool:
    """Whether a URL's host is this machine, so plain http:// never leaves it.

    RFC 6761 section 6.3: "localhost." and names under it resolve to loopback addresses;
    RFC 1122 section 3.2.1.3: 127.0.0.0/8 is loopback; RFC 4291 section 2.5.3: so is ::1.
    """
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


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
                allow_insecure_http=bool(draft.allow_insecure_http)
                or field not in HTTPS_ONLY_URL_FIELDS,
            )
        )


def _check_value_placeholders(
    fields: tuple[AuthorizationField, ...], defined_keys: set[str], errors: list[FieldError]
) -> None:
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


def check_use_input(
    profile: ProfileDefinition,
    tenant: str | None,
    fields: dict[str, str],
    *,
    require_mandatory: bool = True,
) -> tuple[str | None, list[FieldError]]:
    """What a caller brings to use a profile (connect, test): the tenant, when the
    profile has tenancy, and values for its form fields and its authorization fields left
    without a value. Returns the tenant as it is used (lower case) and every problem."""
    errors: list[FieldError] = []
    tenant = tenant or None
    if profile.tenancy:
        if tenant is None:
            errors.append(FieldError("tenant", "this profile has tenancy: say which tenant"))
        elif not is_valid_tenant(tenant):
            errors.append(
                FieldError(
                    "tenant",
                    "a tenant is one DNS label: letters, digits and inner hyphens, "
                    "at most 63 characters",
                )
            )
    elif tenant is not None:
        errors.append(FieldError("tenant", "this profile has no tenancy; leave tenant out"))
    allowed = {f.key for f in profile.form_fields} | {
        f.key for f in profile.authorization_fields if f.value is None
    }
    errors.extend(
        FieldError(f"fields.{key}", "is not a form field of this profile")
        for key in fields
        if key not in allowed
    )
    if require_mandatory:
        errors.extend(
            FieldError(f"fields.{f.key}", f"{f.title} is required")
            for f in profile.form_fields
            if f.mandatory and not fields.get(f.key)
        )
    used = tenant.lower() if tenant and not errors else None
    return used, errors


# -- client authentication: which credential each method sends ------------------------


def client_credential_fields(method: ClientAuthMethod) -> tuple[str, ...]:
    """The stored credential ``method`` authenticates the client with.

    RFC 6749 section 2.3.1 sends the client secret; RFC 7523 section 2.2 sends a JWT
    signed with the client's private key ("private_key_jwt" in RFC 7591 section 2); a
    public client (``none``) holds no credential: RFC 6749 section 2.1 calls such clients
    "incapable of maintaining the confidentiality of their credentials".
    """
    if method is ClientAuthMethod.PRIVATE_KEY_JWT:
        return ("private_key",)
    if method is ClientAuthMethod.NONE:
        return ()
    return ("client_secret",)


def with_client_credential(fields: tuple[str, ...], method: ClientAuthMethod) -> tuple[str, ...]:
    """A list of mandatory fields with ``client_secret``, where it names it, standing for
    the credential ``method`` sends: the secret, the private key, or nothing. The order
    is kept, so what is missing is listed as a form shows it."""
    credential = client_credential_fields(method)
    out: list[str] = []
    for field in fields:
        out.extend(credential if field == "client_secret" else (field,))
    return tuple(out)


#: Secrets a method sends nothing of when it is not the one chosen.
_CLIENT_CREDENTIALS: tuple[str, ...] = ("client_secret", "private_key")


def client_credential_conflicts(
    method: ClientAuthMethod, is_set: Callable[[str], bool]
) -> list[FieldError]:
    """A stored secret that ``method`` never sends is refused rather than kept: it would
    be held (and shown as set) for nothing, and a reader would take it for the credential
    in use. So a public client (``none``) holds no client secret, ``private_key_jwt`` no
    secret either, and the secret methods no private key."""
    used = client_credential_fields(method)
    return [
        FieldError(
            field,
            f"is not used with client_auth_method {method.value}: leave it out "
            "(null clears a stored one)",
        )
        for field in _CLIENT_CREDENTIALS
        if field not in used and is_set(field)
    ]


def private_key_problem(pem: str) -> str | None:
    """Why ``pem`` cannot sign a private_key_jwt client assertion, or None when it can: an
    unencrypted PEM private key, RSA of at least 2048 bits or EC on P-256, P-384 or P-521
    (the keys of RFC 7518's RS256 and ES256, ES384, ES512). Never quotes the key."""
    if "-----BEGIN" not in pem:
        return "must be a PEM private key (-----BEGIN PRIVATE KEY----- ...)"
    if "PRIVATE KEY-----" not in pem and ("PUBLIC KEY-----" in pem or "CERTIFICATE-----" in pem):
        return "holds a public key or a certificate; the assertion is signed with the private key"
    try:
        key = load_pem_private_key(pem.encode("utf-8"), password=None)
    except TypeError:  # cryptography's word for "encrypted, and no password given"
        return "is encrypted: give the key without a passphrase (it is stored encrypted here)"
    except (ValueError, UnsupportedAlgorithm):
        return "is not a PEM private key that can be read"
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_KEY_BITS:
            return f"an RSA key must have at least {MIN_RSA_KEY_BITS} bits (got {key.key_size})"
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name not in SIGNING_CURVES:
            return "an EC key must be on P-256, P-384 or P-521 (ES256, ES384, ES512)"
        return None
    return "must be an RSA or an EC (P-256, P-384, P-521) private key"


def _check_private_key(pem: str | None, errors: list[FieldError]) -> None:
    if _blank(pem):
        return
    assert pem is not None
    if not _check_text(errors, "private_key", pem, max_length=MAX_PRIVATE_KEY_LENGTH):
        return
    problem = private_key_problem(pem)
    if problem:
        errors.append(FieldError("private_key", problem))


def _check_issuer(issuer: str | None, errors: list[FieldError]) -> None:
    """RFC 8414 section 2: the issuer is "a URL that uses the "https" scheme and has no
    query or fragment components" (the scheme is held to the https rule of every URL)."""
    if _blank(issuer):
        return
    assert issuer is not None
    try:
        parts = urlsplit(issuer)
    except ValueError:
        return  # reported as not a URL by the URL checks
    if parts.query or parts.fragment or issuer.endswith(("?", "#")):
        errors.append(FieldError("issuer", "an issuer has no query or fragment (RFC 8414)"))
