"""Single sign-on's ID token checks (OpenID Connect Core section 3.1.3.7): tokens made
here with joserfc, each forged in one way, each refused; and the provider's keys are
fetched again once when a token names a key not seen yet (key rollover)."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, RSAKey

from authprofiles.oauth.oidc_signin import (
    OidcSignIn,
    SignInRefused,
    UnknownSigningKey,
    check_id_token,
    code_challenge,
)
from authprofiles.services.signin import SignInRefused as ServiceRefused
from authprofiles.services.signin import SignInService, csrf_matches, safe_next
from authprofiles.settings import Settings

ISSUER = "https://op.example"
CLIENT = "authprofiles-console"
NONCE = "n-0S6_WzA2Mj"
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})
OTHER_KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})  # same kid, other key
PUBLIC = KeySet([RSAKey.import_key(KEY.as_dict(private=False))])


def claims(**changes: Any) -> dict[str, Any]:
    now = int(NOW.timestamp())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "248289761001",
        "aud": CLIENT,
        "exp": now + 300,
        "iat": now,
        "nonce": NONCE,
        "email": "jane@example.com",
        "email_verified": True,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def token(key: Any = KEY, header: dict[str, Any] | None = None, **changes: Any) -> str:
    return jwt.encode(header or {"alg": "RS256", "kid": "k1"}, claims(**changes), key)


def check(id_token: str, *, nonce: str = NONCE) -> dict[str, Any]:
    return check_id_token(
        id_token, keys=PUBLIC, issuer=ISSUER, client_id=CLIENT, nonce=nonce, now=NOW
    )


def test_a_good_id_token_gives_its_claims() -> None:
    assert check(token())["email"] == "jane@example.com"
    # Several audiences: azp names this client.
    assert check(token(aud=[CLIENT, "another"], azp=CLIENT))["sub"] == "248289761001"


@pytest.mark.parametrize(
    ("forged", "reason"),
    [
        (lambda: token(aud="someone-else"), "aud"),
        (lambda: token(aud=["someone-else", "another"]), "aud"),
        (lambda: token(aud=[CLIENT, "another"]), "azp"),
        (lambda: token(aud=[CLIENT, "another"], azp="another"), "azp"),
        (lambda: token(iss="https://attacker.example"), "issuer"),
        (lambda: token(iss=ISSUER + "/"), "issuer"),
        (lambda: token(key=OTHER_KEY), "signature"),
        (lambda: token(exp=int((NOW - timedelta(minutes=5)).timestamp())), "expired"),
        (lambda: token(exp=None), "exp"),
        (lambda: token(iat=int((NOW + timedelta(minutes=5)).timestamp())), "iat"),
        (lambda: token(nonce="the nonce of another sign-in"), "nonce"),
        (lambda: token(nonce=None), "nonce"),
        (lambda: token(sub=None), "sub"),
    ],
    ids=[
        "wrong audience",
        "only other audiences",
        "several audiences without azp",
        "azp of another party",
        "wrong issuer",
        "issuer with a trailing slash",
        "signed with another key",
        "expired",
        "no expiry",
        "issued in the future",
        "replayed nonce",
        "no nonce",
        "no subject",
    ],
)
def test_a_forged_id_token_is_refused(forged: Any, reason: str) -> None:
    with pytest.raises(SignInRefused) as refused:
        check(forged())
    assert reason in refused.value.detail


def test_the_expiry_has_a_small_leeway_for_clocks() -> None:
    assert check(token(exp=int((NOW - timedelta(seconds=30)).timestamp())))


def test_unsigned_and_symmetrically_signed_tokens_are_refused() -> None:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    unsigned = f"{part({'alg': 'none'})}.{part(claims())}."
    with pytest.raises(SignInRefused):
        check(unsigned)
    # HS256 keyed with something public (the RSA key's modulus) must not pass.
    secret = OctKey.import_key(json.dumps(KEY.as_dict(private=False)).encode())
    hmac_signed = jwt.encode({"alg": "HS256", "kid": "k1"}, claims(), secret)
    with pytest.raises(SignInRefused):
        check(hmac_signed)
    with pytest.raises(SignInRefused):
        check("not.a.jwt")


def test_a_token_naming_an_unknown_key_says_so() -> None:
    with pytest.raises(UnknownSigningKey):
        check(token(header={"alg": "RS256", "kid": "rolled-in"}))


def test_a_replayed_token_is_refused_for_the_next_sign_in() -> None:
    """A token good for one sign-in (its nonce) presented for another is refused."""
    first = token()
    assert check(first, nonce=NONCE)
    with pytest.raises(SignInRefused, match="nonce"):
        check(first, nonce="the next sign-in's nonce")


@pytest.mark.parametrize(
    "email_claims",
    [
        {"email_verified": None},
        {"email_verified": False},
        {"email_verified": "false"},
        {"email": None},
    ],
    ids=["missing email_verified", "unverified", "unverified as text", "no email"],
)
def test_a_person_is_matched_only_by_a_verified_email(email_claims: dict[str, Any]) -> None:
    with pytest.raises(ServiceRefused):
        SignInService._verified_email(claims(**email_claims))
    assert SignInService._verified_email(claims(email="Jane@Example.com")) == "jane@example.com"


# -- the provider's keys, fetched again once on an unknown kid ----------------------


class _Transports:
    def __init__(self, handler: Any) -> None:
        self._client = httpx.Client(transport=httpx.MockTransport(handler))

    def client(self, _egress: str | None) -> httpx.Client:
        return self._client


def test_keys_are_fetched_again_once_when_a_token_names_a_new_key() -> None:
    rolled = RSAKey.generate_key(2048, parameters={"kid": "k2"})
    published = [KEY]
    fetched: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        fetched.append(request.url.path)
        if request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(
                200,
                json={
                    "issuer": ISSUER,
                    "authorization_endpoint": ISSUER + "/auth",
                    "token_endpoint": ISSUER + "/token",
                    "jwks_uri": ISSUER + "/jwks",
                },
            )
        keys = [k.as_dict(private=False) for k in published]
        return httpx.Response(200, json={"keys": keys})

    oidc = OidcSignIn(_Transports(handler))  # type: ignore[arg-type]
    metadata = oidc.metadata(ISSUER)
    verify = {"client_id": CLIENT, "nonce": NONCE, "now": NOW}
    assert oidc.verify_id_token(metadata, token(), **verify)
    assert oidc.verify_id_token(metadata, token(), **verify)
    assert fetched.count("/jwks") == 1  # kept

    published.append(rolled)
    new = token(key=rolled, header={"alg": "RS256", "kid": "k2"})
    assert oidc.verify_id_token(metadata, new, **verify)
    assert fetched.count("/jwks") == 2  # fetched again, once

    unknown = token(header={"alg": "RS256", "kid": "never-published"})
    with pytest.raises(UnknownSigningKey):
        oidc.verify_id_token(metadata, unknown, **verify)
    assert fetched.count("/jwks") == 3
    assert fetched.count("/.well-known/openid-configuration") == 1


def test_metadata_naming_another_issuer_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"issuer": "https://elsewhere.example"})

    with pytest.raises(SignInRefused, match="names the issuer"):
        OidcSignIn(_Transports(handler)).metadata(ISSUER)  # type: ignore[arg-type]


def test_the_code_challenge_is_rfc_7636_s256() -> None:
    # RFC 7636 appendix B's example.
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert code_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("/profiles/1?tab=access#x", "/profiles/1?tab=access#x"),
        (None, "/"),
        ("", "/"),
        ("profiles", "/"),
        ("https://evil.example/x", "/"),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
        ("/\tevil", "/"),
        ("javascript:alert(1)", "/"),
    ],
)
def test_after_sign_in_only_local_paths_are_followed(given: str | None, kept: str) -> None:
    assert safe_next(given) == kept


def test_tokens_made_now_pass_with_the_wall_clock() -> None:
    now = datetime.now(UTC)
    fresh = jwt.encode(
        {"alg": "RS256", "kid": "k1"},
        claims(iat=int(time.time()), exp=int(time.time()) + 60),
        KEY,
    )
    assert check_id_token(fresh, keys=PUBLIC, issuer=ISSUER, client_id=CLIENT, nonce=NONCE, now=now)


@pytest.mark.parametrize("listed", [("HS256",), ("none",), ("HS256", "HS512"), ()])
def test_a_provider_listing_no_asymmetric_algorithm_is_refused(listed: tuple[str, ...]) -> None:
    """With nothing asymmetric left, joserfc would fall back to its own defaults (HS256
    among them): refused, saying why, whatever the token."""
    secret = OctKey.import_key(json.dumps(KEY.as_dict(private=False)).encode())
    for presented in (token(), jwt.encode({"alg": "HS256", "kid": "k1"}, claims(), secret)):
        with pytest.raises(SignInRefused) as refused:
            check_id_token(
                presented,
                keys=PUBLIC,
                issuer=ISSUER,
                client_id=CLIENT,
                nonce=NONCE,
                now=NOW,
                algorithms=listed,
            )
        assert "no asymmetric algorithm" in refused.value.detail


def test_empty_csrf_tokens_never_match() -> None:
    """Login CSRF: a cross-site form sends `csrf_token=` and the victim's browser has no
    cookie; "" against "" must not pass."""
    assert not csrf_matches("", "")
    assert not csrf_matches("", None)
    assert not csrf_matches(None, "")
    assert not csrf_matches("x" * 43, "")
    assert not csrf_matches("", "x" * 43)
    assert not csrf_matches("x" * 43, "y" * 43)
    assert csrf_matches("x" * 43, "x" * 43)


@pytest.mark.parametrize(
    ("setting", "allowed"),
    [
        ("", frozenset()),
        ("example.com", frozenset({"example.com"})),
        (" Example.COM , @example.org,, ", frozenset({"example.com", "example.org"})),
    ],
)
def test_sso_allowed_domains_are_read_as_lower_case_domains(
    setting: str, allowed: frozenset[str]
) -> None:
    assert Settings(sso_allowed_domains=setting).sso_allowed_domain_set == allowed
