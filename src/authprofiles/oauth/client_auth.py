"""Client authentication with HTTP Basic, the way RFC 6749 section 2.3.1 defines it.

authlib's own ``client_secret_basic`` encoder joins the raw client id and secret with a
colon, so a secret holding ``+``, ``%``, ``:`` or a space reaches a server that follows
the RFC as a different secret (and one outside latin-1 cannot be sent at all). The
encoder here takes its place through authlib's extension point for client
authentication methods (``register_client_auth_method``), so every request authlib
authenticates with it (token requests of every grant, refresh, RFC 7009 revocation)
carries the credentials the RFC asks for.
"""

from __future__ import annotations

import base64
from collections.abc import MutableMapping
from typing import Any, Protocol
from urllib.parse import quote_plus

HTTP_BASIC_METHOD = "client_secret_basic"


class _ClientCredentials(Protocol):
    """What authlib's ``ClientAuth`` hands an encoder: the client's id and secret."""

    client_id: str
    client_secret: str | None


def form_urlencode(value: str) -> str:
    """One value in the ``application/x-www-form-urlencoded`` encoding of RFC 6749
    Appendix B.

    Its example: "the value consisting of the six Unicode code points (1) U+0020 (SPACE),
    (2) U+0025 (PERCENT SIGN), (3) U+0026 (AMPERSAND), (4) U+002B (PLUS SIGN), (5) U+00A3
    (POUND SIGN), and (6) U+20AC (EURO SIGN) would be encoded into the octet sequence
    below (using hexadecimal notation): 20 25 26 2B C2 A3 E2 82 AC and then represented in
    the payload as: +%25%26%2B%C2%A3%E2%82%AC". So UTF-8 first, a space becomes ``+``, and
    every reserved character (``/`` and ``:`` included) is percent-encoded.
    """
    return quote_plus(value, safe="", encoding="utf-8")


def basic_authorization(client_id: str, client_secret: str | None) -> str:
    """The ``Authorization`` header value of ``client_secret_basic``."""
    # RFC 6749 section 2.3.1: "The client identifier is encoded using the
    # "application/x-www-form-urlencoded" encoding algorithm per Appendix B, and the
    # encoded value is used as the username; the client password is encoded using the
    # same algorithm and used as the password."
    user_pass = f"{form_urlencode(client_id)}:{form_urlencode(client_secret or '')}"
    # Both halves are ASCII now, so RFC 7617's choice of charset cannot change them.
    return "Basic " + base64.b64encode(user_pass.encode("ascii")).decode("ascii")


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


def register_client_auth_methods(client: Any) -> None:
    """Put the RFC-conformant encoders on an authlib OAuth 2.0 client."""
    client.register_client_auth_method((HTTP_BASIC_METHOD, encode_client_secret_basic))


__all__ = [
    "HTTP_BASIC_METHOD",
    "basic_authorization",
    "encode_client_secret_basic",
    "form_urlencode",
    "register_client_auth_methods",
]
