"""Client authentication at the token endpoint, put on authlib's OAuth 2.0 client through
its extension point for client authentication methods (``register_client_auth_method``),
so every request authlib authenticates (token requests of every grant, refresh, RFC 7009
revocation) carries the credentials the RFCs ask for.

- ``client_secret_basic``: authlib's own encoder joins the raw client id and secret with a
  colon, so a secret holding ``+``, ``%``, ``:`` or a space reaches a server that follows
  RFC 6749 section 2.3.1 as a different secret (and one outside latin-1 cannot be sent at
  all). The encoder here takes its place, with the encoding of
  ``core.client_secret_basic`` (which the profile test's redactor uses too).
- ``private_key_jwt`` (RFC 7523 section 2.2): a JWT signed with the client's private key
  by authlib's ``PrivateKeyJWT``, with the claims of section 3 and a short lifetime.
- ``client_secret_post`` and ``none`` are authlib's own encoders, which already do what
  the RFCs say: the id and secret as form parameters (RFC 6749 section 2.3.1), or for a
  public client the id alone (section 3.2.1: "A client MAY use the "client_id" request
  parameter to identify itself when sending requests to the token endpoint"; RFC 7009
  section 2.1 the same for revocation).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, MutableMapping
from typing import Any, Protocol

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from authprofiles.core.client_secret_basic import basic_authorization
from authprofiles.oauth._authlib import PrivateKeyJWT, generate_token, private_key_jwt_sign

HTTP_BASIC_METHOD = "client_secret_basic"
PRIVATE_KEY_JWT_METHOD = "private_key_jwt"
#: How long a client assertion is good for. RFC 7523 section 3: "The JWT MUST contain an
#: "exp" (expiration time) claim that limits the time window during which the JWT can be
#: used"; the request it rides on is sent at once, so a minute is plenty, and a
#: captured assertion is of little use for long.
ASSERTION_LIFETIME_SECONDS = 60
#: RFC 7518 section 3.1: the ECDSA algorithm that goes with each curve.
_EC_ALGORITHMS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}


class _ClientCredentials(Protocol):
    """What authlib's ``ClientAuth`` hands an encoder: the client's id and secret."""

    client_id: str
    client_secret: str | None


def encode_client_secret_basic(
    client: _ClientCredentials,
    method: str,
    uri: str,
    headers: MutableMapping[str, str],
    body: Any,
) -> tuple[str, MutableMapping[str, str], Any]:
    """authlib's client-auth encoder signature: ``(client, method, uri, headers, body)``."""
    headers["Authorization"] = basic_authorization(client.client_id, client.client_secret)
    return uri, headers, body


SigningKey = RSAKey | ECKey


@functools.lru_cache(maxsize=64)
def signing_key(private_key: str) -> tuple[SigningKey, str]:
    """The PEM private key as a JWK, and the JWS algorithm it signs with: RS256 for RSA
    (the algorithm RFC 7518 section 3.1 recommends and every server takes), ES256, ES384
    or ES512 for EC by its curve. Kept per key: parsing an RSA key takes about 30 ms,
    and a client is built for every request to the authorization server."""
    try:
        return RSAKey.import_key(private_key), "RS256"
    except (JoseError, ValueError, TypeError):
        pass
    try:
        ec_key = ECKey.import_key(private_key)
    except (JoseError, ValueError, TypeError):
        raise ValueError("private_key is not an RSA or EC private key in PEM") from None
    algorithm = _EC_ALGORITHMS.get(ec_key.curve_name)
    if algorithm is None:
        raise ValueError(f"private_key is on {ec_key.curve_name}: P-256, P-384 or P-521 sign")
    return ec_key, algorithm


class PrivateKeyJWTAuth(PrivateKeyJWT):  # type: ignore[misc]  # authlib is untyped
    """``private_key_jwt``: RFC 7523 section 2.2 client authentication.

    "client_assertion_type" is ``urn:ietf:params:oauth:client-assertion-type:jwt-bearer``
    and "client_assertion" a JWT whose claims follow section 3: ``iss`` and ``sub`` the
    client id ("the "sub" (subject) ... MUST be the "client_id" of the OAuth client"),
    ``aud`` the authorization server, a fresh ``jti``, ``iat`` now and ``exp`` a minute on.
    ``aud`` is the same for the token, refresh and revocation requests: section 3 says
    "The JWT MUST contain an "aud" (audience) claim containing a value that identifies the
    authorization server as an intended audience ... the token endpoint URL of the
    authorization server MAY be used as a value", so it is the profile's assertion
    audience, or else its token endpoint URL, never the URL of the request at hand.
    """

    name = PRIVATE_KEY_JWT_METHOD

    def __init__(
        self,
        private_key: str,
        *,
        audience: str,
        key_id: str | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        key, algorithm = signing_key(private_key)
        # RFC 7515 section 4.1.4: "kid" tells the server which of its registered keys of
        # the client to verify with.
        super().__init__(
            token_endpoint=audience, headers={"kid": key_id} if key_id else None, alg=algorithm
        )
        self._key = key
        self._now = now

    def sign(self, auth: Any, token_endpoint: str) -> str:
        issued_at = int(self._now())
        return str(
            private_key_jwt_sign(
                self._key,
                client_id=auth.client_id,
                token_endpoint=token_endpoint,
                alg=self.alg,
                # Section 3: "The JWT MAY contain a "jti" (JWT ID) claim that provides a
                # unique identifier for the token"; servers use it to refuse a replay.
                claims={"jti": generate_token(36)},
                header=dict(self.headers or {}),
                issued_at=issued_at,
                expires_at=issued_at + ASSERTION_LIFETIME_SECONDS,
            )
        )


def register_client_auth_methods(
    client: Any,
    *,
    private_key: str | None = None,
    private_key_id: str | None = None,
    client_assertion_audience: str | None = None,
    token_endpoint: str | None = None,
) -> None:
    """Put the RFC-conformant encoders on an authlib OAuth 2.0 client.

    ``private_key`` (PEM) makes ``private_key_jwt`` available, signing with it under the
    ``kid`` ``private_key_id`` for the audience ``client_assertion_audience``, or else
    ``token_endpoint`` (the profile's token URL, as rendered for the connection).
    """
    client.register_client_auth_method((HTTP_BASIC_METHOD, encode_client_secret_basic))
    if private_key:
        audience = client_assertion_audience or token_endpoint
        if not audience:
            raise ValueError("private_key_jwt needs the token endpoint URL as its audience")
        client.register_client_auth_method(
            PrivateKeyJWTAuth(private_key, audience=audience, key_id=private_key_id)
        )
    elif PRIVATE_KEY_JWT_METHOD in (
        getattr(client, "token_endpoint_auth_method", None),
        getattr(client, "revocation_endpoint_auth_method", None),
    ):
        raise ValueError("private_key_jwt needs the profile's private key")


__all__ = [
    "ASSERTION_LIFETIME_SECONDS",
    "HTTP_BASIC_METHOD",
    "PRIVATE_KEY_JWT_METHOD",
    "PrivateKeyJWTAuth",
    "encode_client_secret_basic",
    "register_client_auth_methods",
    "signing_key",
]
