"""``{tenant}`` and ``{{field}}`` placeholders in profile URLs and field values.

Seeds 001 and 003 show both forms, e.g. ``https://{tenant}.service-now.com/api`` and
``http://{tenant}.example.com/test/{{tokenId}}``. Rendering is strict: a placeholder
with no value is an error, never an empty string, and a rendered value can never
move a request to another host or out of its path segment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

TENANT_PLACEHOLDER = "{tenant}"
FIELD_PATTERN = re.compile(r"\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}")
_TENANT_PATTERN = re.compile(r"(?<!\{)\{tenant\}(?!\})")
# A DNS label (RFC 1123 section 2.1): letters, digits and inner hyphens, 1 to 63 long.
_DNS_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")

#: Names every connection can use in authorization field values and request URLs.
BUILTIN_FIELDS: frozenset[str] = frozenset({"access_token"})


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


def render_url(
    template: str,
    *,
    tenant: str | None = None,
    fields: Mapping[str, str] | None = None,
) -> str:
    """Render a URL template; field values are percent-encoded so they stay one segment."""
    values = fields or {}
    placeholders = find_placeholders(template)
    rendered = template
    if placeholders.tenant:
        rendered = _TENANT_PATTERN.sub(check_tenant(tenant), rendered)

    def field_value(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise TemplateError(f"the URL needs a value for the field {{{{{key}}}}}")
        return quote(values[key], safe="")

    rendered = FIELD_PATTERN.sub(field_value, rendered)
    _require_same_origin(template, rendered, tenant)
    return rendered


def render_value(template: str, fields: Mapping[str, str]) -> str:
    """Render ``{{field}}`` placeholders in a header, query, payload or path value, verbatim."""

    def field_value(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in fields:
            raise TemplateError(f"no value for the field {{{{{key}}}}}")
        return fields[key]

    return FIELD_PATTERN.sub(field_value, template)


def _require_same_origin(template: str, rendered: str, tenant: str | None) -> None:
    """Belt and braces: the rendered host is the template's host with only the tenant filled in."""
    parts = urlsplit(rendered)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TemplateError(f"the rendered URL {rendered!r} is not an http(s) URL")
    template_host = urlsplit(template).netloc
    if "{{" in template_host:
        # Field values in the authority are percent-encoded, so they cannot add "@", ":" or "/".
        return
    expected = template_host.replace(TENANT_PLACEHOLDER, tenant.lower() if tenant else "")
    if parts.netloc.lower() != expected.lower():
        raise TemplateError("the rendered URL would leave the profile's host")
