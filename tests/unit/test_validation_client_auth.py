"""The rules of the client authentication methods (RFC 6749 section 2.3.1, RFC 7523, public
clients) and of the issuer and device authorization URLs, checked in the core alone."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from authprofiles.core.errors import FieldError, ValidationFailed
from authprofiles.core.profiles import ClientAuthMethod, ProfileDefinition, ProfileStatus
from authprofiles.core.validation import (
    MAX_PRIVATE_KEY_LENGTH,
    client_credential_fields,
    missing_fields,
    parse_draft,
    private_key_problem,
    validate_draft,
    with_client_credential,
)

CLIENT_CREDENTIALS: dict[str, Any] = {
    "name": "billing",
    "auth_type": "oauth2_client_credentials",
    "identity_provider": "Okta",
    "client_id": "client-2",
    "token_url": "https://idp.example.com/oauth2/token",
}
AUTHORIZATION_CODE: dict[str, Any] = {
    "name": "asana",
    "auth_type": "oauth2_authorization_code",
    "identity_provider": "Asana",
    "client_id": "client-1",
    "authorization_url": "https://app.asana.com/-/oauth_authorize",
    "token_url": "https://app.asana.com/-/oauth_token",
    "tenancy": False,
}


def pem(key: Any, *, encryption: Any = None) -> str:
    return str(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            encryption or serialization.NoEncryption(),
        ).decode()
    )


@pytest.fixture(scope="module")
def rsa_pem() -> str:
    return pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def validate(data: dict[str, Any], *, require_complete: bool = True) -> ProfileDefinition:
    return validate_draft(parse_draft(data), require_complete=require_complete)


def errors_of(data: dict[str, Any], *, require_complete: bool = True) -> list[FieldError]:
    with pytest.raises(ValidationFailed) as failed:
        validate(data, require_complete=require_complete)
    return failed.value.errors


def fields_of(data: dict[str, Any], *, require_complete: bool = True) -> list[str]:
    return [e.field for e in errors_of(data, require_complete=require_complete)]


# -- private_key_jwt -----------------------------------------------------------------------


@pytest.mark.parametrize("base", [CLIENT_CREDENTIALS, AUTHORIZATION_CODE])
def test_private_key_jwt_needs_a_key_and_no_secret(base: dict[str, Any], rsa_pem: str) -> None:
    definition = validate(
        {
            **base,
            "client_auth_method": "private_key_jwt",
            "private_key": rsa_pem,
            "private_key_id": "key-2025",
            "client_assertion_audience": "https://idp.example.com",
        }
    )
    assert definition.client_auth_method is ClientAuthMethod.PRIVATE_KEY_JWT
    assert definition.private_key == rsa_pem.strip()
    assert definition.private_key_id == "key-2025"
    assert definition.client_assertion_audience == "https://idp.example.com"
    assert definition.client_secret is None
    assert missing_fields(definition) == []


def test_private_key_jwt_without_a_key_names_the_key_in_place_of_the_secret() -> None:
    data = {**CLIENT_CREDENTIALS, "client_auth_method": "private_key_jwt"}
    errors = errors_of(data)
    assert [e.field for e in errors] == ["private_key"]
    assert "private_key_jwt" in errors[0].message
    # Kept incomplete, it lists the key where a secret profile lists the secret.
    definition = validate(data, require_complete=False)
    assert missing_fields(definition) == ["private_key"]


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("not a key", "must be a PEM private key"),
        (
            "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----",
            "that can be read",
        ),
        (
            "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n"
            "-----END PUBLIC KEY-----",
            "public key",
        ),
    ],
)
def test_a_private_key_that_is_not_one_is_refused(key: str, problem: str) -> None:
    data = {**CLIENT_CREDENTIALS, "client_auth_method": "private_key_jwt", "private_key": key}
    errors = errors_of(data)
    assert [e.field for e in errors] == ["private_key"]
    assert problem in errors[0].message


def test_an_encrypted_key_is_refused_with_what_to_do() -> None:
    key = pem(
        ec.generate_private_key(ec.SECP256R1()),
        encryption=serialization.BestAvailableEncryption(b"passphrase"),
    )
    assert "without a passphrase" in (private_key_problem(key) or "")


def test_keys_that_cannot_sign_rs256_or_es256_384_512_are_refused() -> None:
    small = pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    assert "at least 2048 bits" in (private_key_problem(small) or "")
    k1 = pem(ec.generate_private_key(ec.SECP256K1()))
    assert "P-256, P-384 or P-521" in (private_key_problem(k1) or "")
    edwards = pem(ed25519.Ed25519PrivateKey.generate())
    assert "RSA or an EC" in (private_key_problem(edwards) or "")


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()])
def test_ec_keys_on_the_jose_curves_are_accepted(curve: ec.EllipticCurve) -> None:
    assert private_key_problem(pem(ec.generate_private_key(curve))) is None


def test_the_key_is_never_quoted_in_an_error(rsa_pem: str) -> None:
    broken = rsa_pem.replace("A", "!", 3)
    data = {**CLIENT_CREDENTIALS, "client_auth_method": "private_key_jwt", "private_key": broken}
    for error in errors_of(data):
        assert "!" not in error.message and "MII" not in error.message


def test_an_overlong_key_is_refused_by_its_length() -> None:
    data = {
        **CLIENT_CREDENTIALS,
        "client_auth_method": "private_key_jwt",
        "private_key": "-----BEGIN PRIVATE KEY-----" + "A" * MAX_PRIVATE_KEY_LENGTH,
    }
    errors = errors_of(data)
    assert [e.field for e in errors] == ["private_key"]
    assert "at most" in errors[0].message


def test_the_key_id_is_held_to_the_credential_length() -> None:
    data = {**CLIENT_CREDENTIALS, "client_secret": "s", "private_key_id": "k" * 256}
    assert fields_of(data) == ["private_key_id"]


# -- secrets a method does not send --------------------------------------------------------


@pytest.mark.parametrize("method", ["private_key_jwt", "none"])
def test_a_client_secret_is_refused_where_the_method_sends_none(method: str, rsa_pem: str) -> None:
    data = {**AUTHORIZATION_CODE, "client_auth_method": method, "client_secret": "s3cret"}
    if method == "private_key_jwt":
        data["private_key"] = rsa_pem
    errors = errors_of(data)
    assert [e.field for e in errors] == ["client_secret"]
    assert f"not used with client_auth_method {method}" in errors[0].message
    # Even kept incomplete: a stored secret nobody sends is never kept.
    assert fields_of(data, require_complete=False) == ["client_secret"]


@pytest.mark.parametrize("method", [None, "client_secret_basic", "client_secret_post", "none"])
def test_a_private_key_is_refused_unless_the_method_signs_with_it(
    method: str | None, rsa_pem: str
) -> None:
    data = {**CLIENT_CREDENTIALS, "private_key": rsa_pem}
    if method is not None:
        data["client_auth_method"] = method
    if method != "none":
        data["client_secret"] = "s3cret"
    assert fields_of(data) == ["private_key"]


def test_the_key_id_and_audience_alone_are_harmless_settings() -> None:
    definition = validate(
        {
            **CLIENT_CREDENTIALS,
            "client_secret": "s3cret",
            "private_key_id": "key-2025",
            "client_assertion_audience": "https://idp.example.com",
        }
    )
    assert definition.private_key_id == "key-2025"


def test_an_unknown_method_is_reported_once() -> None:
    data = {**CLIENT_CREDENTIALS, "client_secret": "s", "client_auth_method": "tls_client_auth"}
    errors = errors_of(data)
    assert [e.field for e in errors] == ["client_auth_method"]
    for method in ("client_secret_basic", "client_secret_post", "private_key_jwt", "none"):
        assert method in errors[0].message


# -- none: a public client -----------------------------------------------------------------


@pytest.mark.parametrize("base", [CLIENT_CREDENTIALS, AUTHORIZATION_CODE])
def test_a_public_client_needs_no_credential(base: dict[str, Any]) -> None:
    definition = validate({**base, "client_auth_method": "none"})
    assert definition.client_auth_method is ClientAuthMethod.NONE
    assert missing_fields(definition) == []


def test_the_secret_methods_still_need_the_secret() -> None:
    for method in ("client_secret_basic", "client_secret_post"):
        errors = errors_of({**CLIENT_CREDENTIALS, "client_auth_method": method})
        assert [e.field for e in errors] == ["client_secret"]
        assert errors[0].message.endswith("for oauth2_client_credentials profiles")


def test_the_credential_stands_where_the_secret_stood_in_the_mandatory_order() -> None:
    mandatory = ("identity_provider", "client_id", "client_secret", "token_url")
    assert with_client_credential(mandatory, ClientAuthMethod.PRIVATE_KEY_JWT) == (
        "identity_provider",
        "client_id",
        "private_key",
        "token_url",
    )
    assert with_client_credential(mandatory, ClientAuthMethod.NONE) == (
        "identity_provider",
        "client_id",
        "token_url",
    )
    for method in (ClientAuthMethod.CLIENT_SECRET_BASIC, ClientAuthMethod.CLIENT_SECRET_POST):
        assert with_client_credential(mandatory, method) == mandatory
        assert client_credential_fields(method) == ("client_secret",)


def test_a_stored_public_profile_is_configured_without_a_secret() -> None:
    from datetime import UTC, datetime

    from authprofiles.core.profiles import Profile

    now = datetime.now(UTC)
    definition = validate({**CLIENT_CREDENTIALS, "client_auth_method": "none"})
    profile = Profile(
        **definition.model_dump(), id="p", workspace_id="w", created_at=now, updated_at=now
    )
    assert profile.status is ProfileStatus.CONFIGURED


# -- issuer and device authorization URL ---------------------------------------------------


def test_issuer_and_device_authorization_url_are_kept() -> None:
    definition = validate(
        {
            **CLIENT_CREDENTIALS,
            "client_secret": "s",
            "issuer": "https://idp.example.com",
            "device_authorization_url": "https://idp.example.com/device",
        }
    )
    assert definition.issuer == "https://idp.example.com"
    assert definition.device_authorization_url == "https://idp.example.com/device"


@pytest.mark.parametrize(
    "issuer", ["https://idp.example.com?tenant=a", "https://idp.example.com#x", "https://i.com/?"]
)
def test_an_issuer_has_no_query_or_fragment(issuer: str) -> None:
    assert fields_of({**CLIENT_CREDENTIALS, "client_secret": "s", "issuer": issuer}) == ["issuer"]


@pytest.mark.parametrize("field", ["issuer", "device_authorization_url"])
def test_the_new_urls_are_held_to_https_and_the_url_rules(field: str) -> None:
    base = {**CLIENT_CREDENTIALS, "client_secret": "s"}
    assert fields_of({**base, field: "http://idp.example.com/x"}) == [field]
    assert fields_of({**base, field: "not a url"}) == [field]
    assert fields_of({**base, field: "https://idp.example.com/" + "a" * 3000}) == [field]
    assert fields_of({**base, field: "https://{tenant}.example.com/x"}) == [field]
    # http:// to this machine, or with allow_insecure_http, as for every URL.
    assert validate({**base, field: "http://127.0.0.1:9000/x"})
    assert validate({**base, field: "http://idp.internal/x", "allow_insecure_http": True})


def test_the_urls_may_be_templated_per_tenant() -> None:
    definition = validate(
        {
            **AUTHORIZATION_CODE,
            "client_auth_method": "none",
            "tenancy": True,
            "issuer": "https://login.example.com/{tenant}/v2.0",
            "client_assertion_audience": "https://login.example.com/{tenant}/v2.0",
        }
    )
    assert definition.issuer == "https://login.example.com/{tenant}/v2.0"


def test_every_new_problem_is_reported_at_once(rsa_pem: str) -> None:
    data = {
        **CLIENT_CREDENTIALS,
        "client_auth_method": "none",
        "client_secret": "s",
        "private_key": "garbage",
        "private_key_id": "k" * 300,
        "issuer": "https://idp.example.com?x=1",
        "device_authorization_url": "ftp://idp.example.com/device",
        "client_assertion_audience": "nope",
    }
    assert set(fields_of(data)) == {
        "client_secret",
        "private_key",
        "private_key_id",
        "issuer",
        "device_authorization_url",
        "client_assertion_audience",
    }
