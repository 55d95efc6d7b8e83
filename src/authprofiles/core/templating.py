"""``{tenant}`` and ``{{field}}`` placeholders in profile URLs and field values.

Seeds 001 and 003 show both forms, e.g. ``https://{tenant}.service-now.com/api`` and
``http://{tenant}.example.com/test/{{tokenId}}``. Rendering is strict: a placeholder
with no value is an error, never an empty string, and a rendered value can never
move a request to another host or out of its path segment:

* in the host, a placeholder fills one DNS label under a fixed domain, and its value is
  held to the tenant's rule (one DNS label), so it cannot add a dot, a port, a user or
  become an IP address;
* in the path, a value is percent-encoded to one segment, and that segment must pass the
  same escape checks as a caller's path (:func:`path_segment_problem`);
* in the query and fragment, a value is percent-encoded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from authprofiles.wire.injection import path_segment_problem as path_segment_problem

TENANT_PLACEHOLDER = "{tenant}"
FIELD_PATTERN = re.compile(r"\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}")
_TENANT_PATTERN = re.compile(r"(?<!\{)\{tenant\}(?!\})")
# Either placeholder; group 1 is the field's key, or None for ``{tenant}``. The field form
# comes first so ``{{tenant}}`` is the field named "tenant".
_ANY_PLACEHOLDER = re.compile(f"{FIELD_PATTERN.pattern}|{_TENANT_PATTERN.pattern}")
# A DNS label (RFC 1123 section 2.1): letters, digits and inner hyphens, 1 to 63 long.
_DNS_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")

#: Names every connection can use in authorization field values and request URLs.
BUILTIN_FIELDS: frozenset[str] = frozenset({"access_token"})

#: A placeholder's label must sit under at least this many fixed labels: ``{tenant}.com``
#: would let the value pick any domain of the top-level domain.
MIN_FIXED_LABELS_UNDER_PLACEHOLDER = 2


class TemplateError(ValueError):
    """A placeholder could not be rendered; the message says which and why."""


@dataclass(frozen=True)
class Placeholders:
    tenant: bool
    fields: tuple[str, ...]
    unknown_braces: bool


def find_placeholders(template: str) -> Placeholders:
    fields = tuple(dict.fromkeys(FIELD_PATTERN.findall(template)))
    rest = FIELD_PATTERN.sub("", template)
    tenant = bool(_TENANT_PATTERN.search(rest))
    rest = _TENANT_PATTERN.sub("", rest)
    return Placeholders(tenant=tenant, fields=fields, unknown_braces="{" in rest or "}" in rest)


def is_valid_tenant(tenant: str) -> bool:
    """The tenant's rule, which every value rendered into a host is held to as well."""
    return bool(_DNS_LABEL.fullmatch(tenant))  # not match: "$" also matches before a "\n"


def check_tenant(tenant: str | None) -> str:
    """A tenant is a single DNS label, so it cannot add a host, a port, a path or a userinfo."""
    if tenant is None or tenant == "":
        raise TemplateError("this URL needs a tenant: pass `tenant`")
    if not is_valid_tenant(tenant):
        raise TemplateError(
            f"tenant {tenant!r} is not a DNS label: use letters, digits and inner hyphens, "
            "at most 63 characters"
        )
    return tenant.lower()


# -- where a placeholder may stand in the authority ---------------------------------------

# Stands for a placeholder while a host is split into labels: a field's key may hold a
# dot (``{{a.b}}``), which must not count as a label boundary.
_MARK = "\x00"


def _marked(text: str) -> str:
    return _ANY_PLACEHOLDER.sub(_MARK, text)


@dataclass(frozen=True)
class _Authority:
    userinfo: str
    host: str
    port: str


def _split_authority(authority: str) -> _Authority:
    userinfo, _, hostport = authority.rpartition("@")
    if hostport.startswith("["):  # an IPv6 literal (RFC 3986 section 3.2.2)
        host, _, rest = hostport.partition("]")
        return _Authority(userinfo, host + "]", rest.removeprefix(":"))
    host, _, port = hostport.partition(":")
    return _Authority(userinfo, host, port)


def host_placeholder_problem(authority: str) -> str | None:
    """Why the placeholders in a URL's authority (``user@host:port``) could let a value pick
    the host, or None when they cannot.

    A placeholder may fill one label of a host whose other labels are fixed, under a fixed
    domain of at least two labels whose last label (the top-level domain) is a name:
    ``{tenant}.example.com`` and ``api.{{region}}.example.com``. Never the whole host, a
    label right under the top-level domain (``{tenant}.com`` is any .com domain), an IP
    literal, the port or the user. A label may hold fixed text around its placeholder
    (``{tenant}-eu.example.com``): the value is one DNS label (:func:`is_valid_tenant`), so
    whatever it is, the host stays under the same fixed domain.
    """
    if not _ANY_PLACEHOLDER.search(authority):
        return None
    parts = _split_authority(authority)
    if _ANY_PLACEHOLDER.search(parts.userinfo):
        return "a placeholder may not fill the user name or password"
    if _ANY_PLACEHOLDER.search(parts.port):
        return "a placeholder may not fill the port"
    if parts.host.startswith("["):
        return "a placeholder may not fill part of an IP address"
    labels = _marked(parts.host).split(".")
    holding = [i for i, label in enumerate(labels) if _MARK in label]
    if len(holding) > 1 or labels[holding[0]].count(_MARK) > 1:
        return "only one placeholder may stand in the host, filling one label"
    fixed_below = labels[holding[0] + 1 :]
    if len(fixed_below) < MIN_FIXED_LABELS_UNDER_PLACEHOLDER or not all(fixed_below):
        return (
            "a placeholder may fill one label under a fixed domain, like "
            "{tenant}.example.com; never the whole host, nor a label right under the "
            "top-level domain"
        )
    # An all-numeric or hex last label would let a numeric value make the host an IPv4
    # address as resolvers read it ("{tenant}.0.1" with "127" is 127.0.0.1); RFC 3696
    # section 2: a top-level domain is never all-numeric.
    if not fixed_below[-1][:1].isalpha():
        return "a host with a placeholder must end in a named top-level domain"
    return None


# -- path segments ----------------------------------------------------------------------

# The one escape check for every path segment (a caller's path, a path field's value, a
# ``{{field}}`` value rendered into a URL's path) is the wire's, shared with the SDK.


# -- rendering --------------------------------------------------------------------------


def _split_url(template: str) -> tuple[str, str, str, str]:
    """``scheme://``, authority, path and the rest (query and fragment), as written.

    Split by hand rather than with ``urlsplit``, so the template's text is kept byte for
    byte; the delimiters are RFC 3986 section 3's.
    """
    scheme, sep, rest = template.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        raise TemplateError("the profile's URL is not an http(s) URL")
    authority_end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, remainder = rest[:authority_end], rest[authority_end:]
    path_end = min((i for i in (remainder.find(c) for c in "?#") if i >= 0), default=len(remainder))
    return scheme + sep, authority, remainder[:path_end], remainder[path_end:]


def render_url(
    template: str,
    *,
    tenant: str | None = None,
    fields: Mapping[str, str] | None = None,
) -> str:
    """Render a URL template: a host label takes a DNS label, a path value is encoded to
    one segment that must not escape, a query value is percent-encoded."""
    values = fields or {}
    head, authority, path, tail = _split_url(template)
    problem = host_placeholder_problem(authority)
    if problem:
        raise TemplateError(f"the URL's host cannot be rendered: {problem}")
    checked_tenant: list[str] = []

    def value_of(match: re.Match[str]) -> str:
        key = match.group(1)
        if key is None:
            if not checked_tenant:
                checked_tenant.append(check_tenant(tenant))
            return checked_tenant[0]
        if key not in values:
            raise TemplateError(f"the URL needs a value for the field {{{{{key}}}}}")
        return values[key]

    def host_label(match: re.Match[str]) -> str:
        value = value_of(match)
        if match.group(1) is not None and not is_valid_tenant(value):
            # The value is not echoed: field values may be secrets.
            raise TemplateError(
                f"the value for {_written(match)} in the URL's host is not a DNS label: use "
                "letters, digits and inner hyphens, at most 63 characters"
            )
        return value.lower()

    def encoded(match: re.Match[str]) -> str:
        return quote(value_of(match), safe="")

    def path_segment(segment: str) -> str:
        if not _ANY_PLACEHOLDER.search(segment):
            return segment
        rendered = _ANY_PLACEHOLDER.sub(encoded, segment)
        problem = path_segment_problem(rendered)
        if problem:
            names = ", ".join(_written(m) for m in _ANY_PLACEHOLDER.finditer(segment))
            raise TemplateError(f"the value for {names} in the URL's path {problem}")
        return rendered

    rendered_authority = _ANY_PLACEHOLDER.sub(host_label, authority)
    rendered_path = "/".join(path_segment(s) for s in path.split("/"))
    rendered = head + rendered_authority + rendered_path + _ANY_PLACEHOLDER.sub(encoded, tail)
    _require_same_host(authority, rendered_authority)
    return rendered


def _written(match: re.Match[str]) -> str:
    """A placeholder as people write it, to name it in a message."""
    key = match.group(1)
    return TENANT_PLACEHOLDER if key is None else f"{{{{{key}}}}}"


def render_value(template: str, fields: Mapping[str, str]) -> str:
    """Render ``{{field}}`` placeholders in a header, query, payload or path value, verbatim."""

    def field_value(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in fields:
            raise TemplateError(f"no value for the field {{{{{key}}}}}")
        return fields[key]

    return FIELD_PATTERN.sub(field_value, template)


def _require_same_host(template: str, rendered: str) -> None:
    """Belt and braces: the rendered authority is the template's with only one label filled."""
    before, after = _split_authority(_marked(template)), _split_authority(rendered)
    labels_before, labels_after = before.host.split("."), after.host.split(".")
    if (
        not after.host
        or (before.userinfo, before.port) != (after.userinfo, after.port)
        or len(labels_before) != len(labels_after)
        or any(
            b.lower() != a.lower()
            for b, a in zip(labels_before, labels_after, strict=True)
            if _MARK not in b
        )
    ):
        raise TemplateError("the rendered URL would leave the profile's host")
