"""private_key_jwt (RFC 7523) and public clients (``none``) on authlib's client: the exact
requests sent, the assertion decoded with the public key (no sockets)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from authprofiles.oauth._authlib import OAuth2Client
from authprofiles.oauth.client_auth import (
    ASSERTION_LIFETIME_SECONDS,
    PrivateKeyJWTAuth,
    register_client_auth_methods,
    signing_key,
)

CLIENT_ID = "client 1+/"
TOKEN_URL = "https://idp.example.com/oauth2/token"
REFRESH_URL = "https://idp.example.com/oauth2/refresh"
REVOCATION_URL = "https://idp.example.com/oauth2/revoke"
ISSUER = "https://idp.example.com"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def pem_of(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_pem_of(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Recorder:
    """A token endpoint that answers every request with a token, and keeps the requests."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path.endswith("/revoke"):
            return httpx.Response(200)
        return httpx.Response(
            200, json={"access_token": "at", "token_type": "Bearer", "expires_in": 60}
        )

    def form(self, index: int = -1) -> dict[str, str]:
        parsed = parse_qs(self.requests[index].content.decode(), keep_blank_values=True)
        return {key: values[0] for key, values in parsed.items()}


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def client_for(recorder: Recorder, method: str, **registration: Any) -> Any:
    client = OAuth2Client(
        client_id=CLIENT_ID,
        client_secret="",
        token_endpoint_auth_method=method,
        revocation_endpoint_auth_method=method,
        transport=httpx.MockTransport(recorder),
        trust_env=False,
    )
    register_client_auth_methods(client, **registration)
    return client


@pytest.fixture
def closing() -> Iterator[list[Any]]:
    clients: list[Any] = []
    yield clients
    for client in clients:
        client.close()


def decoded(assertion: str, public_pem: str, key_type: type[RSAKey] | type[ECKey]) -> Any:
    return jwt.decode(
        assertion,
        key_type.import_key(public_pem),
        algorithms=["RS256", "ES256", "ES384", "ES512"],
    )


# -- private_key_jwt -----------------------------------------------------------------------


def test_a_token_request_carries_a_signed_assertion_and_no_other_credential(
    recorder: Recorder, rsa_key: rsa.RSAPrivateKey, closing: list[Any]
) -> None:
    client = client_for(
        recorder,
        "private_key_jwt",
        private_key=pem_of(rsa_key),
        private_key_id="key-2025",
        token_endpoint=TOKEN_URL,
    )
    closing.append(client)
    client.fetch_token(TOKEN_URL, grant_type="client_credentials")

    form = recorder.form()
    assert form["grant_type"] == "client_credentials"
    assert form["client_assertion_type"] == ASSERTION_TYPE
    assert "client_secret" not in form
    assert "authorization" not in recorder.requests[-1].headers

    token = decoded(form["client_assertion"], public_pem_of(rsa_key), RSAKey)
    assert token.header["alg"] == "RS256"
    assert token.header["kid"] == "key-2025"
    claims = token.claims
    # RFC 7523 section 3: iss and sub are the client id; aud the token endpoint.
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert claims["aud"] == TOKEN_URL
    assert claims["exp"] - claims["iat"] == ASSERTION_LIFETIME_SECONDS
    assert len(claims["jti"]) >= 32


def test_every_request_gets_a_fresh_jti(
    recorder: Recorder, rsa_key: rsa.RSAPrivateKey, closing: list[Any]
) -> None:
    client = client_for(
        recorder, "private_key_jwt", private_key=pem_of(rsa_key), token_endpoint=TOKEN_URL
    )
    closing.append(client)
    client.fetch_token(TOKEN_URL, grant_type="client_credentials")
    client.fetch_token(TOKEN_URL, grant_type="client_credentials")
    public = public_pem_of(rsa_key)
    jtis = {
        decoded(recorder.form(i)["client_assertion"], public, RSAKey).claims["jti"] for i in (0, 1)
    }
    assert len(jtis) == 2


def test_refresh_and_revocation_name_the_token_endpoint_as_audience(
    recorder: Recorder, rsa_key: rsa.RSAPrivateKey, closing: list[Any]
) -> None:
    client = client_for(
        recorder, "private_key_jwt", private_key=pem_of(rsa_key), token_endpoint=TOKEN_URL
    )
    closing.append(client)
    client.refresh_token(REFRESH_URL, refresh_token="rt-1")
    client.revoke_token(REVOCATION_URL, token="rt-1", token_type_hint="refresh_token")

    public = public_pem_of(rsa_key)
    refresh, revocation = recorder.form(0), recorder.form(1)
    assert refresh["grant_type"] == "refresh_token"
    assert revocation["token"] == "rt-1"
    for form in (refresh, revocation):
        assert form["client_assertion_type"] == ASSERTION_TYPE
        claims = decoded(form["client_assertion"], public, RSAKey).claims
        # Not the URL each request went to: the one audience that names the server.
        assert claims["aud"] == TOKEN_URL
    assert str(recorder.requests[1].url) == REVOCATION_URL


def test_the_profiles_assertion_audience_replaces_the_token_endpoint(
    recorder: Recorder, rsa_key: rsa.RSAPrivateKey, closing: list[Any]
) -> None:
    client = client_for(
        recorder,
        "private_key_jwt",
        private_key=pem_of(rsa_key),
        client_assertion_audience=ISSUER,
        token_endpoint=TOKEN_URL,
    )
    closing.append(client)
    client.fetch_token(TOKEN_URL, grant_type="client_credentials")
    client.revoke_token(REVOCATION_URL, token="at")
    public = public_pem_of(rsa_key)
    for index in (0, 1):
        assert (
            decoded(recorder.form(index)["client_assertion"], public, RSAKey).claims["aud"]
            == ISSUER
        )


@pytest.mark.parametrize(
    ("curve", "algorithm"),
    [(ec.SECP256R1(), "ES256"), (ec.SECP384R1(), "ES384"), (ec.SECP521R1(), "ES512")],
)
def test_an_ec_key_signs_with_the_algorithm_of_its_curve(
    recorder: Recorder, curve: ec.EllipticCurve, algorithm: str, closing: list[Any]
) -> None:
    key = ec.generate_private_key(curve)
    client = client_for(
        recorder, "private_key_jwt", private_key=pem_of(key), token_endpoint=TOKEN_URL
    )
    closing.append(client)
    client.fetch_token(TOKEN_URL, grant_type="client_credentials")
    token = decoded(recorder.form()["client_assertion"], public_pem_of(key), ECKey)
    assert token.header["alg"] == algorithm
    assert "kid" not in token.header  # none set on the profile
    assert token.claims["sub"] == CLIENT_ID


def test_the_assertion_times_come_from_the_clock_given(rsa_key: rsa.RSAPrivateKey) -> None:
    auth = PrivateKeyJWTAuth(
        pem_of(rsa_key), audience=TOKEN_URL, key_id="k1", now=lambda: 1_700_000_000.7
    )

    class Client:
        client_id = CLIENT_ID

    claims = decoded(auth.sign(Client(), TOKEN_URL), public_pem_of(rsa_key), RSAKey).claims
    assert (claims["iat"], claims["exp"]) == (1_700_000_000, 1_700_000_060)


def test_a_key_that_cannot_sign_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="RSA or EC private key"):
        signing_key("-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----")
    with pytest.raises(ValueError, match="P-256, P-384 or P-521"):
        signing_key(pem_of(ec.generate_private_key(ec.SECP256K1())))


def test_private_key_jwt_without_a_key_fails_before_any_request(recorder: Recorder) -> None:
    with pytest.raises(ValueError, match="private key"):
        client_for(recorder, "private_key_jwt", token_endpoint=TOKEN_URL)
    assert recorder.requests == []


def test_private_key_jwt_without_an_audience_fails(
    recorder: Recorder, rsa_key: rsa.RSAPrivateKey
) -> None:
    with pytest.raises(ValueError, match="audience"):
        client_for(recorder, "private_key_jwt", private_key=pem_of(rsa_key))


# -- none: a public client --------------------------------------------------------------


def test_a_public_client_sends_its_id_in_the_body_and_no_credentials(
    recorder: Recorder, closing: list[Any]
) -> None:
    client = client_for(recorder, "none")
    closing.append(client)
    client.fetch_token(TOKEN_URL, grant_type="authorization_code", code="c-1", code_verifier="v")
    client.revoke_token(REVOCATION_URL, token="at")
    for index in (0, 1):
        form = recorder.form(index)
        # RFC 6749 section 3.2.1 and RFC 7009 section 2.1: the client id identifies it.
        assert form["client_id"] == CLIENT_ID
        assert not {"client_secret", "client_assertion", "client_assertion_type"} & set(form)
        assert "authorization" not in recorder.requests[index].headers
