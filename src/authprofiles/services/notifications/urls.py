"""Whether a webhook URL may be used: http or https, a host, and (unless
``AUTHPROFILES_WEBHOOK_ALLOW_PRIVATE``) only public addresses (see
:mod:`authprofiles.notify.addresses` for why; delivery checks again)."""

from __future__ import annotations

from urllib.parse import urlsplit

from authprofiles.core.validation import hidden_character
from authprofiles.notify.addresses import first_refused, literal_address
from authprofiles.services.notifications.ports import Resolver

MAX_URL_LENGTH = 3000
ALLOW_PRIVATE = "AUTHPROFILES_WEBHOOK_ALLOW_PRIVATE=true"


def url_problem(url: str, *, allow_private: bool, resolver: Resolver) -> str | None:
    """Why ``url`` cannot be a webhook's, or None when it can."""
    if not url.strip():
        return "a URL is required, e.g. https://hooks.example.com/authprofiles"
    if len(url) > MAX_URL_LENGTH:
        return f"must be at most {MAX_URL_LENGTH} characters (got {len(url)})"
    if (
        url != url.strip()
        or any(c.isspace() for c in url)
        or hidden_character(url, multiline=False)
    ):
        return "may not hold spaces, control or invisible formatting characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return "must be an http:// or https:// URL"
    host = parts.hostname
    if not host:
        return "must name a host, e.g. https://hooks.example.com/authprofiles"
    if allow_private:
        return None
    literal = literal_address(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            addresses = resolver(host, port or (443 if parts.scheme == "https" else 80))
        except OSError:
            return f"its host {host} does not resolve to any address"
    refused = first_refused(addresses)
    if refused is not None:
        return (
            f"its host {host} is (or resolves to) {refused}, a loopback or private address; "
            f"webhooks may be sent there only when the server runs with {ALLOW_PRIVATE}"
        )
    return None


__all__ = ["MAX_URL_LENGTH", "url_problem"]
