"""Planning one proxied call, without I/O: where it goes, what the policy is asked about,
and the request parts the credentials are placed in.

The caller's path is joined under the profile's ``api_base_url`` (rendered with the
connection's tenant and fields) and can never leave it; the injected parts come from
``core.injection``. What a token implies (the policy's view of the target, the rendered
base, the injection) is worked out once per token and kept on it (``derived``), so a token
reused within the reuse window costs no rendering.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from authprofiles.core.connections import Connection
from authprofiles.core.errors import Forbidden, unfilled_template
from authprofiles.core.injection import (
    CallerPath,
    Injection,
    apply_header_list,
    fields_in_template,
    join_path,
    merge_body,
    merge_raw_query,
)
from authprofiles.core.ports import IssuedCredential, OutboundRequest
from authprofiles.core.profiles import Profile, field_values
from authprofiles.core.templating import TemplateError, render_url
from authprofiles.services.errors import NotConfigured

#: RFC 9110 section 7.6.1: connection-specific fields a proxy must not forward.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
#: Also never forwarded upstream: the caller's API key, a browser session's CSRF token,
#: and fields the client recomputes.
_DROP_REQUEST = HOP_BY_HOP | {"authorization", "x-csrf-token", "host", "content-length", "expect"}
#: This server's own cookies (a signed-in person's session) never leave it.
_OWN_COOKIE_PREFIX = "authprofiles_"
#: The server adds its own Date and Server; two of each would confuse clients.
_DROP_RESPONSE = HOP_BY_HOP | {"date", "server"}


@dataclass(frozen=True)
class IncomingRequest:
    """The caller's request, as the edge received it. ``path`` and ``query`` are raw
    (still percent-encoded), ``headers`` decoded as latin-1 like the wire bytes."""

    method: str
    path: str
    query: str
    headers: Sequence[tuple[str, str]]
    body: AsyncIterator[bytes]


@dataclass
class RequestBody:
    """The caller's body: ``data`` when buffered (replayable), else ``stream``."""

    data: bytes | None
    stream: AsyncIterator[bytes] | None
    content_type: str | None
    length: int | None
    merge_payload: bool

    @property
    def replayable(self) -> bool:
        return self.data is not None


@dataclass(frozen=True)
class PolicyTarget:
    """What the policy is asked about: the upstream host and the base URL's path.

    Placeholders that need a token (``{{access_token}}``, path fields) stay as written:
    the policy sees the resource, not the credential.
    """

    host: str
    base: str

    def path_for(self, path: CallerPath) -> str:
        return urlsplit(join_path(self.base, path)).path


@dataclass(frozen=True)
class Credentials:
    """What one issued token puts in every call: the same whatever the path."""

    injection: Injection
    base: str
    path_params: dict[str, str]
    egress_proxy_url: str | None


@dataclass(frozen=True)
class ProxyPlan:
    """Where one attempt goes and with which credentials."""

    issued: IssuedCredential
    url: str
    host: str
    injection: Injection
    egress_proxy_url: str | None

    @property
    def auth_error_status(self) -> int:
        return self.issued.profile.effective_auth_error_status_code


def policy_target(connection: Connection, profile: Profile) -> PolicyTarget:
    template = profile.api_base_url
    if not template:
        raise NotConfigured(
            f"profile {profile.name!r} has no api_base_url; set it to use the proxy"
        )
    known = field_values(profile, connection.fields)
    sketch = {**{k: "{{" + k + "}}" for k in fields_in_template(template)}, **known}
    base = _render("api_base_url", template, connection.tenant, sketch)
    return PolicyTarget(urlsplit(base).hostname or "", base)


def target_of(issued: IssuedCredential) -> PolicyTarget:
    """:func:`policy_target` for this token's connection and profile, kept on the token."""
    return issued.derived.get(
        PolicyTarget, lambda: policy_target(issued.connection, issued.profile)
    )


def credentials_of(issued: IssuedCredential) -> Credentials:
    """What calls with this token carry, kept on the token. Worked out only after the
    policy said yes: this is where the token is first applied."""
    return issued.derived.get(Credentials, lambda: _credentials(issued))


def _credentials(issued: IssuedCredential) -> Credentials:
    profile, connection = issued.profile, issued.connection
    template = profile.api_base_url
    if not template:
        raise NotConfigured(f"profile {profile.name!r} has no api_base_url")
    injection = issued.injection()  # raises InjectionError for an unfillable field
    values = {
        **field_values(profile, connection.fields),
        "access_token": issued.tokens.access_token,
        **injection.path,
    }
    in_template = fields_in_template(template)
    egress = profile.egress_proxy_url
    return Credentials(
        injection=injection,
        base=_render("api_base_url", template, connection.tenant, values),
        path_params={k: v for k, v in injection.path.items() if k not in in_template},
        egress_proxy_url=(
            _render("egress_proxy_url", egress, connection.tenant, values) if egress else None
        ),
    )


def build_plan(
    issued: IssuedCredential, credentials: Credentials, path: CallerPath, query: str, host: str
) -> ProxyPlan:
    """The URL of one attempt: the caller's path under the rendered base, the caller's
    query with the injected parameters merged in. ``host`` is the one the policy allowed."""
    parts = urlsplit(join_path(credentials.base, path, credentials.path_params))
    raw_query = "&".join(q for q in (parts.query, query) if q)
    if credentials.injection.query:
        raw_query = merge_raw_query(raw_query, list(credentials.injection.query.items()))
    url = urlunsplit(parts._replace(query=raw_query))
    if (parts.hostname or "") != host:
        raise Forbidden("the rendered URL would reach another host than the one allowed")
    return ProxyPlan(issued, url, host, credentials.injection, credentials.egress_proxy_url)


def forwarded_headers(headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The caller's headers that go upstream: not hop-by-hop ones (nor those its
    ``Connection`` names), not its API key, not those the client recomputes, and not this
    server's own cookies."""
    named = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == "connection"
        for token in value.split(",")
    }
    kept = []
    for name, value in headers:
        lowered = name.lower()
        if lowered in _DROP_REQUEST or lowered in named:
            continue
        if lowered == "cookie":
            value = _without_own_cookies(value)
            if not value:
                continue
        kept.append((name, value))
    return kept


def _without_own_cookies(header: str) -> str:
    """A ``Cookie`` header without this server's cookies (RFC 6265 section 4.2.1 pairs)."""
    pairs = [pair.strip() for pair in header.split(";")]
    return "; ".join(pair for pair in pairs if pair and not pair.startswith(_OWN_COOKIE_PREFIX))


def outbound_request(
    plan: ProxyPlan, method: str, headers: Sequence[tuple[str, str]], body: RequestBody
) -> OutboundRequest:
    """One attempt, with the credentials placed: injected headers replace the caller's of
    the same name, payload fields are merged into the body."""
    content: bytes | AsyncIterator[bytes] | None
    out = apply_header_list(headers, plan.injection)
    if body.merge_payload:
        content, content_type = merge_body(body.data or b"", body.content_type, plan.injection.body)
        out = [(k, v) for k, v in out if k.lower() != "content-type"]
        out.append(("Content-Type", content_type))
    elif body.data is not None:
        content = body.data or None
    else:
        content = body.stream
        if body.length is not None:
            # The caller's length is still true: the body passes through unchanged.
            out.append(("Content-Length", str(body.length)))
    return OutboundRequest(method, plan.url, out, content, plan.host, plan.egress_proxy_url)


def relayed_headers(
    raw_headers: Sequence[tuple[bytes, bytes]],
) -> tuple[list[tuple[bytes, bytes]], int | None]:
    """The upstream's header fields that go back to the caller (names lowercased), and
    its Content-Length when it gave one."""
    dropped = _DROP_RESPONSE
    for name, value in raw_headers:
        if name.lower() == b"connection":
            dropped = dropped | {t.strip().lower() for t in value.decode("latin-1").split(",")}
    kept: list[tuple[bytes, bytes]] = []
    length: int | None = None
    for name, value in raw_headers:
        lowered = name.lower()
        if lowered.decode("latin-1") in dropped:
            continue
        if lowered == b"content-length" and length is None and value.isdigit():
            length = int(value)
        kept.append((lowered, value))
    return kept, length


def _render(field: str, template: str, tenant: str | None, values: dict[str, str]) -> str:
    try:
        return render_url(template, tenant=tenant, fields=values)
    except TemplateError as exc:
        raise unfilled_template(field, exc) from None


__all__ = [
    "HOP_BY_HOP",
    "Credentials",
    "IncomingRequest",
    "PolicyTarget",
    "ProxyPlan",
    "RequestBody",
    "build_plan",
    "credentials_of",
    "forwarded_headers",
    "outbound_request",
    "policy_target",
    "relayed_headers",
    "target_of",
]
