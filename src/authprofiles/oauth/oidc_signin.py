"""Signing people in with an OpenID Connect provider: the relying party's side of OpenID
Connect Core 1.0, authorization code flow (section 3.1), with PKCE (RFC 7636, S256).

What this module does, and why each step:

- reads the provider's metadata from ``{issuer}/.well-known/openid-configuration``
  (OpenID Connect Discovery 1.0 section 4) and keeps it a while; "The issuer value
  returned MUST be identical to the Issuer URL that was used as the prefix" (4.3);
- builds the authorization request with ``state``, ``nonce`` and a code challenge;
- redeems the code at the token endpoint (client_secret_basic, or a public client);
- validates the ID token as section 3.1.3.7 lists: the signature with a key of the
  provider's JWKS (fetched again once when the token names a key not seen yet, which is
  how providers roll keys), ``iss`` identical to the issuer, ``aud`` containing our
  client id (and ``azp`` being it when there are several audiences), ``exp`` in the
  future and ``iat`` not in it (a minute of leeway for clocks), and ``nonce`` equal to
  the one sent: a token minted for another request, replayed, is refused;
- reads the UserInfo endpoint (section 5.3) for ``email`` and ``email_verified`` when
  the ID token carries no email (providers put scope claims in one or the other); its
  ``sub`` must be the ID token's (5.3.2).

JOSE is joserfc's (authlib's successor for it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from authprofiles.core.client_secret_basic import basic_authorization
from authprofiles.oauth.errors import GrantRefused, IdPUnavailable, OAuthFailure
from authprofiles.oauth.transport import Transports

#: Metadata and keys are read again after this long (a provider's keys roll slowly; an
#: unknown ``kid`` fetches them at once anyway).
METADATA_TTL_SECONDS = 600.0
#: Clock differences tolerated on ``exp`` and ``iat``.
LEEWAY_SECONDS = 60
#: Signature algorithms accepted for ID tokens: asymmetric ones only. ``none`` and the
#: HMAC family (keyed with the client secret) are refused, so a token can only come from
#: whoever holds the provider's private key.
ASYMMETRIC_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)


class SignInRefused(OAuthFailure):
    """The provider's answer cannot sign anyone in: ``detail`` says why (no secret)."""


class UnknownSigningKey(SignInRefused):
    """The ID token names a key the JWKS at hand does not have."""


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    id_token_algorithms: tuple[str, ...]
    #: RFC 9207 section 3: the authorization response carries ``iss``.
    iss_parameter_supported: bool


def code_challenge(code_verifier: str) -> str:
    """RFC 7636 section 4.2: ``BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))``."""
    digest = hashlib.sha256(code_verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def check_id_token(
    id_token: str,
    *,
    keys: KeySet,
    issuer: str,
    client_id: str,
    nonce: str,
    now: datetime,
    algorithms: tuple[str, ...] = ASYMMETRIC_ALGORITHMS,
    leeway: int = LEEWAY_SECONDS,
) -> dict[str, Any]:
    """The ID token's claims once every check of OpenID Connect Core section 3.1.3.7
    this relying party makes has passed; :class:`SignInRefused` naming the first that
    failed (:class:`UnknownSigningKey` when the token's ``kid`` is not in ``keys``)."""
    allowed = [alg for alg in algorithms if alg in ASYMMETRIC_ALGORITHMS]
    if not allowed:
        # An empty list would let joserfc fall back to its default algorithms, HS256
        # among them (keyed with a secret a client knows): refuse rather than guess.
        raise SignInRefused(
            "the provider signs ID tokens with no asymmetric algorithm this server accepts "
            f"(it lists {', '.join(algorithms)[:200] or 'none'}; accepted: "
            f"{', '.join(ASYMMETRIC_ALGORITHMS)})"
        )
    try:
        token = jwt.decode(id_token, keys, algorithms=allowed)
    except InvalidKeyIdError:
        raise UnknownSigningKey(
            "the ID token is signed with a key the provider does not list"
        ) from None
    except JoseError as exc:
        raise SignInRefused(f"the ID token's signature does not verify ({exc.error})") from None
    except ValueError:
        raise SignInRefused("the ID token is not a signed JWT") from None
    claims: dict[str, Any] = dict(token.claims)
    # 2. "The Issuer Identifier ... MUST exactly match the value of the iss (issuer) Claim."
    if claims.get("iss") != issuer:
        raise SignInRefused("the ID token was issued by another issuer")
    # 3. "The Client MUST validate that the aud (audience) Claim contains its client_id
    # value ... The ID Token MUST be rejected if the ID Token does not list the Client
    # as a valid audience".
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience
    if not isinstance(audiences, list) or client_id not in audiences:
        raise SignInRefused("the ID token is not meant for this client (aud)")
    # 4./5. With several audiences, "azp" names the party it was issued to.
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != client_id:
        raise SignInRefused("the ID token was issued to another party (azp)")
    timestamp = int(now.timestamp())
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise SignInRefused("the ID token has no expiry (exp)")
    if exp + leeway <= timestamp:
        raise SignInRefused("the ID token has expired")
    if not isinstance(iat, int | float) or isinstance(iat, bool) or iat - leeway > timestamp:
        raise SignInRefused("the ID token's issue time (iat) is missing or in the future")
    # 11. "The value of the nonce Claim MUST be checked to verify that it is the same
    # value as the one that was sent in the Authentication Request ... to detect replay
    # attacks."
    sent = claims.get("nonce")
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), nonce.encode()):
        raise SignInRefused("the ID token's nonce is not this sign-in's (a replayed token?)")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise SignInRefused("the ID token names no subject (sub)")
    return claims


class OidcSignIn:
    """The relying party: provider metadata and keys cached per issuer, the token
    endpoint and UserInfo called through the app's HTTP transports (blocking)."""

    def __init__(
        self,
        transports: Transports,
        *,
        ttl_seconds: float = METADATA_TTL_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.transports = transports
        self.ttl_seconds = ttl_seconds
        self._monotonic = monotonic
        self._metadata: dict[str, tuple[float, ProviderMetadata]] = {}
        self._keys: dict[str, tuple[float, KeySet]] = {}
        self._lock = threading.Lock()

    # -- metadata and keys -------------------------------------------------------------
    def metadata(self, issuer: str) -> ProviderMetadata:
        with self._lock:
            hit = self._metadata.get(issuer)
        if hit is not None and hit[0] > self._monotonic():
            return hit[1]
        found = self._discover(issuer)
        with self._lock:
            self._metadata[issuer] = (self._monotonic() + self.ttl_seconds, found)
        return found

    def _discover(self, issuer: str) -> ProviderMetadata:
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = self._get_json(url)
        if document.get("issuer") != issuer:
            # Discovery 4.3: a document naming another issuer is not this provider's.
            raise SignInRefused(f"{url} names the issuer {str(document.get('issuer'))[:100]!r}")
        members = {}
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            value = document.get(name)
            if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https"):
                raise SignInRefused(f"the provider's metadata has no usable {name}")
            members[name] = value
        userinfo = document.get("userinfo_endpoint")
        algorithms = document.get("id_token_signing_alg_values_supported") or ["RS256"]
        return ProviderMetadata(
            issuer=issuer,
            authorization_endpoint=members["authorization_endpoint"],
            token_endpoint=members["token_endpoint"],
            jwks_uri=members["jwks_uri"],
            userinfo_endpoint=userinfo if isinstance(userinfo, str) else None,
            id_token_algorithms=tuple(a for a in algorithms if isinstance(a, str)),
            iss_parameter_supported=document.get("authorization_response_iss_parameter_supported")
            is True,
        )

    def _key_set(self, metadata: ProviderMetadata, *, fresh: bool) -> KeySet:
        with self._lock:
            hit = self._keys.get(metadata.issuer)
        if not fresh and hit is not None and hit[0] > self._monotonic():
            return hit[1]
        document = self._get_json(metadata.jwks_uri)
        try:
            keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError):
            raise SignInRefused("the provider's JWKS could not be read") from None
        with self._lock:
            self._keys[metadata.issuer] = (self._monotonic() + self.ttl_seconds, keys)
        return keys

    # -- the flow ----------------------------------------------------------------------
    def authorization_url(
        self,
        issuer: str,
        *,
        client_id: str,
        redirect_uri: str,
        scope: str,
        state: str,
        nonce: str,
        code_verifier: str,
    ) -> str:
        endpoint = self.metadata(issuer).authorization_endpoint
        query = urlencode(
            {
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "scope": scope,
                "state": state,
                "nonce": nonce,
                "code_challenge": code_challenge(code_verifier),
                "code_challenge_method": "S256",
            }
        )
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"

    def redeem(
        self,
        issuer: str,
        *,
        client_id: str,
        client_secret: str | None,
        code: str,
        code_verifier: str,
        redirect_uri: str,
        nonce: str,
        now: datetime,
    ) -> dict[str, Any]:
        """Exchange the code, validate the ID token, and return the person's claims (the
        ID token's, completed from UserInfo when it carries no email)."""
        metadata = self.metadata(issuer)
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        }
        headers = {"Accept": "application/json"}
        if client_secret:
            # client_secret_basic, each part form-urlencoded first (RFC 6749 section 2.3.1).
            headers["Authorization"] = basic_authorization(client_id, client_secret)
        else:
            form["client_id"] = client_id
        answer = self._post_form(metadata.token_endpoint, form, headers)
        id_token = answer.get("id_token")
        if not isinstance(id_token, str):
            raise SignInRefused(
                "the provider's token answer has no ID token (is `openid` a scope?)"
            )
        claims = self.verify_id_token(metadata, id_token, client_id=client_id, nonce=nonce, now=now)
        access_token = answer.get("access_token")
        if "email" not in claims and metadata.userinfo_endpoint and isinstance(access_token, str):
            info = self._get_json(
                metadata.userinfo_endpoint, headers={"Authorization": f"Bearer {access_token}"}
            )
            if info.get("sub") != claims["sub"]:
                raise SignInRefused("the provider's UserInfo answer is about someone else (sub)")
            claims = {**info, **claims}
        return claims

    def verify_id_token(
        self,
        metadata: ProviderMetadata,
        id_token: str,
        *,
        client_id: str,
        nonce: str,
        now: datetime,
    ) -> dict[str, Any]:
        """:func:`check_id_token` with the provider's keys, fetched again once when the
        token names a key not among those kept."""
        check: Mapping[str, Any] = {
            "issuer": metadata.issuer,
            "client_id": client_id,
            "nonce": nonce,
            "now": now,
            "algorithms": metadata.id_token_algorithms,
        }
        try:
            return check_id_token(id_token, keys=self._key_set(metadata, fresh=False), **check)
        except UnknownSigningKey:
            return check_id_token(id_token, keys=self._key_set(metadata, fresh=True), **check)

    # -- HTTP --------------------------------------------------------------------------
    def _get_json(self, url: str, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        try:
            response = self.transports.client(None).get(
                url, headers={"Accept": "application/json", **(headers or {})}
            )
        except httpx.HTTPError as exc:
            raise IdPUnavailable(f"could not reach {url} ({type(exc).__name__})") from exc
        return self._json_of(url, response)

    def _post_form(
        self, url: str, form: Mapping[str, str], headers: Mapping[str, str]
    ) -> dict[str, Any]:
        try:
            response = self.transports.client(None).post(url, data=dict(form), headers=headers)
        except httpx.HTTPError as exc:
            raise IdPUnavailable(f"could not reach {url} ({type(exc).__name__})") from exc
        if response.status_code == 400 or response.status_code == 401:
            try:
                error = response.json()
            except ValueError:
                error = None
            if not isinstance(error, dict):
                error = {}
            raise GrantRefused(
                str(error.get("error") or "invalid_request")[:100],
                str(error.get("error_description"))[:300]
                if error.get("error_description")
                else None,
                response.status_code,
            )
        return self._json_of(url, response)

    @staticmethod
    def _json_of(url: str, response: httpx.Response) -> dict[str, Any]:
        if response.status_code != 200:
            raise IdPUnavailable(f"{url} answered HTTP {response.status_code}")
        try:
            document = response.json()
        except ValueError:
            raise IdPUnavailable(f"{url} did not answer with JSON") from None
        if not isinstance(document, dict):
            raise IdPUnavailable(f"{url} did not answer with a JSON object")
        return document


__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "OidcSignIn",
    "ProviderMetadata",
    "SignInRefused",
    "UnknownSigningKey",
    "check_id_token",
    "code_challenge",
]
