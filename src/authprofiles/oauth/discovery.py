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
    token_url: str | None
    revocation_url: str | None
    introspection_url: str | None
    scopes_supported: list[str]
    code_challenge_methods: list[str]
    client_auth_methods: list[str]
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


def discover(transports: Transports, issuer: str) -> ServerMetadata:
    parts = urlsplit(issuer)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise DiscoveryFailed("issuer must be an http(s) URL without query or fragment")
    problems: list[str] = []
    client = transports.client(None)
    for url in dict.fromkeys(candidate_urls(issuer)):
        try:
            response = client.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise IdPUnavailable(f"could not reach {url} ({type(exc).__name__})") from exc
        if response.status_code != 200:
            problems.append(f"{url} answered HTTP {response.status_code}")
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
        if str(document.get("issuer", "")).rstrip("/") != issuer.rstrip("/"):
            problems.append(f"{url} names issuer {document.get('issuer')!r}, not {issuer!r}")
            continue
        metadata = AuthorizationServerMetadata(document)
        try:
            metadata.validate_issuer()
            metadata.validate_token_endpoint()
        except ValueError as exc:
            problems.append(f"{url}: {exc}")
            continue
        return ServerMetadata(
            issuer=document["issuer"],
            authorization_url=document.get("authorization_endpoint"),
            token_url=document.get("token_endpoint"),
            revocation_url=document.get("revocation_endpoint"),
            introspection_url=document.get("introspection_endpoint"),
            scopes_supported=list(document.get("scopes_supported") or []),
            code_challenge_methods=list(document.get("code_challenge_methods_supported") or []),
            # RFC 8414 section 2: absent means client_secret_basic.
            client_auth_methods=list(
                document.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
            ),
            source=url,
        )
    raise DiscoveryFailed("no usable metadata: " + "; ".join(problems))
