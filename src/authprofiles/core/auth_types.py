"""The registry of auth types: what each one asks of a profile, in one place.

Each auth type is one OAuth 2.0 grant. Its declaration here (pure data) says which
fields it uses, which are mandatory (and when), the seeds' labels for them, and the
stages its profile test runs; the grant's behaviour lives in the module of
``authprofiles.oauth.grants`` named after its RFC, registered under the same auth type.
Validation, the API's schemas, the CLI and the web console read this registry; nothing
else says ``if auth_type is ...``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class AuthType(StrEnum):
    AUTHORIZATION_CODE = "oauth2_authorization_code"
    CLIENT_CREDENTIALS = "oauth2_client_credentials"
    PASSWORD = "oauth2_password"  # noqa: S105 - a grant name, not a password
    DEVICE_CODE = "oauth2_device_code"


class TestStage(StrEnum):
    """A step of the profile test (the seeds' "Test" button)."""

    __test__ = False  # not a pytest class, despite the name

    #: Ask for the authorization page the way a browser would (authorization code).
    AUTHORIZE = "authorize"
    #: Ask the token endpoint for a token without a person (client credentials, password).
    TOKEN = "token"  # noqa: S105
    #: Call the profile's token test URL with the token.
    TOKEN_TEST = "token_test"  # noqa: S105


#: The seeds' words for each field, as a form shows them (seed 000's Authorization
#: Profile form; seed 003's password form names a few differently: see ``labels``).
FIELD_LABELS: Mapping[str, str] = {
    "name": "Name",
    "auth_type": "Authorization Type",
    "identity_provider": "Identity Provider Name",
    "description": "Description",
    "client_id": "Client ID",
    "client_secret": "Client Secret",
    "authorization_url": "Authorization URL",
    "tenancy": "Subdomain / tenancy",
    "token_url": "Token Request URL",
    "refresh_token_url": "Refresh Token URL",
    "revocation_url": "Revocation URL",
    "api_base_url": "API Base URL",
    "egress_proxy_url": "Egress Proxy URL",
    "allow_insecure_http": "Allow plain HTTP",
    "scopes": "Scope",
    "pkce": "PKCE",
    "client_auth_method": "Client Authentication",
    "private_key": "Private Key",
    "private_key_id": "Private Key ID",
    "client_assertion_audience": "Client Assertion Audience",
    "issuer": "Issuer",
    "device_authorization_url": "Device Authorization URL",
    "authorization_mode": "Authorization Mode",
    "username": "User ID",
    "password": "Password",
    "additional_fields": "Additional Fields",
    "authorization_fields": "Authorization Fields",
    "form_fields": "Form Fields",
    "token_test_url": "Token Test URL",
    "token_test_method": "Token URL Method",
    "token_test_content_type": "Content Type",
    "auth_error_status_code": "Auth Error Status Code",
}


@dataclass(frozen=True)
class AuthTypeSpec:
    """What one auth type asks of a profile."""

    auth_type: AuthType
    #: How people see the type ("OAuth 2.0 Authorization Code").
    label: str
    #: The grant's specification, for people ("RFC 6749 section 4.1").
    specification: str
    #: Fields a complete profile of this type sets (seed 000: "Except for Scope,
    #: Description, Refresh Token URL, Additional fields, Authorization fields, and Auth
    #: Error Status Code, all the fields are mandatory").
    mandatory: tuple[str, ...]
    #: Fields only this type (or only types that name them too) uses; a profile of another
    #: type does not show them (``core.profiles.fields_of``).
    own_fields: tuple[str, ...] = ()
    #: Fields an authorization mode adds (``{"preauthorized": ("username", "password")}``).
    mandatory_in_mode: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Fields the token test URL brings with it once it is set.
    mandatory_with_token_test_url: tuple[str, ...] = ()
    #: Labels that differ from ``FIELD_LABELS`` for this type.
    labels: Mapping[str, str] = field(default_factory=dict)
    #: The stages the profile test runs, in order.
    test_stages: tuple[TestStage, ...] = (TestStage.TOKEN, TestStage.TOKEN_TEST)

    def label_of(self, field_name: str) -> str:
        return self.labels.get(field_name) or FIELD_LABELS.get(field_name, field_name)


class AuthTypeRegistry:
    def __init__(self) -> None:
        self._specs: dict[AuthType, AuthTypeSpec] = {}

    def register(self, spec: AuthTypeSpec) -> AuthTypeSpec:
        if spec.auth_type in self._specs:
            raise ValueError(f"auth type {spec.auth_type.value} is registered twice")
        self._specs[spec.auth_type] = spec
        return spec

    def __getitem__(self, auth_type: AuthType) -> AuthTypeSpec:
        return self._specs[auth_type]

    def __iter__(self) -> Iterator[AuthTypeSpec]:
        return iter(self._specs.values())


AUTH_TYPES = AuthTypeRegistry()

# RFC 6749 section 4.1, with RFC 7636 PKCE. Seed 000 adds the tenancy choice.
AUTH_TYPES.register(
    AuthTypeSpec(
        AuthType.AUTHORIZATION_CODE,
        label="OAuth 2.0 Authorization Code",
        specification="RFC 6749 section 4.1, RFC 7636 (PKCE), RFC 9207 (issuer)",
        mandatory=(
            "identity_provider",
            "client_id",
            "client_secret",
            "authorization_url",
            "tenancy",
            "token_url",
        ),
        own_fields=("authorization_url", "tenancy", "pkce", "issuer"),
        test_stages=(TestStage.AUTHORIZE,),
    )
)

# RFC 6749 section 4.4.
AUTH_TYPES.register(
    AuthTypeSpec(
        AuthType.CLIENT_CREDENTIALS,
        label="OAuth 2.0 Client Credentials",
        specification="RFC 6749 section 4.4",
        mandatory=("identity_provider", "client_id", "client_secret", "token_url"),
    )
)

# RFC 6749 section 4.3. Seed 003: "Pre-authorize the integration: Authorization
# credentials are provided in advance. This authorization is reused whenever users interact
# with the AI Agent, eliminating the need for individual authorization." So a
# preauthorized password profile holds the username and password its shared tokens are
# obtained with (and obtained again with: "auto-regeneration ... works only when the User
# ID and Password are provided"); in user mode each user gives theirs when connecting.
# Seed 003's password form asks for the token test URL's method and content type together
# with the URL; the other types test with GET and accept any content type.
AUTH_TYPES.register(
    AuthTypeSpec(
        AuthType.PASSWORD,
        label="OAuth 2.0 Password",
        specification="RFC 6749 section 4.3",
        mandatory=(
            "identity_provider",
            "client_id",
            "client_secret",
            "token_url",
            "authorization_mode",
        ),
        own_fields=("authorization_mode", "username", "password"),
        mandatory_in_mode={"preauthorized": ("username", "password")},
        mandatory_with_token_test_url=("token_test_method", "token_test_content_type"),
        labels={"token_url": "Token URL"},
    )
)

# RFC 8628: the device authorization grant, for agents and command-line tools on machines
# with no browser. A person approves on another device; the client may be public.
AUTH_TYPES.register(
    AuthTypeSpec(
        AuthType.DEVICE_CODE,
        label="OAuth 2.0 Device Code",
        specification="RFC 8628",
        # The client's credential follows its authentication method (none for a public
        # client: RFC 8628 section 3.1 expects many device clients to be public).
        mandatory=(
            "identity_provider",
            "client_id",
            "client_secret",
            "device_authorization_url",
            "token_url",
        ),
        own_fields=("device_authorization_url",),
        # The test starts a device authorization (the client and the endpoint answer);
        # only a person can finish it.
        test_stages=(TestStage.TOKEN,),
    )
)


def spec_for(auth_type: AuthType) -> AuthTypeSpec:
    return AUTH_TYPES[auth_type]


__all__ = [
    "AUTH_TYPES",
    "FIELD_LABELS",
    "AuthType",
    "AuthTypeRegistry",
    "AuthTypeSpec",
    "TestStage",
    "spec_for",
]
