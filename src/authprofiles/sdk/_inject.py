"""Apply a token's ``inject`` hints to a request, client side.

The server's ``GET /connections/{id}/token`` says where each credential goes
(``headers``, ``query``, ``body``, ``path``); these functions put them there. They
follow the same rules as the server's proxy, written again here because the SDK
depends on nothing of authprofiles but its HTTP API:

* headers and query parameters replace the caller's ones of the same name;
* payload fields go into a JSON object or a form body (an empty body becomes JSON),
  for POST, PUT and PATCH, or any request that already carries a body;
* a path field fills a ``{{key}}`` placeholder in the URL path; one the path does not
  mention becomes the segment right after ``base_url``'s path (or the first segment).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from urllib.parse import quote, unquote_plus, urlencode, urlsplit, urlunsplit

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_PLACEHOLDER = re.compile(r"(?:\{\{|%7[Bb]%7[Bb])\s*([A-Za-z0-9_.\-]+)\s*(?:\}\}|%7[Dd]%7[Dd])")


class InjectionError(ValueError):
    """The token's hints cannot be applied to this request; the message says why."""


def carries_payload(method: str, has_body: bool) -> bool:
    return has_body or method.upper() in BODY_METHODS


def _segment(key: str, value: str) -> str:
    if value in ("", ".", ".."):
        raise InjectionError(f"the path field {key!r} must be a non-empty name")
    return quote(value, safe="")


def apply_path(path: str, fields: Mapping[str, str], base_path: str = "") -> str:
    """``path`` is raw (percent-encoded); so is the result."""
    if not fields:
        return path
    used: set[str] = set()

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in fields:
            return match.group(0)
        used.add(key)
        return _segment(key, fields[key])

    path = _PLACEHOLDER.sub(fill, path)
    extra = [_segment(k, v) for k, v in fields.items() if k not in used]
    if not extra:
        return path
    base = base_path.rstrip("/")
    if base and (path == base or path.startswith(base + "/")):
        head, rest = base, path[len(base) :]
    else:
        head, rest = "", path
    return head + "/" + "/".join(extra) + (rest if rest.startswith("/") or not rest else "/" + rest)


def merge_raw_query(raw_query: str, fields: Mapping[str, str]) -> str:
    if not fields:
        return raw_query
    kept = [
        piece
        for piece in raw_query.split("&")
        if piece and unquote_plus(piece.split("=", 1)[0]) not in fields
    ]
    return "&".join([*kept, urlencode(list(fields.items()), quote_via=quote)])


def apply_to_url(
    url: str, query: Mapping[str, str], path: Mapping[str, str], base_url: str | None = None
) -> str:
    parts = urlsplit(url)
    base_path = urlsplit(base_url).path if base_url else ""
    return urlunsplit(
        parts._replace(
            path=apply_path(parts.path, path, base_path),
            query=merge_raw_query(parts.query, query),
        )
    )


def merge_body(
    body: bytes, content_type: str | None, fields: Mapping[str, str]
) -> tuple[bytes, str]:
    """The new body and its content type."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        merged = merge_raw_query(body.decode("ascii").strip(), fields)
        return merged.encode("ascii"), content_type or media
    if not body.strip():
        return json.dumps(dict(fields)).encode(), "application/json"
    if media == "application/json" or media.endswith("+json"):
        document = json.loads(body)
        if not isinstance(document, dict):
            raise InjectionError("payload fields need a JSON object body")
        document.update(fields)
        return json.dumps(document).encode(), content_type or media
    raise InjectionError(
        "payload fields can be placed in a JSON object or a form body, "
        f"not in {media or 'a body without a Content-Type'}"
    )
