"""Apply a connection's credentials to an outgoing request, as a pure function.

Like authlib's ``rfc6750.parameters``, this works on plain request parts so the
proxy, the test runner and the token endpoint's ``inject`` hints share one rule set:

* RFC 6750 section 2.1: by default ``Authorization: <token_type> <access_token>``;
* each authorization field (seed 000: header, payload, query string or path param)
  goes where the profile says, its value rendered with ``{{field}}`` and
  ``{{access_token}}`` placeholders;
* nothing a caller passes can change the host or climb out of the base path.

Paths here are *raw*: percent-encoded as they travel on the wire. A decoded path has
already lost the difference between ``a/b`` and ``a%2Fb``, which is exactly the
difference an escape attempt relies on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, unquote_plus, urlencode, urlsplit, urlunsplit

from authprofiles.core.errors import DomainError
from authprofiles.core.profiles import AuthorizationField, FieldLocation
from authprofiles.core.templating import FIELD_PATTERN, path_segment_problem, render_value


class InjectionError(DomainError):
    """The credentials cannot be placed in this request; the message says why."""

    status_code = 409
    title = "Credentials cannot be applied"


class PathEscape(InjectionError):
    """The requested path would leave the profile's base URL."""

    status_code = 400
    title = "Path not allowed"


class PayloadError(InjectionError):
    """Payload fields cannot be merged into this request body."""

    status_code = 400
    title = "Payload fields cannot be placed"

    def __init__(self, detail: str, *, unsupported_media_type: bool = False) -> None:
        super().__init__(detail)
        if unsupported_media_type:
            self.status_code = 415


@dataclass(frozen=True)
class Injection:
    """What to add to a request; the values are secrets and must not be logged."""

    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    body: dict[str, str] = field(default_factory=dict)
    path: dict[str, str] = field(default_factory=dict)

    def values(self) -> list[str]:
        """Every value placed anywhere, for redaction."""
        return [
            *self.headers.values(),
            *self.query.values(),
            *self.body.values(),
            *self.path.values(),
        ]


def bearer_scheme(token_type: str | None) -> str:
    """RFC 6749 section 7.1 says token types are case-insensitive; RFC 6750 spells it "Bearer"."""
    if not token_type or token_type.lower() == "bearer":
        return "Bearer"
    return token_type


# RFC 9110 section 5.5: a field value is visible characters, spaces and tabs; CR, LF and
# NUL would end the header early and let a value add headers of its own.
_HEADER_VALUE_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def build_injection(
    *,
    access_token: str,
    token_type: str | None,
    authorization_fields: Sequence[AuthorizationField],
    field_values: Mapping[str, str],
) -> Injection:
    """Where each credential goes. A field with no value of its own takes the connection's
    value of the same key (seed 003: values the end user enters); one with neither is left
    out. A header field named ``Authorization`` replaces the default bearer header."""
    values = {**field_values, "access_token": access_token}
    out = Injection()
    target = {
        FieldLocation.HEADER: out.headers,
        FieldLocation.QUERY: out.query,
        FieldLocation.PAYLOAD: out.body,
        FieldLocation.PATH: out.path,
    }
    for auth_field in authorization_fields:
        template = auth_field.value if auth_field.value is not None else values.get(auth_field.key)
        if template is None:
            continue
        rendered = render_value(template, values)
        if auth_field.type is FieldLocation.HEADER and _HEADER_VALUE_FORBIDDEN.search(rendered):
            raise InjectionError(
                f"the header field {auth_field.key!r} would hold a line break or control character"
            )
        target[auth_field.type][auth_field.key] = rendered
    if not any(k.lower() == "authorization" for k in out.headers):
        if _HEADER_VALUE_FORBIDDEN.search(access_token):
            raise InjectionError("the access token holds a line break or control character")
        # Insert first so the default reads first in logs of the request, not last.
        headers = {"Authorization": f"{bearer_scheme(token_type)} {access_token}"}
        headers.update(out.headers)
        out.headers.clear()
        out.headers.update(headers)
    return out


# -- paths ------------------------------------------------------------------------------

#: RFC 3986 section 3.3: pchar = unreserved / pct-encoded / sub-delims / ":" / "@".
_PCHAR_SAFE = "!$&'()*+,;=:@-._~"
_VALID_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_CLEAN_SEGMENT = re.compile(r"(?:[A-Za-z0-9!$&'()*+,;=:@\-._~]|%[0-9A-Fa-f]{2})*\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# ``{{key}}`` as typed, or as an HTTP client percent-encodes it (``%7B%7Bkey%7D%7D``).
_RAW_FIELD = re.compile(r"(?:\{\{|%7[Bb]%7[Bb])\s*([A-Za-z0-9_.\-]+)\s*(?:\}\}|%7[Dd]%7[Dd])")


def _check_segment(segment: str, what: str) -> None:
    """Refuse a segment that is, or reads as, a dot segment or more than one segment.

    The rule itself (decoding repeated, NFKC folding, ``..;x``) is
    :func:`~authprofiles.core.templating.path_segment_problem`, shared with the values a
    profile's URL template places in its path.
    """
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

    A path field fills a ``{{key}}`` placeholder in the caller's path (typed or
    percent-encoded); one the path does not mention becomes a segment right after the
    base path, in the order given. Each value is encoded to stay one segment. The base
    URL's scheme, host and port are kept whatever the path holds.
    """
    params = dict(path_params or {})
    caller_path = path if isinstance(path, CallerPath) else CallerPath.of(path)
    segments, path = caller_path.segments, caller_path.raw
    base = urlsplit(base_url)
    base_segments = [s for s in base.path.split("/") if s != ""]
    # The base is the profile's own URL: its field values were encoded to one segment
    # each when it was rendered, but a value of ".." would still climb, so check that.
    for segment in base_segments:
        if unquote(segment).split(";", 1)[0] in (".", ".."):
            raise PathEscape("the base URL's path may not hold '.' or '..' segments")

    used: set[str] = set()

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in params:
            return match.group(0)
        used.add(key)
        return _param_segment(key, params[key])

    caller = [_encode_segment(_RAW_FIELD.sub(fill, s)) for s in segments]
    extra = [_param_segment(k, v) for k, v in params.items() if k not in used]
    joined = "/" + "/".join([*base_segments, *extra, *caller])
    if joined != "/" and (path.endswith("/") if path else base.path.endswith("/")):
        joined += "/"
    return urlunsplit((base.scheme, base.netloc, joined, base.query, ""))


def fields_in_template(template: str) -> set[str]:
    """The ``{{field}}`` names a URL template fills itself."""
    return set(FIELD_PATTERN.findall(template))


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


# -- body -------------------------------------------------------------------------------

#: Seed 000: payload fields are "Used in POST or PUT requests, sending credentials in the
#: request body". PATCH carries a body the same way; other methods only when one is sent.
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
        except ValueError:
            raise PayloadError("the JSON body does not parse") from None
        if not isinstance(document, dict):
            raise PayloadError("payload fields need a JSON object body")
        document.update(fields)
        return json.dumps(document).encode(), content_type or media
    raise PayloadError(
        f"payload fields can be placed in a JSON object or a form body, "
        f"not in {media or 'a body without a Content-Type'}",
        unsupported_media_type=True,
    )


# -- headers ----------------------------------------------------------------------------


def apply_headers(headers: Mapping[str, str], injection: Injection) -> dict[str, str]:
    """Injected headers replace the caller's ones of the same name, whatever their case."""
    names = {k.lower() for k in injection.headers}
    merged = {k: v for k, v in headers.items() if k.lower() not in names}
    merged.update(injection.headers)
    return merged


def apply_header_list(
    headers: Sequence[tuple[str, str]], injection: Injection
) -> list[tuple[str, str]]:
    """The same for a list of pairs, which keeps a caller's repeated headers."""
    names = {k.lower() for k in injection.headers}
    kept = [(k, v) for k, v in headers if k.lower() not in names]
    return kept + list(injection.headers.items())


__all__ = [
    "BODY_METHODS",
    "CallerPath",
    "Injection",
    "InjectionError",
    "PathEscape",
    "PayloadError",
    "apply_header_list",
    "apply_headers",
    "bearer_scheme",
    "build_injection",
    "carries_payload",
    "fields_in_template",
    "join_path",
    "merge_body",
    "merge_query",
    "merge_raw_query",
    "split_path",
]
