"""Webhook signatures as the contract states them: ``X-AuthProfiles-Signature:
t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">``, keyed with the secret's UTF-8 bytes. The
receiver's side is computed here with ``hmac`` directly, not with the code under test."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest

from authprofiles.services.notifications.signing import SIGNATURE_HEADER, signature, verify

SECRET = "whsec_k9Jv3-planted-secret"
BODY = b'{"id":"1","event":"profile.failing","detail":"refused"}'
NOW = 1_738_316_000


def receiver_mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(
        secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()


def test_the_header_is_named_as_the_contract_says() -> None:
    assert SIGNATURE_HEADER == "X-AuthProfiles-Signature"


def test_the_signature_is_t_and_v1_over_the_timestamp_a_dot_and_the_body() -> None:
    header = signature(SECRET, BODY, NOW)
    match = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})", header)
    assert match is not None, header
    assert int(match[1]) == NOW
    assert hmac.compare_digest(match[2], receiver_mac(SECRET, NOW, BODY))


def test_the_key_is_the_secrets_utf8_bytes() -> None:
    secret = "clé-secrète-✓"
    header = signature(secret, BODY, NOW)
    assert header.endswith("v1=" + receiver_mac(secret, NOW, BODY))


def test_verify_accepts_its_own_signature() -> None:
    assert verify(SECRET, BODY, signature(SECRET, BODY, NOW), now=NOW + 10)


@pytest.mark.parametrize(
    ("secret", "body", "now"),
    [
        ("another secret", BODY, NOW),  # not the endpoint's secret
        (SECRET, BODY + b" ", NOW),  # the body changed on the way
        (SECRET, BODY, NOW + 301),  # replayed after the tolerance
        (SECRET, BODY, NOW - 301),  # from the future
    ],
)
def test_verify_refuses_a_wrong_secret_a_changed_body_or_an_old_time(
    secret: str, body: bytes, now: int
) -> None:
    assert not verify(secret, body, signature(SECRET, BODY, NOW), now=now)


@pytest.mark.parametrize(
    "header",
    ["", "v1=abc", "t=abc,v1=00", f"t={NOW}", f"t={NOW},t={NOW},v1=00", "garbage"],
)
def test_verify_refuses_a_malformed_header(header: str) -> None:
    assert not verify(SECRET, BODY, header, now=NOW)


def test_a_changed_timestamp_breaks_the_signature() -> None:
    mac = signature(SECRET, BODY, NOW).split("v1=")[1]
    assert not verify(SECRET, BODY, f"t={NOW + 1},v1={mac}", now=NOW)
