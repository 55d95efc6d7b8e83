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
    # Not a stored field: the server's own callback, shown read-only (seed 000).
    "callback_url": "Callback URL",
}

#: The seeds' descriptions of each field, as a form shows them under its input (seed 000's
#: "Define Authorization Fields" table, seeds 001-003; ``AuthTypeSpec.hints`` has the ones a
#: type words differently).
FIELD_HINTS: Mapping[str, str] = {
    "name": "A unique name for this profile. It cannot be changed later.",
    "auth_type": "The OAuth 2.0 grant the profile uses. It cannot be changed later.",
    "identity_provider": "The name of the identity provider or service, for example, Okta.",
    "description": "Enter a description for your auth profile.",
    "callback_url": "The endpoint where the authorization server redirects the user after "
    "they grant or deny permission, with the authorization code. Register it with the "
    "identity provider.",
    "client_id": "A unique identifier that helps the authorization server recognize the "
    "application making authorization or API access requests. At most 255 characters.",
    "client_secret": "A confidential key the application authenticates with when it "
    "requests access tokens. At most 255 characters; stored encrypted, never shown again.",
    "issuer": "The authorization server's issuer identifier (RFC 8414). When set, an "
    "authorization response naming another issuer is refused (RFC 9207).",
    "authorization_url": "The endpoint where users are redirected to authenticate and grant "
    "permissions. Example: https://auth.example.com/oauth/authorize. It may hold {tenant} "
    "and {{field}} placeholders.",
    "device_authorization_url": "The endpoint where a device code is requested (RFC 8628); "
    "the user approves on another device.",
    "tenancy": "A tenancy URL is assigned to a specific tenant (organization, customer or "
    "user group) within a multi-tenant system: its URLs then hold {tenant}.",
    "token_url": "The endpoint where the client exchanges an authorization code or refresh "
    "token for an access token.",
    "refresh_token_url": "The endpoint where a refresh token is exchanged for a new access "
    "token when the access token expires (default: the token endpoint). Example: "
    "https://auth.example.com/oauth/access.",
    "revocation_url": "The RFC 7009 endpoint where tokens are revoked when a connection or "
    "this profile is deleted.",
    "api_base_url": "The API the proxy calls with the token, for example, "
    "https://api.example.com/v1.",
    "egress_proxy_url": "The connector: a forward proxy every call made for this profile "
    "goes through, for example, http://connector.internal:3128.",
    "allow_insecure_http": "Accept http:// URLs to hosts other than this machine. Secrets "
    "and tokens then travel in clear text.",
    "scopes": "The level of access the application requests, separated by spaces. "
    "Example: read_profile.",
    "pkce": "Protect the authorization code with PKCE (RFC 7636). Leave it on unless the "
    "identity provider refuses it.",
    "client_auth_method": "How the client authenticates at the token endpoint.",
    "private_key": "The client's PEM private key (RSA of 2048 bits or more, or EC P-256, "
    "P-384 or P-521), unencrypted. Stored encrypted, never shown again.",
    "private_key_id": "The key id (kid) the client assertion's header names.",
    "client_assertion_audience": "The assertion's audience (aud) when the identity provider "
    "wants other than the token endpoint URL.",
    "authorization_mode": "How authorization is handled for the integration.",
    "username": "The user the profile's tokens are obtained with. Auto-regeneration of "
    "refresh tokens works only when the User ID and Password are provided.",
    "password": "The password of that user. Stored encrypted, never shown again.",
    "additional_fields": "Extra authorization details sent with the token request, such as "
    "a PIN code or a device ID.",
    "authorization_fields": "Values sent with every API call besides the token: in a header, "
    "the payload, the query string or the URL path.",
    "form_fields": "Inputs the end user fills in when authorizing, for example, a PIN code; "
    "URLs use them as {{key}}.",
    "token_test_url": "Optionally, a URL to test the authorization settings with the token, "
    "for example, https://api.example.com/test/{{tokenId}}.",
    "token_test_method": "The HTTP request method for the Token Test URL.",
    "token_test_content_type": "The content type expected from the Token Test URL.",
    "auth_error_status_code": "The HTTP status by which the API says a token was refused "
    "(401 when empty): the token is then refreshed and the call tried once more.",
}

#: The choices of the fields a form offers a choice for, in the seeds' order and words,
#: by value (the values are the API's: ``core.profiles``' enums, and JSON true/false).
CHOICE_LABELS: Mapping[str, Mapping[str, str]] = {
    "tenancy": {
        "false": "No, this tool and all of its tasks do not have tenancy URLs.",
        "true": "Yes, some tasks will have tenancy URLs and the user will need to provide "
        "that to successfully authenticate.",
    },
    "authorization_mode": {
        "user": "Allow users to authorize the integration",
        "preauthorized": "Pre-authorize the integration (Recommended)",
    },
    "client_auth_method": {
        "client_secret_basic": "Client secret in HTTP Basic (client_secret_basic)",
        "client_secret_post": "Client secret in the request body (client_secret_post)",
        "private_key_jwt": "JWT signed with a private key (private_key_jwt)",
        "none": "None: a public client (none)",
    },
    "token_test_method": {
        "PUT": "PUT",
        "POST": "POST",
        "PATCH": "PATCH",
        "DELETE": "DELETE",
        "GET": "GET",
    },
    "token_test_content_type": {
        "json": "JSON",
        "rss": "RSS",
        "xml": "XML",
        "url_encoded": "URL Encoded JSON",
        "csv": "CSV",
        "text": "Text",
        "twitter_encoded_json": "Twitter Encoded JSON",
        "multipart_form_data": "Multipart/Form-data",
        "multipart_related": "Multipart/Related",
        "oracle_adf": "Oracle ADF",
    },
    # The rows of the lists (seeds 000 and 003).
    "authorization_fields.type": {
        "header": "Header",
        "payload": "Payload",
        "query": "Query String",
        "path": "Path Param",
    },
    "form_fields.type": {"textbox": "Textbox", "password": "Password"},
    "form_fields.visibility": {"visible": "Visible", "hidden": "Hidden", "readonly": "Read-only"},
}

#: What each choice means, where the seeds say (seed 003's authorization modes).
CHOICE_HINTS: Mapping[str, Mapping[str, str]] = {
    "authorization_mode": {
        "user": "End users are prompted to authorize the integration during the "
        "conversation with AI Agents.",
        "preauthorized": "Authorization credentials are provided in advance. This "
        "authorization is reused whenever users interact with the AI Agent, eliminating the "
        "need for individual authorization.",
    },
}

#: The form's sections and their fields, in the order the seeds present them; ``name`` and
#: ``auth_type`` come first, on their own. A type shows those of its fields
#: (``core.profiles.fields_of``) and of its ``shown_read_only`` ones.
FORM_SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Identity provider", ("identity_provider", "description", "callback_url")),
    (
        "Client",
        (
            "client_id",
            "client_auth_method",
            "client_secret",
            "private_key",
            "private_key_id",
            "client_assertion_audience",
        ),
    ),
    (
        "Endpoints",
        (
            "issuer",
            "authorization_url",
            "device_authorization_url",
            "tenancy",
            "token_url",
            "scopes",
            "pkce",
            "refresh_token_url",
            "revocation_url",
        ),
    ),
    ("Authorization", ("authorization_mode", "username", "password")),
    ("Fields", ("additional_fields", "authorization_fields", "form_fields")),
    (
        "Testing and calling the API",
        (
            "token_test_url",
            "token_test_method",
            "token_test_content_type",
            "api_base_url",
            "auth_error_status_code",
        ),
    ),
    ("Network", ("egress_proxy_url", "allow_insecure_http")),
)


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
    #: Hints that differ from ``FIELD_HINTS`` for this type.
    hints: Mapping[str, str] = field(default_factory=dict)
    #: Values a form shows for this type that are not stored fields (the callback URL).
    shown_read_only: tuple[str, ...] = ()
    #: The stages the profile test runs, in order.
    test_stages: tuple[TestStage, ...] = (TestStage.TOKEN, TestStage.TOKEN_TEST)

    def label_of(self, field_name: str) -> str:
        return self.labels.get(field_name) or FIELD_LABELS.get(field_name, field_name)

    def hint_of(self, field_name: str) -> str:
        return self.hints.get(field_name) or FIELD_HINTS.get(field_name, "")


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
        shown_read_only=("callback_url",),
    )
)

# RFC 6749 section 4.4.
AUTH_TYPES.register(
    AuthTypeSpec(
        AuthType.CLIENT_CREDENTIALS,
        label="OAuth 2.0 Client Credentials",
        specification="RFC 6749 section 4.4",
        mandatory=("identity_provider", "client_id", "client_secret", "token_url"),
        hints={
            "token_url": "The endpoint where the client exchanges its client ID and secret "
            "for an access token.",
        },
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
        hints={
            "token_url": "The endpoint where the user's credentials are exchanged for an "
            "access token.",
        },
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
        hints={
            "token_url": "The endpoint polled for the access token while the user approves "
            "the device code.",
        },
        # The test starts a device authorization (the client and the endpoint answer);
        # only a person can finish it.
        test_stages=(TestStage.TOKEN,),
    )
)


def spec_for(auth_type: AuthType) -> AuthTypeSpec:
    return AUTH_TYPES[auth_type]


__all__ = [
    "AUTH_TYPES",
    "CHOICE_HINTS",
    "CHOICE_LABELS",
    "FIELD_HINTS",
    "FIELD_LABELS",
    "FORM_SECTIONS",
    "AuthType",
    "AuthTypeRegistry",
    "AuthTypeSpec",
    "TestStage",
    "spec_for",
]
