"""Shapes published in /openapi.json: answers (``XPublic``, where secrets never appear)
and the request bodies the API documents but parses more leniently (``XCreate``,
``XUpdate``: see :func:`documented_body`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from authprofiles.core.connections import Connection, ConnectionStatus, NextStep
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
    MAX_PRIVATE_KEY_LENGTH,
    MAX_TEXT_LENGTH,
    MAX_URL_LENGTH,
)
from authprofiles.services.tokens import IssuedToken

# Every field has a description and an example: /docs and /redoc show them, and clients
# generated from /openapi.json carry them. Times are ISO 8601 in UTC; ids are UUIDs.
_ID = "9b2f6c1e-4a7d-4e8b-9c3f-2d1a5e7b8c90"
_PROFILE_ID = "5d0c8e3a-1f2b-4c6d-8e9f-0a1b2c3d4e5f"
_TIME = "2025-01-15T09:30:00Z"
_FORM_FIELD_EXAMPLE = {
    "title": "Region",
    "key": "region",
    "hint": "eu or us",
    "type": "textbox",
    "mandatory": True,
    "data_type": "string",
    "visibility": "visible",
}


class AdditionalFieldPublic(BaseModel):
    key: str = Field(
        description="The parameter's name, sent to the token endpoint", examples=["audience"]
    )
    value_set: bool = Field(
        description="Whether a value is stored (values are write-only)", examples=[True]
    )


class AuthorizationFieldPublic(BaseModel):
    type: FieldLocation = Field(
        description="Where the value goes in each API call", examples=["header"]
    )
    key: str = Field(
        description="The header, query parameter, body member or path placeholder it fills",
        examples=["X-Api-Version"],
    )
    value_set: bool = Field(
        description="Whether a fixed value is stored (write-only); without one, each "
        "connection supplies it in `fields`",
        examples=[True],
    )


class ProfilePublic(BaseModel):
    """A profile as anyone may read it: secrets show only whether they are set."""

    id: str = Field(description="The profile's id", examples=[_PROFILE_ID])
    workspace_id: str = Field(description="The workspace it belongs to", examples=["default"])
    name: str = Field(description="Unique in the workspace; immutable", examples=["billing"])
    auth_type: AuthType = Field(
        description="The OAuth 2.0 grant; immutable", examples=["oauth2_client_credentials"]
    )
    identity_provider: str | None = Field(
        description="The identity provider's name, for people", examples=["Okta"]
    )
    description: str | None = Field(
        description="What the profile is for", examples=["The billing API, read only"]
    )
    callback_url: str = Field(
        description="Where the identity provider sends the user back (authorization code): "
        "register it with the provider",
        examples=["http://127.0.0.1:8000/oauth/callback"],
    )
    client_id: str | None = Field(description="The OAuth client's id", examples=["0oa1b2c3d4"])
    client_secret_set: bool = Field(
        description="Whether a client secret is stored (it is never shown)", examples=[True]
    )
    issuer: str | None = Field(
        description="The authorization server's issuer identifier (RFC 8414): an "
        "authorization response naming another issuer is refused (RFC 9207)",
        examples=["https://idp.example.com"],
    )
    authorization_url: str | None = Field(
        description="Where the user authorizes (authorization code)",
        examples=["https://idp.example.com/oauth2/authorize"],
    )
    device_authorization_url: str | None = Field(
        description="The RFC 8628 device authorization endpoint (device code)",
        examples=["https://idp.example.com/oauth2/device/authorize"],
    )
    token_url: str | None = Field(
        description="The token endpoint", examples=["https://idp.example.com/oauth2/token"]
    )
    refresh_token_url: str | None = Field(
        description="Where tokens are refreshed when not at `token_url`",
        examples=["https://idp.example.com/oauth2/refresh"],
    )
    revocation_url: str | None = Field(
        description="The RFC 7009 revocation endpoint, where tokens are revoked on delete",
        examples=["https://idp.example.com/oauth2/revoke"],
    )
    api_base_url: str | None = Field(
        description="The API the proxy calls", examples=["https://api.example.com/v1"]
    )
    egress_proxy_url: str | None = Field(
        description="A forward proxy for every call made for the profile (access using a "
        "connector)",
        examples=["http://connector.internal:3128"],
    )
    allow_insecure_http: bool = Field(
        description="Whether http:// URLs to hosts other than loopback are accepted",
        examples=[False],
    )
    scopes: list[str] = Field(
        description="The scopes asked for (RFC 6749 section 3.3)",
        examples=[["billing.read", "billing.write"]],
    )
    pkce: bool = Field(
        description="Whether the authorization code grant uses PKCE (RFC 7636)", examples=[True]
    )
    client_auth_method: ClientAuthMethod = Field(
        description="How the client authenticates at the token endpoint",
        examples=["client_secret_basic"],
    )
    private_key_set: bool = Field(
        description="private_key_jwt: whether a private key is stored (it is never shown)",
        examples=[False],
    )
    private_key_id: str | None = Field(
        description="private_key_jwt: the `kid` the client assertion's header names",
        examples=["2025-01-signing"],
    )
    client_assertion_audience: str | None = Field(
        description="private_key_jwt: the assertion's `aud` (null: the token endpoint URL)",
        examples=["https://idp.example.com"],
    )
    tenancy: bool | None = Field(
        description="Whether some URLs hold `{tenant}`, so each connection names its tenant",
        examples=[False],
    )
    authorization_mode: AuthorizationMode | None = Field(
        description="Password grant: `user` (each user signs in) or `preauthorized` (the "
        "profile's stored user)",
        examples=["user"],
    )
    username: str | None = Field(
        description="Password grant, preauthorized: the stored user", examples=["svc-billing"]
    )
    password_set: bool = Field(
        description="Whether a password is stored (it is never shown)", examples=[False]
    )
    additional_fields: list[AdditionalFieldPublic] = Field(
        description="More parameters sent to the token endpoint (values write-only)",
        examples=[[{"key": "audience", "value_set": True}]],
    )
    authorization_fields: list[AuthorizationFieldPublic] = Field(
        description="Values applied to every API call besides the token",
        examples=[[{"type": "header", "key": "X-Api-Version", "value_set": True}]],
    )
    form_fields: list[FormField] = Field(
        description="What a user fills in when connecting, used as `{{key}}` in URLs",
        examples=[[_FORM_FIELD_EXAMPLE]],
    )
    token_test_url: str | None = Field(
        description="A URL a profile test calls with the token",
        examples=["https://api.example.com/v1/me"],
    )
    token_test_method: HttpMethod | None = Field(
        description="The token test call's method", examples=["GET"]
    )
    token_test_content_type: TestContentType | None = Field(
        description="The content type the token test URL answers in", examples=["json"]
    )
    auth_error_status_code: int | None = Field(
        description="The status by which the API says a token was refused (401 when unset)",
        examples=[401],
    )
    status: ProfileStatus = Field(
        description="`configured`, `not_configured` (see `missing_fields`) or `failing` (see "
        "`failing_reason`)",
        examples=["configured"],
    )
    missing_fields: list[str] = Field(
        description="Mandatory fields still empty", examples=[["client_secret"]]
    )
    failing_reason: str | None = Field(
        description="Why the profile is failing: what the identity provider said",
        examples=["the identity provider refused the client: invalid_client"],
    )
    created_at: datetime = Field(description="When it was created", examples=[_TIME])
    updated_at: datetime = Field(description="When it last changed", examples=[_TIME])


class ProfileListItem(BaseModel):
    id: str = Field(description="The profile's id", examples=[_PROFILE_ID])
    name: str = Field(description="Unique in the workspace", examples=["billing"])
    auth_type: AuthType = Field(
        description="The OAuth 2.0 grant", examples=["oauth2_client_credentials"]
    )
    identity_provider: str | None = Field(
        description="The identity provider's name", examples=["Okta"]
    )
    status: ProfileStatus = Field(
        description="`configured`, `not_configured` or `failing`", examples=["configured"]
    )


class ConnectionPublic(BaseModel):
    id: str = Field(description="The connection's id", examples=[_ID])
    profile_id: str = Field(description="The profile it authorizes through", examples=[_PROFILE_ID])
    owner: str = Field(description="`shared`, or the user id it belongs to", examples=["shared"])
    tenant: str | None = Field(
        description="The tenant its URLs are made for (profiles with tenancy)", examples=["acme"]
    )
    status: ConnectionStatus = Field(
        description="`active`, `needs_reauth` or `pending` (authorization not finished)",
        examples=["active"],
    )
    expires_at: datetime | None = Field(
        description="When the access token expires (null: unknown, or no token yet)",
        examples=[_TIME],
    )
    scopes: list[str] | None = Field(
        description="The scopes granted (null: the identity provider did not say)",
        examples=[["billing.read"]],
    )
    has_refresh_token: bool = Field(description="Whether a refresh token is held", examples=[True])
    last_error: str | None = Field(
        description="The last failure to get or refresh a token, as the identity provider said",
        examples=["invalid_grant: refresh token expired"],
    )
    last_error_at: datetime | None = Field(
        description="When that failure happened", examples=[_TIME]
    )
    refreshed_at: datetime | None = Field(
        description="When the token was last refreshed", examples=[_TIME]
    )
    created_at: datetime = Field(description="When it was created", examples=[_TIME])

    @classmethod
    def of(cls, connection: Connection) -> ConnectionPublic:
        tokens = connection.tokens
        return cls(
            id=connection.id,
            profile_id=connection.profile_id,
            owner=connection.owner,
            tenant=connection.tenant,
            status=connection.status,
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

    id: str = Field(description="The connection's id", examples=[_ID])
    connection_id: str = Field(
        description="The same as `id`, kept for older clients", examples=[_ID]
    )
    status: ConnectionStatus = Field(
        description="`pending` until the user authorizes (authorization code), else `active`",
        examples=["pending"],
    )
    authorization_url: str | None = Field(
        default=None,
        description="Authorization code: where to send the user (state and PKCE included)",
        examples=[
            "https://idp.example.com/oauth2/authorize?response_type=code&client_id=0oa1b2c3d4"
            "&state=...&code_challenge=...&code_challenge_method=S256"
        ],
    )
    user_code: str | None = Field(
        default=None,
        description="Device code grant (RFC 8628): the code the user types",
        examples=["WDJB-MJHT"],
    )
    verification_uri: str | None = Field(
        default=None,
        description="Device code grant: where the user types it",
        examples=["https://idp.example.com/device"],
    )
    verification_uri_complete: str | None = Field(
        default=None,
        description="Device code grant: the same page with the code filled in, when offered",
        examples=["https://idp.example.com/device?user_code=WDJB-MJHT"],
    )
    expires_at: datetime | None = Field(
        default=None,
        description="Device code grant: when the code expires (ISO 8601, UTC)",
        examples=["2026-01-01T12:15:00Z"],
    )
    interval: int | None = Field(
        default=None,
        description="Device code grant: seconds between the server's polls of the "
        "identity provider (its own, default 5)",
        examples=[5],
    )
    connection: ConnectionPublic = Field(description="The connection as `GET` shows it")

    @classmethod
    def of(cls, connection: Connection, next_step: NextStep | None) -> ConnectionStarted:
        step = next_step or NextStep()
        return cls(
            id=connection.id,
            connection_id=connection.id,
            status=connection.status,
            authorization_url=step.authorization_url,
            user_code=step.user_code,
            verification_uri=step.verification_uri,
            verification_uri_complete=step.verification_uri_complete,
            expires_at=step.expires_at,
            interval=step.interval,
            connection=ConnectionPublic.of(connection),
        )


class InjectionPublic(BaseModel):
    """Where to put the token and the profile's authorization fields in an API call."""

    headers: dict[str, str] = Field(
        description="Headers to send",
        examples=[{"Authorization": "Bearer eyJhbGciOi...", "X-Api-Version": "2"}],
    )
    query: dict[str, str] = Field(
        description="Query parameters to add", examples=[{"api_key": "k-123"}]
    )
    body: dict[str, str] = Field(
        description="Members to add to the request body", examples=[{"account": "acme"}]
    )
    path: dict[str, str] = Field(
        description="Values for the path's `{{key}}` placeholders", examples=[{"org": "acme"}]
    )


class TokenPublic(BaseModel):
    access_token: str = Field(description="The access token", examples=["eyJhbGciOiJSUzI1NiJ9..."])
    token_type: str = Field(
        description="How to send it: the `Authorization` scheme", examples=["Bearer"]
    )
    expires_at: datetime | None = Field(
        description="When it expires (null: the identity provider did not say)",
        examples=[_TIME],
    )
    scopes: list[str] | None = Field(
        description="The scopes granted (null: the identity provider did not say)",
        examples=[["billing.read"]],
    )
    inject: InjectionPublic = Field(
        description="The token and the authorization fields, placed for an API call"
    )
    #: The status by which an API says "this token was refused" (seed 000).
    auth_error_status_code: int = Field(
        description="The status by which the API says this token was refused: then "
        "`POST /connections/{id}/token/refresh`",
        examples=[401],
    )
    extra: dict[str, Any] = Field(
        default={},
        description="Other members of the token response (the ID token left out)",
        examples=[{"instance_url": "https://acme.example.com"}],
    )
    #: A refresh was due and failed for a passing reason (the identity provider was
    #: unreachable, or refused the client): why. The token served is still valid.
    refresh_error: str | None = Field(
        default=None,
        description="Why a refresh that was due failed; the token served is still valid",
        examples=["idp.example.com did not answer within 10 s"],
    )

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
            refresh_error=issued.refresh_error,
        )


class RevocationPublic(BaseModel):
    deleted: bool = Field(description="Whether it is deleted", examples=[True])
    revoked: list[str] = Field(
        description="Tokens revoked at the identity provider, by kind",
        examples=[["access_token", "refresh_token"]],
    )
    revocation_errors: list[str] = Field(
        description="Revocations that failed, and why (deleted here all the same)",
        examples=[["refresh_token: idp.example.com answered 503"]],
    )


class DiscoveryPublic(BaseModel):
    """An identity provider's metadata (RFC 8414 or OpenID Connect Discovery), to prefill a
    profile."""

    issuer: str = Field(
        description="Its issuer identifier, as its metadata writes it: the profile's `issuer`",
        examples=["https://idp.example.com"],
    )
    authorization_url: str | None = Field(
        description="Its authorization endpoint", examples=["https://idp.example.com/authorize"]
    )
    device_authorization_url: str | None = Field(
        description="Its RFC 8628 device authorization endpoint",
        examples=["https://idp.example.com/oauth/device/code"],
    )
    token_url: str | None = Field(
        description="Its token endpoint", examples=["https://idp.example.com/oauth/token"]
    )
    revocation_url: str | None = Field(
        description="Its RFC 7009 revocation endpoint",
        examples=["https://idp.example.com/oauth/revoke"],
    )
    introspection_url: str | None = Field(
        description="Its RFC 7662 introspection endpoint",
        examples=["https://idp.example.com/oauth/introspect"],
    )
    scopes_supported: list[str] = Field(
        description="The scopes it offers", examples=[["openid", "profile", "email"]]
    )
    code_challenge_methods: list[str] = Field(
        description="Its PKCE methods (RFC 7636)", examples=[["S256"]]
    )
    client_auth_methods: list[str] = Field(
        description="How clients may authenticate at its token endpoint, as it lists them "
        "(`token_endpoint_auth_methods_supported`; `client_secret_basic` when it lists none)",
        examples=[["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]],
    )
    authorization_response_iss_parameter_supported: bool = Field(
        description="Whether its authorization responses carry `iss` (RFC 9207): then one "
        "without it is refused for a profile that names this issuer",
        examples=[True],
    )
    source: str = Field(
        description="The metadata document read",
        examples=["https://idp.example.com/.well-known/openid-configuration"],
    )


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
    """Put the models named by :func:`documented_body` in the OpenAPI ``schema``, each
    body that names one described by it alone (FastAPI merges ``openapi_extra`` into what
    it made of the parameter, a bare JSON object)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, model in _DOCUMENTED.items():
        body_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(body_schema.pop("$defs", {}))
        components[name] = body_schema
    documented = {f"#/components/schemas/{name}" for name in _DOCUMENTED}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            content = operation.get("requestBody", {}).get("content", {})
            for media in content.values():
                ref = media.get("schema", {}).get("$ref")
                if ref in documented:
                    media["schema"] = {"$ref": ref}


def _url(description: str, example: str) -> Any:
    # These models are never built in code, only published: a helper keeps each URL's
    # limit and wording the same.
    return Field(
        default=None,
        max_length=MAX_URL_LENGTH,
        description=f"{description}: http(s), may hold `{{tenant}}` and `{{{{field}}}}`",
        examples=[example],
    )


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


_KEY = "Letters, digits, `_`, `-` and `.`"


class AdditionalFieldInput(_Input):
    key: str = Field(
        description=f"The parameter's name, sent to the token endpoint. {_KEY}",
        examples=["audience"],
    )
    value: str | None = Field(
        default=None,
        description="Write-only. Needed unless `allow_incomplete`; left out of a change, "
        "the stored value is kept",
        examples=["https://api.example.com"],
    )


class AuthorizationFieldInput(_Input):
    type: FieldLocation = Field(
        description="Where the value goes in each API call", examples=["header"]
    )
    key: str = Field(
        description=f"The header, query parameter, body member or path placeholder. {_KEY}",
        examples=["X-Api-Version"],
    )
    value: str | None = Field(
        default=None,
        description="Write-only; may hold `{{field}}` placeholders. Left out, each connection "
        "supplies it in `fields`; left out of a change, the stored value is kept",
        examples=["2"],
    )


class FormFieldInput(_Input):
    title: str = Field(description="The label a user sees", examples=["Region"])
    key: str = Field(
        description=f"Names the value in URLs as `{{{{key}}}}`. {_KEY}", examples=["region"]
    )
    hint: str | None = Field(
        default=None, description="Help shown with the input", examples=["eu or us"]
    )
    type: FormFieldType | None = Field(
        default=None,
        description="`textbox`, or `password` for a value shown masked (default `textbox`)",
        examples=["textbox"],
    )
    mandatory: bool | None = Field(
        default=None, description="Whether a connection must fill it", examples=[True]
    )
    data_type: str | None = Field(
        default=None,
        description="The value's type, for people (default `string`)",
        examples=["string"],
    )
    visibility: FormFieldVisibility | None = Field(
        default=None,
        description="`visible`, `hidden` or `readonly` (default `visible`)",
        examples=["visible"],
    )


class ProfileUpdate(_Input):
    """A change: any fields, those left out keep their value; `null` clears one. `name`
    and `auth_type` cannot change (422 unless sent unchanged)."""

    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        description="Cannot change: only the current name is accepted",
        examples=["billing"],
    )
    auth_type: AuthType | None = Field(
        default=None,
        description="Cannot change: only the current type is accepted",
        examples=["oauth2_client_credentials"],
    )
    identity_provider: str | None = Field(
        default=None,
        max_length=MAX_CLIENT_CREDENTIAL_LENGTH,
        description="The identity provider's name, for people",
        examples=["Okta"],
    )
    description: str | None = Field(
        default=None,
        max_length=MAX_TEXT_LENGTH,
        description="What the profile is for",
        examples=["The billing API, read only"],
    )
    client_id: str | None = Field(
        default=None,
        max_length=MAX_CLIENT_CREDENTIAL_LENGTH,
        description="The OAuth client's id",
        examples=["0oa1b2c3d4"],
    )
    client_secret: str | None = Field(
        default=None,
        max_length=MAX_CLIENT_CREDENTIAL_LENGTH,
        description="Write-only: stored encrypted, never shown",
        examples=["s3cret-value"],
    )
    issuer: str | None = _url(
        "The issuer identifier (RFC 8414; no query or fragment): set, an authorization "
        "response whose `iss` differs, or lacks one where the issuer's metadata says it "
        "sends it, is refused (RFC 9207)",
        "https://idp.example.com",
    )
    authorization_url: str | None = _url(
        "Where the user authorizes", "https://idp.example.com/oauth2/authorize"
    )
    device_authorization_url: str | None = _url(
        "The RFC 8628 device authorization endpoint",
        "https://idp.example.com/oauth2/device/authorize",
    )
    token_url: str | None = _url("The token endpoint", "https://idp.example.com/oauth2/token")
    refresh_token_url: str | None = _url(
        "Where tokens are refreshed (default: token_url)", "https://idp.example.com/oauth2/refresh"
    )
    revocation_url: str | None = _url(
        "The RFC 7009 revocation endpoint", "https://idp.example.com/oauth2/revoke"
    )
    api_base_url: str | None = _url("The API the proxy calls", "https://api.example.com/v1")
    egress_proxy_url: str | None = _url(
        "A forward proxy for every call made for the profile", "http://connector.internal:3128"
    )
    allow_insecure_http: bool | None = Field(
        default=None,
        description="Accept http:// URLs to hosts other than loopback (default false): "
        "secrets and tokens then travel in clear text",
        examples=[False],
    )
    scopes: list[str] | str | None = Field(
        default=None,
        description="A list, or one space-delimited string (RFC 6749 3.3)",
        examples=[["billing.read", "billing.write"]],
    )
    pkce: bool | None = Field(
        default=None,
        description="Use PKCE (RFC 7636) in the authorization code grant (default true)",
        examples=[True],
    )
    client_auth_method: ClientAuthMethod | None = Field(
        default=None,
        description="How the client authenticates at the token endpoint (default "
        "`client_secret_basic`): `client_secret_basic` or `client_secret_post` send "
        "`client_secret`; `private_key_jwt` (RFC 7523) signs an assertion with "
        "`private_key`; `none` is a public client (its id only). A secret the method does "
        "not send is refused",
        examples=["client_secret_basic"],
    )
    private_key: str | None = Field(
        default=None,
        max_length=MAX_PRIVATE_KEY_LENGTH,
        description="private_key_jwt: the client's PEM private key, RSA (2048 bits or more) "
        "or EC (P-256, P-384, P-521), unencrypted. Write-only: stored encrypted, never shown",
        examples=[
            "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49...\n-----END PRIVATE KEY-----"
        ],
    )
    private_key_id: str | None = Field(
        default=None,
        max_length=MAX_CLIENT_CREDENTIAL_LENGTH,
        description="private_key_jwt: the `kid` put in the assertion's header, naming the "
        "key among those registered at the server",
        examples=["2025-01-signing"],
    )
    client_assertion_audience: str | None = _url(
        "private_key_jwt: the assertion's `aud` (default: the token endpoint URL), for "
        "servers that want their issuer identifier there",
        "https://idp.example.com",
    )
    tenancy: bool | None = Field(
        default=None,
        description="Authorization code: whether URLs hold `{tenant}`, so each connection "
        "names its tenant",
        examples=[False],
    )
    authorization_mode: AuthorizationMode | None = Field(
        default=None,
        description="Password grant: `user` (each user signs in) or `preauthorized` (the "
        "stored `username` and `password`)",
        examples=["preauthorized"],
    )
    username: str | None = Field(
        default=None,
        max_length=MAX_CLIENT_CREDENTIAL_LENGTH,
        description="Password grant, preauthorized: the user",
        examples=["svc-billing"],
    )
    password: str | None = Field(
        default=None,
        description="Password grant, preauthorized: write-only",
        examples=["correct horse battery staple"],
    )
    additional_fields: list[AdditionalFieldInput] | None = Field(
        default=None,
        description="More parameters sent to the token endpoint",
        examples=[[{"key": "audience", "value": "https://api.example.com"}]],
    )
    authorization_fields: list[AuthorizationFieldInput] | None = Field(
        default=None,
        description="Values applied to every API call besides the token",
        examples=[[{"type": "header", "key": "X-Api-Version", "value": "2"}]],
    )
    form_fields: list[FormFieldInput] | None = Field(
        default=None,
        description="What a user fills in when connecting",
        examples=[[_FORM_FIELD_EXAMPLE]],
    )
    token_test_url: str | None = _url("A URL to try the token on", "https://api.example.com/v1/me")
    token_test_method: HttpMethod | None = Field(
        default=None,
        description="The token test call's method; needed with `token_test_url` for the "
        "password grant",
        examples=["GET"],
    )
    token_test_content_type: TestContentType | None = Field(
        default=None,
        description="The content type the token test URL answers in; needed with "
        "`token_test_url` for the password grant",
        examples=["json"],
    )
    auth_error_status_code: int | None = Field(
        default=None,
        ge=400,
        le=599,
        description="How the API says a token was refused (default 401)",
        examples=[401],
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

    name: str = Field(
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        description="Unique in the workspace, immutable",
        examples=["billing"],
    )
    auth_type: AuthType = Field(
        description="The OAuth 2.0 grant; immutable", examples=["oauth2_client_credentials"]
    )
