"""Place a connection's credentials in a request's parts, as pure functions.

Like authlib's ``rfc6750.parameters``, this works on plain request parts (a URL, header
pairs, body bytes), so the server's proxy and profile test and the SDK's httpx and
requests adapters share one rule set:

* RFC 6750 section 2.1: by default ``Authorization: <token_type> <access_token>``;
* each authorization field goes where the profile says: a header or a query parameter
  replaces the caller's one of the same name, a payload field joins a JSON object or a
  form body, a path field fills a ``{{key}}`` placeholder of the path or becomes the
  segment right after the base path;
* nothing a caller passes, and no field value, can change the host, climb out of the
  base path or add a header of its own.

Paths here are *raw*: percent-encoded as they travel on the wire. A decoded path has
already lost the difference between ``a/b`` and ``a%2Fb``, which is exactly the
difference an escape attempt relies on.

Errors are :class:`InjectionError` and its subclasses, whose messages never hold a value
(values are secrets). The server's core gives them their domain meaning; the SDK raises
them as they are.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol
from urllib.parse import quote, unquote, unquote_plus, urlencode, urlsplit, urlunsplit


class InjectionError(ValueError):
    """The credentials cannot be placed in this request; the message says why."""


class PathEscape(InjectionError):
    """A path, or a path field's value, would leave its place under the base URL."""


class PayloadError(InjectionError):
    """Payload fields cannot be merged into this request body."""


class UnsupportedMediaType(PayloadError):
    """The body is of a type payload fields cannot join (neither JSON nor a form)."""


class Hints(Protocol):
    """Where each credential goes, by location: the server's :class:`Injection` and the
    SDK's ``Inject`` (the ``inject`` member of ``GET /connections/{id}/token``)."""

    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def query(self) -> Mapping[str, str]: ...
    @property
    def body(self) -> Mapping[str, str]: ...
    @property
    def path(self) -> Mapping[str, str]: ...


@dataclass(frozen=True)
class Injection:
    """What to add to a request; the values are secrets and are never shown by ``repr``."""

    headers: dict[str, str] = field(default_factory=dict, repr=False)
    query: dict[str, str] = field(default_factory=dict, repr=False)
    body: dict[str, str] = field(default_factory=dict, repr=False)
    path: dict[str, str] = field(default_factory=dict, repr=False)

    def values(self) -> list[str]:
        """Every value placed anywhere, for redaction."""
        return [
            *self.headers.values(),
            *self.query.values(),
            *self.body.values(),
            *self.path.values(),
        ]


# -- headers ----------------------------------------------------------------------------


def bearer_scheme(token_type: str | None) -> str:
    """RFC 6749 section 7.1 says token types are case-insensitive; RFC 6750 spells it "Bearer"."""
    if not token_type or token_type.lower() == "bearer":
        return "Bearer"
    return token_type


# RFC 9110 section 5.5: a field value is visible characters, spaces and tabs; CR, LF and
# NUL would end the header early and let a value add headers of its own.
_HEADER_VALUE_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def check_header_value(value: str, what: str) -> None:
    """Refuse a header value that could end its header; ``what`` names it (not the value,
    a secret) in the message."""
    if _HEADER_VALUE_FORBIDDEN.search(value):
        raise InjectionError(f"{what} would hold a line break or control character")


def apply_headers(headers: Mapping[str, str], injection: Hints) -> dict[str, str]:
    """Injected headers replace the caller's ones of the same name, whatever their case."""
    names = {k.lower() for k in injection.headers}
    merged = {k: v for k, v in headers.items() if k.lower() not in names}
    merged.update(injection.headers)
    return merged


def apply_header_list(
    headers: Sequence[tuple[str, str]], injection: Hints
) -> list[tuple[str, str]]:
    """The same for a list of pairs, which keeps a caller's repeated headers."""
    names = {k.lower() for k in injection.headers}
    kept = [(k, v) for k, v in headers if k.lower() not in names]
    return kept + list(injection.headers.items())


# -- path segments ----------------------------------------------------------------------

_DOT_SEGMENTS = (".", "..")
# Percent-decoding rounds and NFKC foldings, in any order, that a server on the way may
# apply before it reads a segment: some servers and frameworks decode a path twice
# (``%252e%252e`` is ``..`` to them), and some fold compatibility characters: NFKC turns
# two FULLWIDTH FULL STOPs (U+FF0E) into ``..``, FULLWIDTH SOLIDUS (U+FF0F) into ``/`` and
# FULLWIDTH PERCENT SIGN (U+FF05) into ``%``, which a later decoding reads on.
_READING_STEPS = 4


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def _readings(segment: str) -> set[str]:
    """Every way the raw segment may be read along the way (see ``_READING_STEPS``)."""
    steps: tuple[Callable[[str], str], ...] = (unquote, _nfkc)
    seen = {segment}
    frontier = {segment}
    for _ in range(_READING_STEPS):
        frontier = {step(reading) for reading in frontier for step in steps} - seen
        if not frontier:
            break
        seen |= frontier
    return seen


def path_segment_problem(segment: str) -> str | None:
    """Why one raw (percent-encoded) path segment could climb out of its place, or None.

    The one escape check for every path segment: a caller's path, a path field's value and
    a ``{{field}}`` value rendered into a URL's path. A segment is refused when any reading
    of it (decoded up to several times, NFKC-folded) is a dot segment, or holds a slash, a
    backslash or a NUL byte. ``..;x`` counts as ``..``: servlet containers drop the
    ``;x`` path parameter (RFC 3986 section 3.3) before they resolve dot segments.
    """
    if segment.isascii() and "%" not in segment:
        readings: set[str] | tuple[str] = (segment,)  # what is written is what it means
    else:
        readings = _readings(segment)
    for reading in readings:
        if "/" in reading or "\\" in reading or "\x00" in reading:
            return "may not hold encoded slashes, backslashes or NUL bytes"
        if reading.split(";", 1)[0] in _DOT_SEGMENTS:
            return "may not hold '.' or '..' segments"
    return None


#: RFC 3986 section 3.3: pchar = unreserved / pct-encoded / sub-delims / ":" / "@".
_PCHAR_SAFE = "!$&'()*+,;=:@-._~"
_VALID_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_CLEAN_SEGMENT = re.compile(r"(?:[A-Za-z0-9!$&'()*+,;=:@\-._~]|%[0-9A-Fa-f]{2})*\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# ``{{key}}`` as typed, or as an HTTP client percent-encodes it (``%7B%7Bkey%7D%7D``).
_RAW_FIELD = re.compile(r"(?:\{\{|%7[Bb]%7[Bb])\s*([A-Za-z0-9_.\-]+)\s*(?:\}\}|%7[Dd]%7[Dd])")


def _check_segment(segment: str, what: str) -> None:
    """Refuse a segment that is, or reads as, a dot segment or more than one segment."""
    problem = path_segment_problem(segment)
    if problem:
        raise PathEscape(f"{what} {problem}")


def _encode_segment(segment: str) -> str:
    """Keep valid percent-escapes as sent; encode what may not appear raw in a segment."""
    if _CLEAN_SEGMENT.match(segment):
        return segment
    out: list[str] = []
    i = 0
    while i < len(segment):
        if _VALID_ESCAPE.match(segment, i):
            out.append(segment[i : i + 3])
            i += 3
            continue
        out.append(quote(segment[i], safe=_PCHAR_SAFE))
        i += 1
    return "".join(out)


def _param_segment(key: str, value: str) -> str:
    """A path field's value as one segment, held to the caller's path's escape checks: an
    encoded ``../../x`` is still a climb to a server that decodes it. The value is a secret
    and is not echoed."""
    if value == "" or _CONTROL.search(value):
        raise PathEscape(
            f"the path field {key!r} must be a non-empty name without control characters"
        )
    segment = quote(value, safe="")
    _check_segment(segment, f"the path field {key!r}")
    return segment


def _fill_segment(segment: str, params: Mapping[str, str], used: set[str], *, encode: bool) -> str:
    """Fill the ``{{key}}`` placeholders of one raw segment that ``params`` has values for
    (``encode``: and encode what else may not appear raw in it).

    Each value is checked alone, and the filled segment once more: ``%2e{{key}}`` with
    ``.`` is a ``..`` that neither half is."""
    filled: list[str] = []

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in params:
            return match.group(0)
        filled.append(key)
        return _param_segment(key, params[key])

    out = _RAW_FIELD.sub(fill, segment)
    if encode:
        out = _encode_segment(out)
    if filled:
        used.update(filled)
        names = ", ".join(repr(k) for k in dict.fromkeys(filled))
        _check_segment(out, f"the segment holding the path field(s) {names}")
    return out


def split_path(path: str) -> list[str]:
    """Check a caller's raw path and return its non-empty segments, each still raw."""
    if "\\" in path or "://" in path or path.startswith("//"):
        raise PathEscape("the path may not hold a backslash or a URL")
    if _CONTROL.search(path):
        raise PathEscape("the path may not hold control characters")
    if "?" in path or "#" in path:
        raise PathEscape("the path may not hold '?' or '#'; send a query string instead")
    segments = [s for s in path.split("/") if s != ""]
    for segment in segments:
        _check_segment(segment, "the path")
    return segments


@dataclass(frozen=True)
class CallerPath:
    """A caller's raw path, checked once (:func:`split_path`), to be joined under one base
    or several (the proxy joins it under the policy's view of the base and the real one)."""

    raw: str
    segments: tuple[str, ...]

    @classmethod
    def of(cls, path: str) -> CallerPath:
        return cls(path, tuple(split_path(path)))


def join_path(
    base_url: str, path: str | CallerPath, path_params: Mapping[str, str] | None = None
) -> str:
    """Join a caller's raw path under ``base_url``, refusing anything that could escape it.

    The server's proxy rule. A path field fills a ``{{key}}`` placeholder in the caller's
    path (typed or percent-encoded); one the path does not mention becomes a segment right
    after the base path, in the order given. Each value is encoded to stay one segment. The
    base URL's scheme, host and port are kept whatever the path holds.
    """
    params = dict(path_params or {})
    caller_path = path if isinstance(path, CallerPath) else CallerPath.of(path)
    segments, raw = caller_path.segments, caller_path.raw
    base = urlsplit(base_url)
    base_segments = [s for s in base.path.split("/") if s != ""]
    # The base is the profile's own URL: its field values were encoded to one segment
    # each when it was rendered, but a value of ".." would still climb, so check that.
    for segment in base_segments:
        if unquote(segment).split(";", 1)[0] in _DOT_SEGMENTS:
            raise PathEscape("the base URL's path may not hold '.' or '..' segments")

    used: set[str] = set()
    caller = [_fill_segment(s, params, used, encode=True) for s in segments]
    extra = [_param_segment(k, v) for k, v in params.items() if k not in used]
    joined = "/" + "/".join([*base_segments, *extra, *caller])
    if joined != "/" and (raw.endswith("/") if raw else base.path.endswith("/")):
        joined += "/"
    return urlunsplit((base.scheme, base.netloc, joined, base.query, ""))


def fill_path(path: str, path_params: Mapping[str, str], base_path: str = "") -> str:
    """Place path fields in a request's own raw path (the SDK's rule, for a URL the caller
    built whole): a field fills a ``{{key}}`` placeholder; one the path does not mention
    becomes the segment right after ``base_path`` when the path is under it, else the first
    segment. Each value passes the same checks as in :func:`join_path`."""
    if not path_params:
        return path
    used: set[str] = set()
    filled = "/".join(_fill_segment(s, path_params, used, encode=False) for s in path.split("/"))
    extra = [_param_segment(k, v) for k, v in path_params.items() if k not in used]
    if not extra:
        return filled
    base = base_path.rstrip("/")
    if base and (filled == base or filled.startswith(base + "/")):
        head, rest = base, filled[len(base) :]
    else:
        head, rest = "", filled
    return head + "/" + "/".join(extra) + (rest if rest.startswith("/") or not rest else "/" + rest)


# -- query ------------------------------------------------------------------------------


def merge_query(url: str, query: Mapping[str, str] | Sequence[tuple[str, str]]) -> str:
    """Add query parameters; an injected parameter replaces a caller's one of the same name.

    The caller's other parameters are kept byte for byte (no re-encoding: ``a+b`` and
    ``a%20b`` mean different things to some servers).
    """
    pairs = list(query.items()) if isinstance(query, Mapping) else list(query)
    if not pairs:
        return url
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query=merge_raw_query(parts.query, pairs)))


def merge_raw_query(raw_query: str, pairs: Sequence[tuple[str, str]]) -> str:
    names = {k for k, _ in pairs}
    kept = [
        piece
        for piece in raw_query.split("&")
        if piece and unquote_plus(piece.split("=", 1)[0]) not in names
    ]
    added = urlencode(pairs, quote_via=quote)
    return "&".join([*kept, added] if added else kept)


def apply_to_url(
    url: str,
    query: Mapping[str, str],
    path: Mapping[str, str],
    base_url: str | None = None,
) -> str:
    """A whole request URL with its query and path fields in place (:func:`merge_query`,
    :func:`fill_path` under ``base_url``'s path)."""
    parts = urlsplit(url)
    if path:
        base_path = urlsplit(base_url).path if base_url else ""
        parts = parts._replace(path=fill_path(parts.path, path, base_path))
    if query:
        parts = parts._replace(query=merge_raw_query(parts.query, list(query.items())))
    return urlunsplit(parts)


# -- body -------------------------------------------------------------------------------

#: Payload fields are "used in POST or PUT requests, sending credentials in the request
#: body". PATCH carries a body the same way; other methods only when one is sent.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def carries_payload(method: str, has_body: bool) -> bool:
    """Whether payload fields go into this request's body."""
    return has_body or method.upper() in BODY_METHODS


def merge_body(
    body: bytes, content_type: str | None, fields: Mapping[str, str]
) -> tuple[bytes, str]:
    """Place payload fields in a JSON object or a form body; an empty body becomes JSON.

    Returns the new body and its content type. A field replaces the caller's value of the
    same name; the caller's other form pairs are kept byte for byte.
    """
    media = (content_type or "").split(";")[0].strip().lower()
    if not fields:
        return body, content_type or ""
    if media == "application/x-www-form-urlencoded":
        try:
            text = body.decode("ascii")
        except UnicodeDecodeError:
            raise PayloadError("a form body must be ASCII (percent-encoded)") from None
        merged = merge_raw_query(text.strip(), list(fields.items()))
        return merged.encode("ascii"), content_type or media
    if not body.strip():
        return json.dumps(dict(fields)).encode(), "application/json"
    if media == "application/json" or media.endswith("+json"):
        try:
            document = json.loads(body)
        except ValueError:  # not JSON, or not UTF-8, -16 or -32 (RFC 8259 section 8.1)
            raise PayloadError("the JSON body does not parse") from None
        except RecursionError:
            raise PayloadError("the JSON body nests too deeply to be read") from None
        if not isinstance(document, dict):
            raise PayloadError("payload fields need a JSON object body")
        document.update(fields)
        return json.dumps(document).encode(), content_type or media
    raise UnsupportedMediaType(
        f"payload fields can be placed in a JSON object or a form body, "
        f"not in {media or 'a body without a Content-Type'}"
    )


# -- a whole request, client side ----------------------------------------------------------


@dataclass(frozen=True)
class PlacedRequest:
    """A request's parts with the credentials in place; the values are secrets.

    ``headers`` replace the caller's of the same name, whatever their case; ``body`` is
    None when the caller's body stays as it was, else the new body, of ``content_type``.
    """

    url: str = field(repr=False)
    headers: dict[str, str] = field(repr=False)
    body: bytes | None = field(default=None, repr=False)
    content_type: str = ""


def place(
    hints: Hints,
    *,
    method: str,
    url: str,
    body: bytes,
    content_type: str | None,
    base_url: str | None = None,
) -> PlacedRequest:
    """Apply the server's ``inject`` hints to a request an HTTP client is about to send.

    The header values are checked as the server checks its own (a value that would end its
    header is refused, not sent); path values as :func:`join_path` checks them."""
    for name, value in hints.headers.items():
        check_header_value(value, f"the header {name!r}")
    placed = PlacedRequest(apply_to_url(url, hints.query, hints.path, base_url), {**hints.headers})
    if hints.body and carries_payload(method, bool(body)):
        merged, media = merge_body(body, content_type, hints.body)
        return replace(placed, body=merged, content_type=media)
    return placed


__all__ = [
    "BODY_METHODS",
    "CallerPath",
    "Hints",
    "Injection",
    "InjectionError",
    "PathEscape",
    "PayloadError",
    "PlacedRequest",
    "UnsupportedMediaType",
    "apply_header_list",
    "apply_headers",
    "apply_to_url",
    "bearer_scheme",
    "carries_payload",
    "check_header_value",
    "fill_path",
    "join_path",
    "merge_body",
    "merge_query",
    "merge_raw_query",
    "path_segment_problem",
    "place",
    "split_path",
]
