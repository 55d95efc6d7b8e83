"""Authorization Profiles: the auth types, their fields and the derived status.

A profile is defined once by an admin and reused by every connection made
through it. Field names follow ../shared/CONTRACT.md; the seeds name them in
their UI words (for example "Identity Provider Name" is ``identity_provider``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from authprofiles.core.auth_types import AUTH_TYPES, AuthType


class ClientAuthMethod(StrEnum):
    """How the client authenticates at the token endpoint, named as RFC 7591 section 2
    registers the values of ``token_endpoint_auth_method``."""

    #: RFC 6749 section 2.3.1: the client secret in HTTP Basic (RFC 7617).
    CLIENT_SECRET_BASIC = "client_secret_basic"  # noqa: S105
    #: RFC 6749 section 2.3.1: the client secret in the form body.
    CLIENT_SECRET_POST = "client_secret_post"  # noqa: S105
    #: RFC 7523 section 2.2: a JWT signed with the client's private key.
    PRIVATE_KEY_JWT = "private_key_jwt"
    #: A public client (RFC 6749 section 2.1): the client id in the body, no secret.
    NONE = "none"


class AuthorizationMode(StrEnum):
    """Seed 003: end users authorize for themselves, or an admin pre-authorizes once."""

    USER = "user"
    PREAUTHORIZED = "preauthorized"


class FieldLocation(StrEnum):
    """Where an authorization field is placed in an outgoing request (seed 000)."""

    HEADER = "header"
    PAYLOAD = "payload"
    QUERY = "query"
    PATH = "path"


class FormFieldType(StrEnum):
    TEXTBOX = "textbox"
    PASSWORD = "password"  # noqa: S105


class FormFieldVisibility(StrEnum):
    VISIBLE = "visible"
    HIDDEN = "hidden"
    READONLY = "readonly"


class HttpMethod(StrEnum):
    """Seed 003: the token test URL's method is one of these."""

    GET = "GET"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"


class TestContentType(StrEnum):
    """Seed 003's list of token test URL content types, each with its media type."""

    __test__ = False  # not a pytest class, despite the name

    JSON = "json"
    RSS = "rss"
    XML = "xml"
    URL_ENCODED = "url_encoded"
    CSV = "csv"
    TEXT = "text"
    TWITTER_ENCODED_JSON = "twitter_encoded_json"
    MULTIPART_FORM_DATA = "multipart_form_data"
    MULTIPART_RELATED = "multipart_related"
    ORACLE_ADF = "oracle_adf"

    @property
    def media_type(self) -> str:
        return _MEDIA_TYPES[self]


_MEDIA_TYPES: dict[TestContentType, str] = {
    TestContentType.JSON: "application/json",
    TestContentType.RSS: "application/rss+xml",
    TestContentType.XML: "application/xml",
    TestContentType.URL_ENCODED: "application/x-www-form-urlencoded",
    TestContentType.CSV: "text/csv",
    TestContentType.TEXT: "text/plain",
    TestContentType.TWITTER_ENCODED_JSON: "application/x-www-form-urlencoded",
    TestContentType.MULTIPART_FORM_DATA: "multipart/form-data",
    TestContentType.MULTIPART_RELATED: "multipart/related",
    TestContentType.ORACLE_ADF: "application/vnd.oracle.adf.resourceitem+json",
}


class ProfileStatus(StrEnum):
    CONFIGURED = "configured"
    NOT_CONFIGURED = "not_configured"
    FAILING = "failing"


class AdditionalField(BaseModel):
    """A key/value pair sent as an extra authorization request parameter. The value is secret."""

    model_config = ConfigDict(frozen=True)
    key: str
    value: str


class AuthorizationField(BaseModel):
    """A value placed in each API request (header, payload, query or path). The value is secret."""

    model_config = ConfigDict(frozen=True)
    type: FieldLocation
    key: str
    value: str | None = None


class FormField(BaseModel):
    """An input the end user fills when authorizing (seed 003 "authorization IDP form fields")."""

    model_config = ConfigDict(frozen=True)
    title: str = Field(description="The label a user sees", examples=["Region"])
    key: str = Field(description="Names the value in URLs as `{{key}}`", examples=["region"])
    hint: str = Field(default="", description="Help shown with the input", examples=["eu or us"])
    type: FormFieldType = Field(
        default=FormFieldType.TEXTBOX,
        description="`textbox`, or `password` for a value shown masked",
        examples=["textbox"],
    )
    mandatory: bool = Field(
        default=False, description="Whether a connection must fill it", examples=[True]
    )
    data_type: str = Field(
        default="string", description="The value's type, for people", examples=["string"]
    )
    visibility: FormFieldVisibility = Field(
        default=FormFieldVisibility.VISIBLE,
        description="`visible`, `hidden` or `readonly`",
        examples=["visible"],
    )


DEFAULT_AUTH_ERROR_STATUS_CODE = 401


#: Fields never returned by any read; reads only say whether they are set.
SECRET_FIELDS: frozenset[str] = frozenset({"client_secret", "private_key", "password"})

#: Fields fixed at creation (seed 000: "The Authorization Type and Name fields cannot be edited").
IMMUTABLE_FIELDS: frozenset[str] = frozenset({"name", "auth_type"})

URL_FIELDS: tuple[str, ...] = (
    "issuer",
    "authorization_url",
    "device_authorization_url",
    "token_url",
    "refresh_token_url",
    "revocation_url",
    "api_base_url",
    "egress_proxy_url",
    "client_assertion_audience",
    "token_test_url",
)


class ProfileDefinition(BaseModel):
    """Everything an admin defines, validated and typed, secrets in plain text.

    Only the domain and the store's encryption boundary ever hold this with secrets;
    the edges turn it into public views that say whether a secret is set.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    auth_type: AuthType
    identity_provider: str | None = None
    description: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    #: The authorization server's issuer identifier (RFC 8414 section 2): an authorization
    #: response naming another issuer is refused (RFC 9207).
    issuer: str | None = None
    authorization_url: str | None = None
    #: RFC 8628 section 3.1: where the device authorization request goes.
    device_authorization_url: str | None = None
    token_url: str | None = None
    refresh_token_url: str | None = None
    revocation_url: str | None = None
    api_base_url: str | None = None
    egress_proxy_url: str | None = None
    #: Plain http:// to hosts other than loopback carries tokens and secrets readable by
    #: anyone on the way; it is refused unless the admin says so here.
    allow_insecure_http: bool = False
    scopes: tuple[str, ...] = ()
    pkce: bool = True
    client_auth_method: ClientAuthMethod = ClientAuthMethod.CLIENT_SECRET_BASIC
    #: private_key_jwt: the PEM private key the client assertion is signed with, and the
    #: ``kid`` its JWS header names (RFC 7515 section 4.1.4), when the server needs one.
    private_key: str | None = None
    private_key_id: str | None = None
    #: private_key_jwt: the assertion's ``aud`` when not the token endpoint URL.
    client_assertion_audience: str | None = None
    tenancy: bool | None = None
    authorization_mode: AuthorizationMode | None = None
    username: str | None = None
    password: str | None = None
    additional_fields: tuple[AdditionalField, ...] = ()
    authorization_fields: tuple[AuthorizationField, ...] = ()
    form_fields: tuple[FormField, ...] = ()
    token_test_url: str | None = None
    token_test_method: HttpMethod | None = None
    token_test_content_type: TestContentType | None = None
    auth_error_status_code: int | None = None

    @property
    def effective_auth_error_status_code(self) -> int:
        return self.auth_error_status_code or DEFAULT_AUTH_ERROR_STATUS_CODE

    @property
    def effective_refresh_url(self) -> str | None:
        """RFC 6749 section 6 refreshes at the token endpoint unless the profile names another."""
        return self.refresh_token_url or self.token_url

    def defined_field_keys(self) -> set[str]:
        """Names a ``{{field}}`` placeholder may refer to."""
        keys = {f.key for f in self.form_fields}
        keys |= {f.key for f in self.additional_fields}
        keys |= {f.key for f in self.authorization_fields}
        return keys


#: Every field an admin may set, in the order the seeds present them (the definition's).
PROFILE_FIELDS: tuple[str, ...] = tuple(ProfileDefinition.model_fields)


def form_values_of(profile: ProfileDefinition, fields: Mapping[str, str]) -> dict[str, str]:
    """Of a connection's values, those of the profile's form fields (what a person filled
    in: the password grant sends them with its token request)."""
    keys = {f.key for f in profile.form_fields}
    return {k: v for k, v in fields.items() if k in keys}


def fields_of(auth_type: AuthType) -> tuple[str, ...]:
    """The fields a profile of ``auth_type`` shows, in form order: every field but those
    that belong to other auth types only (``AuthTypeSpec.own_fields``)."""
    own = set(AUTH_TYPES[auth_type].own_fields)
    others = {f for spec in AUTH_TYPES for f in spec.own_fields} - own
    return tuple(f for f in PROFILE_FIELDS if f not in others)


class Profile(ProfileDefinition):
    """A stored profile: its definition plus identity and lifecycle state."""

    id: str
    workspace_id: str
    created_at: datetime
    updated_at: datetime
    #: Set when a shared connection's refresh was refused by the IdP (seed 000: "The auth
    #: profile starts failing everywhere it is used").
    failing_reason: str | None = None

    @property
    def status(self) -> ProfileStatus:
        from authprofiles.core.validation import missing_fields

        if missing_fields(self):
            return ProfileStatus.NOT_CONFIGURED
        if self.failing_reason:
            return ProfileStatus.FAILING
        return ProfileStatus.CONFIGURED

    def definition(self) -> ProfileDefinition:
        return ProfileDefinition.model_validate(self.model_dump(include=set(PROFILE_FIELDS)))


def field_values(profile: ProfileDefinition, fields: dict[str, str]) -> dict[str, str]:
    """Values ``{{field}}`` placeholders draw on: the profile's additional fields, then the
    connection's own values (an end user's input wins over the admin's default)."""
    values = {f.key: f.value for f in profile.additional_fields}
    values.update(fields)
    return values


__all__ = [
    "DEFAULT_AUTH_ERROR_STATUS_CODE",
    "IMMUTABLE_FIELDS",
    "PROFILE_FIELDS",
    "SECRET_FIELDS",
    "URL_FIELDS",
    "AdditionalField",
    "AuthType",
    "AuthorizationField",
    "AuthorizationMode",
    "ClientAuthMethod",
    "FieldLocation",
    "FormField",
    "FormFieldType",
    "FormFieldVisibility",
    "HttpMethod",
    "Profile",
    "ProfileDefinition",
    "ProfileStatus",
    "TestContentType",
    "field_values",
    "fields_of",
    "form_values_of",
]
