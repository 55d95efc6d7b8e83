"""Apply a connection's credentials to an outgoing request, as a pure function.

Like authlib's ``rfc6750.parameters``, this works on plain request parts so the
proxy, the SDK and the token endpoint's ``inject`` hints all share one rule set:

* RFC 6750 section 2.1: by default ``Authorization: <token_type> <access_token>``;
* each authorization field (seed 000: header, payload, query string or path param)
  goes where the profile says, its value rendered with ``{{field}}`` and
  ``{{access_token}}`` placeholders;
* nothing a caller passes can change the host or climb out of the base path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from authprofiles.core.profiles import AuthorizationField, FieldLocation
from authprofiles.core.templating import FIELD_PATTERN, render_value


class PathEscape(ValueError):
    """The requested path would leave the profile's base URL."""


@dataclass(frozen=True)
class Injection:
    """What to add to a request; the values are secrets and must not be logged."""

    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    body: dict[str, str] = field(default_factory=dict)
    path: dict[str, str] = field(default_factory=dict)


def bearer_scheme(token_type: str | None) -> str:
    """RFC 6749 section 7.1 says token types are case-insensitive; RFC 6750 spells it "Bearer"."""
    if not token_type or token_type.lower() == "bearer":
        return "Bearer"
    return token_type


def build_injection(
    *,
    access_token: str,
    token_type: str | None,
    authorization_fields: Sequence[AuthorizationField],
    field_values: Mapping[str, str],
) -> Injection:
    values = {**field_values, "access_token": access_token}
    headers: dict[str, str] = {}
    overrides_authorization = any(
        f.type is FieldLocation.HEADER and f.key.lower() == "authorization"
        for f in authorization_fields
    )
    if not overrides_authorization:
        headers["Authorization"] = f"{bearer_scheme(token_type)} {access_token}"
    out = Injection(headers=headers)
    target = {
        FieldLocation.HEADER: out.headers,
        FieldLocation.QUERY: out.query,
        FieldLocation.PAYLOAD: out.body,
        FieldLocation.PATH: out.path,
    }
    for auth_field in authorization_fields:
        # A field with no value takes the end user's value of the same key, if any.
        template = auth_field.value if auth_field.value is not None else values.get(auth_field.key)
        if template is None:
            continue
        target[auth_field.type][auth_field.key] = render_value(template, values)
    return out


_UNSAFE_SEGMENT = re.compile(r"%2f|%5c|%00", re.IGNORECASE)


def join_path(base_url: str, path: str, path_params: Mapping[str, str] | None = None) -> str:
    """Join a caller's path under ``base_url``, refusing anything that could escape it.

    Path fields fill ``{key}`` or ``{{key}}`` placeholders in the base URL or the path;
    a path field that neither mentions becomes a segment right after the base path.
    """
    params = dict(path_params or {})
    if "\\" in path or "://" in path or path.startswith("//"):
        raise PathEscape("the path may not hold a backslash or a URL")
    segments = [s for s in path.split("/") if s != ""] if path else []
    for segment in segments:
        if _UNSAFE_SEGMENT.search(segment):
            raise PathEscape("the path may not hold encoded slashes, backslashes or NUL bytes")
        if unquote(segment) in (".", ".."):
            raise PathEscape("the path may not hold '.' or '..' segments")

    base = urlsplit(base_url)
    used: set[str] = set()

    def fill(text: str) -> str:
        def repl(match: re.Match[str]) -> str:
            key = match.group(1)
            if key not in params:
                return match.group(0)
            used.add(key)
            return quote(params[key], safe="")

        text = FIELD_PATTERN.sub(repl, text)
        return re.sub(
            r"\{([A-Za-z0-9_.\-]+)\}",
            lambda m: repl(m) if m.group(1) in params else m.group(0),
            text,
        )

    base_path = fill(base.path)
    rest = fill("/".join(segments))
    extra = [quote(v, safe="") for k, v in params.items() if k not in used]
    pieces = [base_path.rstrip("/"), *extra]
    joined = "/".join(p.strip("/") for p in pieces if p.strip("/"))
    joined = "/" + joined if joined else ""
    if rest:
        joined = f"{joined}/{rest}"
    elif path.endswith("/") or (not path and base.path.endswith("/")):
        joined += "/"
    return urlunsplit((base.scheme, base.netloc, joined or "/", base.query, ""))


def merge_query(url: str, query: Mapping[str, str] | Sequence[tuple[str, str]]) -> str:
    """Add query parameters; an injected parameter replaces a caller's one of the same name."""
    if not query:
        return url
    pairs = list(query.items()) if isinstance(query, Mapping) else list(query)
    names = {k for k, _ in pairs}
    parts = urlsplit(url)
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in names]
    return urlunsplit(parts._replace(query=urlencode(kept + pairs)))


def merge_body(
    body: bytes, content_type: str | None, fields: Mapping[str, str]
) -> tuple[bytes, str]:
    """Place payload fields in a JSON object or a form body; an empty body becomes JSON."""
    media = (content_type or "").split(";")[0].strip().lower()
    if not fields:
        return body, content_type or ""
    if media == "application/x-www-form-urlencoded":
        pairs = [
            (k, v)
            for k, v in parse_qsl(body.decode("utf-8"), keep_blank_values=True)
            if k not in fields
        ]
        return urlencode(pairs + list(fields.items())).encode(), content_type or media
    if not body.strip():
        return json.dumps(dict(fields)).encode(), "application/json"
    if media == "application/json" or media.endswith("+json"):
        document = json.loads(body)
        if not isinstance(document, dict):
            raise ValueError("payload fields need a JSON object body")
        document.update(fields)
        return json.dumps(document).encode(), content_type or media
    raise ValueError(f"payload fields cannot be placed in a {media or 'untyped'} body")


def apply_headers(headers: Mapping[str, str], injection: Injection) -> dict[str, str]:
    """Injected headers replace the caller's ones of the same name, whatever their case."""
    names = {k.lower() for k in injection.headers}
    merged = {k: v for k, v in headers.items() if k.lower() not in names}
    merged.update(injection.headers)
    return merged
