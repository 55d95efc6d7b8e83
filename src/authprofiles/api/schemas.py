"""Shapes published in /openapi.json: answers (``XPublic``, where secrets never appear)
and the request bodies the API documents but parses more leniently (``XCreate``,
``XUpdate``: see :func:`documented_body`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from authprofiles.core.connections import Connection
from authprofiles.core.injection import bearer_scheme
from authprofiles.core.profiles import (
    AuthorizationMode,
    AuthType,
    ClientAuthMethod,
    FieldLocation,
    FormField,
    FormFieldType,
    FormFieldVisibility,
    HttpMethod,
    ProfileStatus,
    TestContentType,
)
from authprofiles.core.validation import (
    MAX_CLIENT_CREDENTIAL_LENGTH,
    MAX_NAME_LENGTH,
    MAX_TEXT_LENGTH,
    MAX_URL_LENGTH,
)
from authprofiles.services.tokens import IssuedToken


class AdditionalFieldPublic(BaseModel):
    key: str
    value_set: bool


class AuthorizationFieldPublic(BaseModel):
    type: FieldLocation
    key: str
    value_set: bool


class ProfilePublic(BaseModel):
    id: str
    workspace_id: str
    name: str
    auth_type: AuthType
    identity_provider: str | None
    description: str | None
    callback_url: str
    client_id: str | None
    client_secret_set: bool
    authorization_url: str | None
    token_url: str | None
    refresh_token_url: str | None
    revocation_url: str | None
    api_base_url: str | None
    egress_proxy_url: str | None
    allow_insecure_http: bool
    scopes: list[str]
    pkce: bool
    client_auth_method: ClientAuthMethod
    tenancy: bool | None
    authorization_mode: AuthorizationMode | None
    username: str | None
    password_set: bool
    additional_fields: list[AdditionalFieldPublic]
    authorization_fields: list[AuthorizationFieldPublic]
    form_fields: list[FormField]
    token_test_url: str | None
    token_test_method: HttpMethod | None
    token_test_content_type: TestContentType | None
    auth_error_status_code: int | None
    status: ProfileStatus
    missing_fields: list[str]
    failing_reason: str | None
    created_at: datetime
    updated_at: datetime


class ProfileListItem(BaseModel):
    id: str
    name: str
    auth_type: AuthType
    identity_provider: str | None
    status: ProfileStatus


class ConnectionPublic(BaseModel):
    id: str
    profile_id: str
    owner: str
    tenant: str | None
    status: str
    expires_at: datetime | None
    scopes: list[str] | None
    has_refresh_token: bool
    last_error: str | None
    last_error_at: datetime | None
    refreshed_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, connection: Connection) -> ConnectionPublic:
        tokens = connection.tokens
        return cls(
            id=connection.id,
            profile_id=connection.profile_id,
            owner=connection.owner,
            tenant=connection.tenant,
            status=connection.status.value,
            expires_at=tokens.expires_at if tokens else None,
            scopes=list(tokens.scopes) if tokens and tokens.scopes is not None else None,
            has_refresh_token=bool(tokens and tokens.refresh_token),
            last_error=connection.last_error,
            last_error_at=connection.last_error_at,
            refreshed_at=connection.refreshed_at,
            created_at=connection.created_at,
        )


class ConnectionStarted(BaseModel):
    """For authorization code: where to send the user. Otherwise the active connection."""

    connection_id: str
    status: str
    authorization_url: str | None = None
    connection: ConnectionPublic


class InjectionPublic(BaseModel):
    headers: dict[str, str]
    query: dict[str, str]
    body: dict[str, str]
    path: dict[str, str]


class TokenPublic(BaseModel):
    access_token: str
    token_type: str
    expires_at: datetime | None
    scopes: list[str] | None
    inject: InjectionPublic
    #: The status by which an API says "this token was refused" (seed 000).
    auth_error_status_code: int
    extra: dict[str, Any] = {}

    @classmethod
    def of(cls, issued: IssuedToken) -> TokenPublic:
        injection = issued.injection()
        tokens = issued.tokens
        return cls(
            access_token=tokens.access_token,
            token_type=bearer_scheme(tokens.token_type),
            expires_at=tokens.expires_at,
            scopes=list(tokens.scopes) if tokens.scopes is not None else None,
            inject=InjectionPublic(
                headers=injection.headers,
                query=injection.query,
                body=injection.body,
                path=injection.path,
            ),
            auth_error_status_code=issued.profile.effective_auth_error_status_code,
            # An ID token identifies the user to us; agents have no use for it.
            extra={k: v for k, v in tokens.extra.items() if k != "id_token"},
        )


class RevocationPublic(BaseModel):
    deleted: bool
    revoked: list[str]
    revocation_errors: list[str]


class DiscoveryPublic(BaseModel):
    issuer: str
    authorization_url: str | None
    token_url: str | None
    revocation_url: str | None
    introspection_url: str | None
    scopes_supported: list[str]
    code_challenge_methods: list[str]
    client_auth_methods: list[str]
    source: str


# -- request bodies, as documented -------------------------------------------------------
# A profile's body is parsed leniently (core.validation.ProfileDraft: every field optional,
# so that one answer names every rule broken). These say what the API takes: the types,
# the choices and the limits every request is held to. The rules that join fields (what
# each auth type needs, which placeholders a URL may use) answer 422 naming the field.
_DOCUMENTED: dict[str, type[BaseModel]] = {}


def documented_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for a route that documents its JSON body as ``model``."""
    _DOCUMENTED[model.__name__] = model
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def document_bodies(schema: dict[str, Any]) -> None:
    """Put the models named by :func:`documented_body` in the OpenAPI ``schema``."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, model in _DOCUMENTED.items():
        body_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(body_schema.pop("$defs", {}))
        components[name] = body_schema


def _url(description: str) -> Any:
    return Field(
        default=None,
        max_length=MAX_URL_LENGTH,
        description=f"{description}: http(s), may hold `{{tenant}}` and `{{{{field}}}}`",
    )


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AdditionalFieldInput(_Input):
    key: str = Field(description="Letters, digits, `_`, `-` and `.`")
    value: str | None = Field(
        default=None,
        description="Write-only. Needed unless `allow_incomplete`; left out of a change, "
        "the stored value is kept",
    )


class AuthorizationFieldInput(_Input):
    type: FieldLocation
    key: str = Field(description="Letters, digits, `_`, `-` and `.`")
    value: str | None = Field(
        default=None, description="Write-only; left out of a change, the stored value is kept"
    )


class FormFieldInput(_Input):
    title: str
    key: str = Field(description="Letters, digits, `_`, `-` and `.`")
    hint: str | None = None
    type: FormFieldType | None = None
    mandatory: bool | None = None
    data_type: str | None = None
    visibility: FormFieldVisibility | None = None


class ProfileUpdate(_Input):
    """A change: any fields, those left out keep their value; `null` clears one. `name`
    and `auth_type` cannot change (422 unless sent unchanged)."""

    name: str | None = Field(default=None, min_length=1, max_length=MAX_NAME_LENGTH)
    auth_type: AuthType | None = None
    identity_provider: str | None = Field(default=None, max_length=MAX_CLIENT_CREDENTIAL_LENGTH)
    description: str | None = Field(default=None, max_length=MAX_TEXT_LENGTH)
    client_id: str | None = Field(default=None, max_length=MAX_CLIENT_CREDENTIAL_LENGTH)
    client_secret: str | None = Field(
        default=None, max_length=MAX_CLIENT_CREDENTIAL_LENGTH, description="Write-only"
    )
    authorization_url: str | None = _url("Where the user authorizes")
    token_url: str | None = _url("The token endpoint")
    refresh_token_url: str | None = _url("Where tokens are refreshed (default: token_url)")
    revocation_url: str | None = _url("The RFC 7009 revocation endpoint")
    api_base_url: str | None = _url("The API the proxy calls")
    egress_proxy_url: str | None = _url("A forward proxy for every call made for the profile")
    scopes: list[str] | str | None = Field(
        default=None, description="A list, or one space-delimited string (RFC 6749 3.3)"
    )
    pkce: bool | None = None
    client_auth_method: ClientAuthMethod | None = None
    tenancy: bool | None = None
    authorization_mode: AuthorizationMode | None = None
    username: str | None = Field(default=None, max_length=MAX_CLIENT_CREDENTIAL_LENGTH)
    password: str | None = Field(default=None, description="Write-only")
    additional_fields: list[AdditionalFieldInput] | None = None
    authorization_fields: list[AuthorizationFieldInput] | None = None
    form_fields: list[FormFieldInput] | None = None
    token_test_url: str | None = _url("A URL to try the token on")
    token_test_method: HttpMethod | None = None
    token_test_content_type: TestContentType | None = None
    auth_error_status_code: int | None = Field(
        default=None, ge=400, le=599, description="How the API says a token was refused"
    )


class ProfileCreate(ProfileUpdate):
    """A new profile. What else is needed depends on `auth_type`; anything missing is a
    422 naming each field (unless `allow_incomplete`, which stores it `not_configured`)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "billing",
                    "auth_type": "oauth2_client_credentials",
                    "identity_provider": "Okta",
                    "client_id": "abc",
                    "client_secret": "s3cret",
                    "token_url": "https://idp.example.com/oauth2/token",
                    "scopes": ["billing.read"],
                }
            ]
        }
    )

    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH, description="Unique, immutable")
    auth_type: AuthType = Field(description="Immutable")
