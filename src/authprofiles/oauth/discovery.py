"""RFC 8414 authorization server metadata and OpenID Connect Discovery 1.0."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from authprofiles.oauth._authlib import AuthorizationServerMetadata, get_well_known_url
from authprofiles.oauth.errors import IdPUnavailable, OAuthFailure
from authprofiles.oauth.transport import Transports


@dataclass(frozen=True)
class ServerMetadata:
    issuer: str
    authorization_url: str | None
    #: RFC 8628 section 4: ``device_authorization_endpoint``.
    device_authorization_url: str | None
    token_url: str | None
    revocation_url: str | None
    introspection_url: str | None
    scopes_supported: list[str]
    code_challenge_methods: list[str]
    #: ``token_endpoint_auth_methods_supported`` as the server lists it (``private_key_jwt``
    #: and ``none`` among them where it offers them).
    client_auth_methods: list[str]
    #: RFC 9207 section 3: whether authorization responses carry ``iss``.
    authorization_response_iss_parameter_supported: bool
    source: str


class DiscoveryFailed(OAuthFailure):
    pass


def candidate_urls(issuer: str) -> list[str]:
    """RFC 8414 section 3.1 puts the well-known segment before the issuer's path; OpenID
    Connect Discovery section 4 appends it. Servers use one, the other or both."""
    return [
        str(get_well_known_url(issuer, external=True, suffix="oauth-authorization-server")),
        issuer.rstrip("/") + "/.well-known/openid-configuration",
        str(get_well_known_url(issuer, external=True, suffix="openid-configuration")),
    ]


#: ServerMetadata's URLs, by the RFC 8414 (and RFC 8628 section 4) member they come from.
_URL_MEMBERS = {
    "authorization_url": "authorization_endpoint",
    "device_authorization_url": "device_authorization_endpoint",
    "token_url": "token_endpoint",
    "revocation_url": "revocation_endpoint",
    "introspection_url": "introspection_endpoint",
}
#: ServerMetadata's lists, by their members ("JSON array containing a list of ...").
_LIST_MEMBERS = {
    "scopes_supported": "scopes_supported",
    "code_challenge_methods": "code_challenge_methods_supported",
    "client_auth_methods": "token_endpoint_auth_methods_supported",
}


def _members(document: dict[str, Any]) -> dict[str, Any]:
    """The members used, each of the JSON type RFC 8414 section 2 gives it (absent is
    fine): a ``ValueError`` names the first that is not."""
    out: dict[str, Any] = {}
    for field, member in _URL_MEMBERS.items():
        value = document.get(member)
        if value is not None and not isinstance(value, str):
            raise ValueError(f'"{member}" is not a string')
        out[field] = value
    for field, member in _LIST_MEMBERS.items():
        value = document.get(member)
        if value is not None and not (
            isinstance(value, list) and all(isinstance(item, str) for item in value)
        ):
            raise ValueError(f'"{member}" is not an array of strings')
        out[field] = list(value or [])
    # RFC 8414 section 2: "If omitted, the default is "client_secret_basic"".
    out["client_auth_methods"] = out["client_auth_methods"] or ["client_secret_basic"]
    flag = document.get("authorization_response_iss_parameter_supported")
    if flag is not None and not isinstance(flag, bool):
        raise ValueError('"authorization_response_iss_parameter_supported" is not a boolean')
    # RFC 9207 section 3: "If omitted, the default value is false."
    out["authorization_response_iss_parameter_supported"] = flag is True
    return out


def discover(
    transports: Transports, issuer: str, *, egress_proxy_url: str | None = None
) -> ServerMetadata:
    """The issuer's metadata, from the first of its well-known documents that is usable.

    :class:`DiscoveryFailed` when none is (no document, or none for this issuer);
    :class:`IdPUnavailable` when the server could not be reached, or none was usable and
    some answered with a server error (then one may be there, just not now).
    ``egress_proxy_url``: the profile's connector, when the server is reached through one.
    """
    parts = urlsplit(issuer)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise DiscoveryFailed("issuer must be an http(s) URL without query or fragment")
    problems: list[str] = []
    unavailable: list[str] = []
    client = transports.client(egress_proxy_url)
    for url in dict.fromkeys(candidate_urls(issuer)):
        try:
            response = client.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise IdPUnavailable(f"could not reach {url} ({type(exc).__name__})") from exc
        if response.status_code != 200:
            problems.append(f"{url} answered HTTP {response.status_code}")
            if response.status_code >= 500 or response.status_code == 429:
                unavailable.append(problems[-1])
            continue
        try:
            document: Any = response.json()
        except ValueError:
            problems.append(f"{url} is not JSON")
            continue
        if not isinstance(document, dict):
            problems.append(f"{url} is not a JSON object")
            continue
        # RFC 8414 section 3.3: the issuer in the document MUST equal the one asked for.
        named = document.get("issuer")
        if not isinstance(named, str) or named.rstrip("/") != issuer.rstrip("/"):
            problems.append(f"{url} names issuer {named!r}, not {issuer!r}")
            continue
        try:
            members = _members(document)
            metadata = AuthorizationServerMetadata(document)
            metadata.validate_issuer()
            metadata.validate_token_endpoint()
        except ValueError as exc:
            problems.append(f"{url}: {exc}")
            continue
        return ServerMetadata(issuer=named, source=url, **members)
    if unavailable:
        raise IdPUnavailable("no usable metadata, and " + "; ".join(unavailable), host=parts.netloc)
    raise DiscoveryFailed("no usable metadata: " + "; ".join(problems))
