"""Response shapes (``XPublic``) published in /openapi.json. Secrets never appear here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from authprofiles.core.connections import Connection
from authprofiles.core.injection import bearer_scheme
from authprofiles.core.profiles import (
    AuthorizationMode,
    AuthType,
    ClientAuthMethod,
    FieldLocation,
    FormField,
    HttpMethod,
    ProfileStatus,
    TestContentType,
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


class ProfileList(BaseModel):
    items: list[ProfileListItem]


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


class ConnectionList(BaseModel):
    items: list[ConnectionPublic]


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
