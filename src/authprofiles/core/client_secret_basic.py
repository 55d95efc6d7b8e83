"""Client credentials in HTTP Basic, encoded the way RFC 6749 section 2.3.1 defines it.

Pure: the OAuth client authentication (``oauth.client_auth``) sends these credentials,
and the redactor (``core.redaction``) hides them in exactly the form they were sent.
"""

from __future__ import annotations

import base64
from urllib.parse import quote_plus


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


__all__ = ["basic_authorization", "form_urlencode"]
