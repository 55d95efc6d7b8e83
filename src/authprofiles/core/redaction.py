"""Hiding secrets in what people are shown: exchanges, error texts, whole documents.

A secret travels in more forms than the one it was typed in: percent-encoded in a URL,
form-encoded in a body, escaped in JSON or XML, base64 inside HTTP Basic credentials.
The :class:`Redactor` knows the values to hide and replaces each of those forms
wherever it appears; it also hides, by name, what is secret whatever its value
(``Authorization`` and cookie headers, ``access_token`` and its kin in a JSON or form
body), so a token the identity provider just issued is hidden before it is known.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode
from xml.sax.saxutils import escape

from authprofiles.core.client_secret_basic import basic_authorization

REDACTED = "[redacted]"
#: A value shorter than this is redacted where its key says it is secret, not wherever
#: its characters happen to appear (a 2-letter value would shred every word).
MIN_REDACTED_LENGTH = 4
#: Headers whose value is a credential, whoever sent them.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
#: Keys of a JSON or form body whose (string) value is a credential.
SECRET_KEYS = frozenset(
    {
        "access_token",
        "refresh_token",
        "id_token",
        "client_secret",
        "password",
        "code_verifier",
        "client_assertion",
        "assertion",
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
    }
)
_FORM = "application/x-www-form-urlencoded"


class Redactor:
    """Replaces secret values, in every form they travel in, wherever they appear.

    ``Redactor(token, url)`` knows those values at once; :meth:`add` adds more. Values
    shorter than ``min_length`` are skipped (see :data:`MIN_REDACTED_LENGTH`).
    """

    def __init__(self, *values: str | None, min_length: int = MIN_REDACTED_LENGTH) -> None:
        self._values: set[str] = set()
        self._min_length = max(min_length, 1)
        self._ordered: tuple[str, ...] | None = None
        self._bytes: re.Pattern[bytes] | None = None
        self._str: re.Pattern[str] | None = None
        self.add(*values)

    def ordered(self) -> tuple[str, ...]:
        """Every form of every value, longest first: a value that contains another is
        replaced whole."""
        if self._ordered is None:
            self._ordered = tuple(sorted(self._values, key=len, reverse=True))
        return self._ordered

    def contained_in(self, text: str) -> bool:
        """Whether any known value appears in ``text`` (one regular-expression search)."""
        if self._str is None:
            self._str = re.compile("|".join(re.escape(v) for v in self.ordered()) or "(?!)")
        return self._str.search(text) is not None

    def bytes_pattern(self) -> re.Pattern[bytes] | None:
        """Every form of every value, as one pattern over bytes (UTF-8); None for none."""
        if self._bytes is None and self._values:
            self._bytes = re.compile(b"|".join(re.escape(v.encode()) for v in self.ordered()))
        return self._bytes

    def add(self, *values: str | None) -> None:
        self._ordered = self._bytes = self._str = None
        for value in values:
            if not value or len(value) < self._min_length:
                continue
            self._values.update(
                {
                    value,
                    quote(value, safe=""),
                    quote_plus(value),
                    json.dumps(value)[1:-1],
                    escape(value, {'"': "&quot;"}),
                }
            )

    def add_basic_credentials(self, client_id: str, secret: str | None) -> None:
        """The base64 credentials of client_secret_basic, as they are sent."""
        if not secret:
            return
        self.add(basic_authorization(client_id, secret).removeprefix("Basic "))

    def text(self, text: str) -> str:
        for value in self.ordered():
            text = text.replace(value, REDACTED)
        return text

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        out = {}
        for name, value in headers.items():
            lowered = name.lower()
            if lowered in SECRET_HEADERS:
                # Keep the scheme ("Basic", "Bearer"): it says which credential was sent.
                scheme, space, _ = value.partition(" ")
                keep = lowered.endswith("authorization") and space
                value = f"{scheme} {REDACTED}" if keep else REDACTED
            out[name] = self.text(value)
        return out

    def body(self, body: str | None, headers: Mapping[str, str]) -> str | None:
        """A body as text, its secret keys hidden when it is JSON or a form, then every
        known value hidden wherever it is."""
        if not body:
            return body
        media = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
        media = media.split(";")[0].strip().lower()
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        if isinstance(document, dict | list):
            body = json.dumps(redact_keys(document))
        elif media == _FORM and "=" in body:
            pairs = parse_qsl(body.strip(), keep_blank_values=True)
            body = urlencode([(k, REDACTED if k.lower() in SECRET_KEYS else v) for k, v in pairs])
        return self.text(body)

    def document(self, value: Any) -> Any:
        """Every string in a JSON-like document (dicts, lists, strings) with the known
        values hidden; keys and other values as they are."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.document(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.document(v) for v in value]
        return value


class StreamRedactor:
    """The same replacement on a body that streams: each chunk goes out as soon as no
    secret can still be starting in it. The last ``longest - 1`` bytes are held back
    until the next chunk (or :meth:`end`) shows whether a secret spans the two."""

    def __init__(self, redactor: Redactor) -> None:
        self._pattern = redactor.bytes_pattern()
        self._hold = max((len(v.encode()) for v in redactor.ordered()), default=1) - 1
        self._pending = b""

    def _replace(self, data: bytes) -> bytes:
        return self._pattern.sub(_REDACTED_BYTES, data) if self._pattern else data

    def feed(self, chunk: bytes) -> bytes:
        data = self._replace(self._pending + chunk)
        if self._hold <= 0:
            return data
        if len(data) <= self._hold:
            self._pending = data
            return b""
        self._pending = data[-self._hold :]
        return data[: -self._hold]

    def end(self) -> bytes:
        data, self._pending = self._replace(self._pending), b""
        return data

    def whole(self, body: bytes) -> bytes:
        return self._replace(body)


_REDACTED_BYTES = REDACTED.encode()


def redact_keys(document: Any) -> Any:
    """A JSON-like document with the string value of every secret key hidden."""
    if isinstance(document, dict):
        return {
            k: REDACTED
            if isinstance(k, str) and k.lower() in SECRET_KEYS and isinstance(v, str)
            else redact_keys(v)
            for k, v in document.items()
        }
    if isinstance(document, list):
        return [redact_keys(v) for v in document]
    return document


__all__ = [
    "MIN_REDACTED_LENGTH",
    "REDACTED",
    "SECRET_HEADERS",
    "SECRET_KEYS",
    "Redactor",
    "StreamRedactor",
    "redact_keys",
]
