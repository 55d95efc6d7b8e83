"""Webhook signatures: ``X-AuthProfiles-Signature: t=<unix time>,v1=<hex HMAC-SHA256>``.

The MAC is over ``"<t>.<body>"`` (the timestamp, a dot, the body's bytes as sent) with
the endpoint's secret's UTF-8 bytes as the key. Signing the time with the body lets a
receiver refuse a replayed delivery (an old ``t``); ``v1`` names the scheme, so a
second one can be added beside it later without breaking receivers of this one.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-AuthProfiles-Signature"
#: How old a signature :func:`verify` accepts by default, in seconds.
TOLERANCE_SECONDS = 300


def _mac(secret: str, body: bytes, timestamp: int) -> str:
    signed = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """The header value for ``body`` sent at ``timestamp`` (Unix seconds)."""
    return f"t={timestamp},v1={_mac(secret, body, timestamp)}"


def verify(
    secret: str,
    body: bytes,
    header: str,
    *,
    now: int,
    tolerance: int = TOLERANCE_SECONDS,
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within ``tolerance`` seconds of
    ``now``: what a receiver does (shown here, and used by the tests)."""
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        (timestamp,) = (int(t) for t in parts.get("t", []))
    except ValueError:
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = _mac(secret, body, timestamp)
    return any(hmac.compare_digest(expected, given) for given in parts.get("v1", []))


__all__ = ["SIGNATURE_HEADER", "TOLERANCE_SECONDS", "signature", "verify"]
