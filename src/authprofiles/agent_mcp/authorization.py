"""``/mcp`` as an OAuth 2.0 protected resource, and this server as its authorization server.

An MCP client that meets ``401`` on ``/mcp`` reads the resource's metadata (RFC 9728) at the
URL the challenge names, then the authorization server's (RFC 8414), and asks the token
endpoint for an access token by client credentials (RFC 6749 section 4.4): the client id is
an agent grant's id, the secret its token. The token is issued for one resource (RFC 8707):
``/mcp`` unless the request names the proxy, and only there is it taken. A grant's own
token works on ``/mcp`` directly too.

This authorization server issues no token through a person's browser: the authorization
endpoint it must name (RFC 8414 makes it required for servers with such grants, and MCP
clients insist on it) answers every request with ``unsupported_response_type``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from authprofiles.api.caller import client_address
from authprofiles.api.deps import ServicesDep, proxy_resource
from authprofiles.composition import Services
from authprofiles.core.errors import Unauthenticated
from authprofiles.settings import Settings

MCP_PATH = "/mcp"
TOKEN_PATH = "/oauth/token"  # noqa: S105 - a path, not a secret
AUTHORIZE_PATH = "/oauth/authorize"
#: RFC 9728 section 3.1: the resource's metadata sits at the well-known prefix followed by
#: the resource's path.
RESOURCE_METADATA_PATH = "/.well-known/oauth-protected-resource"
SERVER_METADATA_PATH = "/.well-known/oauth-authorization-server"

#: A token request is a few short parameters; a larger body is refused unread.
MAX_TOKEN_REQUEST_BYTES = 16 * 1024
CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
#: RFC 6749 section 5.1: "The authorization server MUST include the HTTP "Cache-Control"
#: response header field with a value of "no-store" in any response containing tokens".
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

router = APIRouter(tags=["mcp"])

_EXAMPLE_URL = "https://authprofiles.example.com"


def mcp_resource(settings: Settings) -> str:
    """``/mcp`` as an OAuth resource (RFC 8707): the audience of its access tokens."""
    return settings.public_base_url + MCP_PATH


def resource_metadata_url(settings: Settings) -> str:
    return settings.public_base_url + RESOURCE_METADATA_PATH + MCP_PATH


class ProtectedResourceMetadata(BaseModel):
    """RFC 9728 section 2: what a client needs to get a token for `/mcp`."""

    resource: str = Field(
        description="The resource's identifier: the audience its tokens must name",
        examples=[f"{_EXAMPLE_URL}/mcp"],
    )
    authorization_servers: list[str] = Field(
        description="Issuers of the authorization servers whose tokens it takes (this "
        "server's own)",
        examples=[[_EXAMPLE_URL]],
    )
    bearer_methods_supported: list[str] = Field(
        description="How a token is sent: only in the `Authorization` header",
        examples=[["header"]],
    )
    resource_name: str = Field(
        description="A name for people", examples=["authprofiles MCP server"]
    )


class AuthorizationServerMetadata(BaseModel):
    """RFC 8414 section 2: this server's token endpoint, and how to use it."""

    issuer: str = Field(
        description="The issuer identifier: the public URL", examples=[_EXAMPLE_URL]
    )
    token_endpoint: str = Field(
        description="Where to ask for an access token", examples=[f"{_EXAMPLE_URL}/oauth/token"]
    )
    authorization_endpoint: str = Field(
        description="Named because clients require it; it issues nothing (this server's "
        "only grant is client credentials)",
        examples=[f"{_EXAMPLE_URL}/oauth/authorize"],
    )
    grant_types_supported: list[str] = Field(
        description="The grants the token endpoint takes", examples=[["client_credentials"]]
    )
    token_endpoint_auth_methods_supported: list[str] = Field(
        description="How the client (the agent grant's id and token) authenticates",
        examples=[list(CLIENT_AUTH_METHODS)],
    )
    response_types_supported: list[str] = Field(
        description="None: no grant goes through the authorization endpoint", examples=[[]]
    )


class AccessTokenIssued(BaseModel):
    """RFC 6749 section 5.1: a successful token response."""

    access_token: str = Field(
        description="The access token, good for the named resource only",
        examples=["apt_3f9a1c2b4d5e6f70_X1bK9..."],
    )
    token_type: str = Field(description="Always `Bearer` (RFC 6750)", examples=["Bearer"])
    expires_in: int = Field(
        description="Seconds until it expires (never beyond the grant's expiry)",
        examples=[3600],
    )


class OAuthErrorAnswer(BaseModel):
    """RFC 6749 section 5.2: a refused token request."""

    error: str = Field(
        description="`invalid_request`, `invalid_client`, `unsupported_grant_type` or "
        "`invalid_target` (RFC 8707)",
        examples=["invalid_client"],
    )
    error_description: str = Field(
        description="What is wrong, for the developer",
        examples=["the client id and secret are not an agent grant's id and token"],
    )


# -- metadata ---------------------------------------------------------------------------------
@router.get(
    RESOURCE_METADATA_PATH + MCP_PATH,
    response_model=ProtectedResourceMetadata,
    summary="The /mcp resource's metadata (RFC 9728)",
)
@router.get(
    RESOURCE_METADATA_PATH,
    response_model=ProtectedResourceMetadata,
    summary="The /mcp resource's metadata, at the root path (RFC 9728)",
)
async def protected_resource_metadata(services: ServicesDep) -> ProtectedResourceMetadata:
    """Where `/mcp`'s access tokens come from: its `401` names this document in
    `WWW-Authenticate: Bearer resource_metadata="..."`. No key."""
    settings = services.settings
    return ProtectedResourceMetadata(
        resource=mcp_resource(settings),
        authorization_servers=[settings.public_base_url],
        bearer_methods_supported=["header"],
        resource_name="authprofiles MCP server",
    )


@router.get(
    SERVER_METADATA_PATH,
    response_model=AuthorizationServerMetadata,
    summary="This server's authorization server metadata (RFC 8414)",
)
async def authorization_server_metadata(services: ServicesDep) -> AuthorizationServerMetadata:
    """The token endpoint that issues access tokens for `/mcp` (and the proxy) by client
    credentials: the client id is an agent grant's id, the secret its token. No key."""
    base = services.settings.public_base_url
    return AuthorizationServerMetadata(
        issuer=base,
        token_endpoint=base + TOKEN_PATH,
        authorization_endpoint=base + AUTHORIZE_PATH,
        grant_types_supported=["client_credentials"],
        token_endpoint_auth_methods_supported=list(CLIENT_AUTH_METHODS),
        response_types_supported=[],
    )


# -- the token endpoint -------------------------------------------------------------------------
class TokenRequestRefused(Exception):
    """RFC 6749 section 5.2's error answer."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def answer(self) -> JSONResponse:
        headers = dict(_NO_STORE)
        if self.status == 401:
            # "the authorization server MUST respond with an HTTP 401 (Unauthorized) status
            # code and include the WWW-Authenticate response header field matching the
            # authentication scheme used by the client" (RFC 6749 section 5.2).
            headers["WWW-Authenticate"] = 'Basic realm="authprofiles"'
        return JSONResponse(
            {"error": self.error, "error_description": self.description},
            status_code=self.status,
            headers=headers,
        )


_FORM = "application/x-www-form-urlencoded"
_TOKEN_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["grant_type"],
    "properties": {
        "grant_type": {
            "type": "string",
            "enum": ["client_credentials"],
            "description": "The grant: client credentials (RFC 6749 section 4.4)",
        },
        "resource": {
            "type": "string",
            "description": "The resource the token is for (RFC 8707): `{public URL}/mcp` "
            "(the default) or `{public URL}/api/v1/proxy`",
            "examples": [f"{_EXAMPLE_URL}/mcp"],
        },
        "client_id": {
            "type": "string",
            "description": "client_secret_post: the agent grant's id (or use HTTP Basic)",
        },
        "client_secret": {
            "type": "string",
            "description": "client_secret_post: the agent grant's token (or use HTTP Basic)",
        },
        "scope": {"type": "string", "description": "Ignored: the grant says what is allowed"},
    },
}


@router.post(
    TOKEN_PATH,
    response_model=AccessTokenIssued,
    tags=["oauth"],
    summary="Issue an access token for /mcp or the proxy (client credentials)",
    responses={
        400: {"model": OAuthErrorAnswer, "description": "A malformed or unsupported request"},
        401: {
            "model": OAuthErrorAnswer,
            "description": "`invalid_client`: not an active agent grant's id and token",
        },
    },
    openapi_extra={
        "requestBody": {"required": True, "content": {_FORM: {"schema": _TOKEN_REQUEST_SCHEMA}}}
    },
)
async def issue_token(request: Request, services: ServicesDep) -> JSONResponse:
    """RFC 6749 section 4.4 with RFC 8707's `resource`: the client authenticates with
    HTTP Basic (`client_secret_basic`, id and secret form-encoded) or in the body
    (`client_secret_post`); the client id is an agent grant's id and the secret its token.
    The token is good for the named resource only, and never outlives the grant."""
    try:
        parameters = await _form(request)
        client_id, client_secret = _client_credentials(request, parameters)
        grant_type = parameters.get("grant_type")
        if not grant_type:
            raise TokenRequestRefused("invalid_request", "grant_type is missing")
        if grant_type != "client_credentials":
            raise TokenRequestRefused(
                "unsupported_grant_type", "this server issues tokens by client_credentials only"
            )
        audience = _audience(request, services, parameters.get("resource"))
        try:
            issued = await run_in_threadpool(
                services.agent_grants.issue_access_token,
                client_id,
                client_secret,
                audience,
                client_address(request.scope),
            )
        except Unauthenticated as exc:
            raise TokenRequestRefused("invalid_client", exc.detail, 401) from None
    except TokenRequestRefused as refused:
        return refused.answer()
    return JSONResponse(
        AccessTokenIssued(
            access_token=issued.access_token,
            token_type="Bearer",  # noqa: S106 - RFC 6750's type, not a secret
            expires_in=issued.expires_in,
        ).model_dump(),
        headers=_NO_STORE,
    )


async def _form(request: Request) -> dict[str, str]:
    """The form body's parameters. RFC 6749 section 3.2: the request is form-encoded, and
    "Request and response parameters MUST NOT be included more than once"."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != _FORM:
        raise TokenRequestRefused("invalid_request", f"send the parameters as {_FORM}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_TOKEN_REQUEST_BYTES:
            raise TokenRequestRefused(
                "invalid_request", f"the request is larger than {MAX_TOKEN_REQUEST_BYTES} bytes"
            )
        chunks.append(chunk)
    try:
        pairs = parse_qsl(
            b"".join(chunks).decode("utf-8"), keep_blank_values=True, strict_parsing=False
        )
    except (UnicodeDecodeError, ValueError):
        raise TokenRequestRefused("invalid_request", "the body is not a UTF-8 form") from None
    parameters: dict[str, str] = {}
    for name, value in pairs:
        if name in parameters:
            raise TokenRequestRefused("invalid_request", f"{name} is given more than once")
        parameters[name] = value
    return parameters


def _client_credentials(request: Request, parameters: dict[str, str]) -> tuple[str, str]:
    """The client's id and secret, from HTTP Basic or the body (RFC 6749 section 2.3.1:
    each form-encoded before Basic joins them; one method per request)."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    in_body = "client_id" in parameters or "client_secret" in parameters
    if scheme.lower() == "basic":
        if in_body:
            raise TokenRequestRefused(
                "invalid_request", "authenticate the client one way: HTTP Basic or the body"
            )
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise TokenRequestRefused(
                "invalid_client", "the Basic credentials are not base64 of id:secret", 401
            ) from None
        basic_id, colon, basic_secret = decoded.partition(":")
        if not colon:
            raise TokenRequestRefused(
                "invalid_client", "the Basic credentials are not id:secret", 401
            )
        return unquote_plus(basic_id), unquote_plus(basic_secret)
    client_id, secret = parameters.get("client_id"), parameters.get("client_secret")
    if not client_id or not secret:
        raise TokenRequestRefused(
            "invalid_client",
            "authenticate as the agent grant: its id as client id, its token as the secret "
            "(HTTP Basic, or client_id and client_secret in the body)",
            401,
        )
    return client_id, secret


def _audience(request: Request, services: Services, resource: str | None) -> str:
    """The resource the token is for: ``/mcp`` unless the request names the proxy."""
    mcp = mcp_resource(services.settings)
    if resource is None:
        return mcp
    for known in (mcp, proxy_resource(request)):
        if resource.rstrip("/") == known:
            return known
    raise TokenRequestRefused(
        "invalid_target",
        f"this server issues tokens for {mcp} and {proxy_resource(request)} only",
    )


@router.get(
    AUTHORIZE_PATH,
    tags=["oauth"],
    summary="Not used: no grant goes through a browser here",
    responses={
        400: {"model": OAuthErrorAnswer, "description": "Always: `unsupported_response_type`"}
    },
    status_code=400,
    response_model=OAuthErrorAnswer,
)
async def authorize() -> JSONResponse:
    """Named in the metadata because MCP clients require an authorization endpoint; this
    server issues access tokens by client credentials only (`POST /oauth/token`)."""
    return TokenRequestRefused(
        "unsupported_response_type",
        "this server issues access tokens by client credentials only: POST "
        f"{TOKEN_PATH} with an agent grant's id and token",
    ).answer()


__all__ = [
    "MCP_PATH",
    "AccessTokenIssued",
    "AuthorizationServerMetadata",
    "ProtectedResourceMetadata",
    "mcp_resource",
    "resource_metadata_url",
    "router",
]
