"""The proxy: forward an agent's call to the profile's API with the credentials applied.

``ANY /proxy/{connection_id}/{path}`` reaches ``api_base_url`` + ``path``. Both bodies
stream: the request body is held in memory only when payload fields must be merged into
it, or when it is small enough to replay after a refused token; the response body is
never held. One pool per egress route (``Transports.async_client``) serves every call.

On the profile's auth error status (seed 000 "Auth Error Status Code", default 401) the
token is refreshed once (single-flight, see ``TokenService.force_refresh``) and the call
is sent again when its body can be replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit, urlunsplit

import anyio.to_thread
import httpx

from authprofiles.core.errors import DomainError, Forbidden, UpstreamError, UpstreamTimeout
from authprofiles.core.injection import (
    Injection,
    InjectionError,
    PayloadError,
    apply_header_list,
    carries_payload,
    fields_in_template,
    join_path,
    merge_body,
    merge_raw_query,
    split_path,
)
from authprofiles.core.templating import TemplateError, render_url
from authprofiles.services.access import Principal, Purpose
from authprofiles.services.errors import NeedsReauth, NotConfigured
from authprofiles.services.oauth_settings import field_values
from authprofiles.services.tokens import IssuedToken

if TYPE_CHECKING:
    from authprofiles.services.container import Services

log = logging.getLogger("authprofiles.proxy")
T = TypeVar("T")

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
#: Also never forwarded upstream: the caller's API key, and fields the client recomputes.
_DROP_REQUEST = HOP_BY_HOP | {"authorization", "host", "content-length", "expect"}
#: The server adds its own Date and Server; two of each would confuse clients.
_DROP_RESPONSE = HOP_BY_HOP | {"date", "server"}

#: A body up to this size is buffered so the call can be replayed after a refused token.
REPLAY_LIMIT = 1024 * 1024
#: Payload fields need the whole body in memory; larger bodies are refused.
PAYLOAD_LIMIT = 10 * 1024 * 1024


class BodyTooLarge(DomainError):
    status_code = 413
    title = "Request body too large"


class ProxyUpstreamError(UpstreamError):
    """The upstream API could not be reached or broke off; ``host`` names it."""

    def __init__(self, detail: str, host: str) -> None:
        super().__init__(detail)
        self.host = host


class ProxyUpstreamTimeout(UpstreamTimeout):
    def __init__(self, detail: str, host: str) -> None:
        super().__init__(detail)
        self.host = host


@dataclass(frozen=True)
class IncomingRequest:
    """The caller's request, as the edge received it. ``path`` and ``query`` are raw
    (still percent-encoded), ``headers`` decoded as latin-1 like the wire bytes."""

    method: str
    path: str
    query: str
    headers: Sequence[tuple[str, str]]
    body: AsyncIterator[bytes]


@dataclass(frozen=True)
class ProxyPlan:
    """Where one attempt goes and with which credentials."""

    issued: IssuedToken
    url: str
    host: str
    injection: Injection
    egress_proxy_url: str | None

    @property
    def auth_error_status(self) -> int:
        return self.issued.profile.effective_auth_error_status_code


@dataclass
class _Body:
    """The request body: ``data`` when buffered (replayable), else ``stream``."""

    data: bytes | None
    stream: AsyncIterator[bytes] | None
    content_type: str | None
    length: int | None
    merge_payload: bool

    @property
    def replayable(self) -> bool:
        return self.data is not None


class UpstreamResponse:
    """The upstream's answer, body not yet read. The edge streams it and must call
    :meth:`aclose` (also when the caller goes away)."""

    def __init__(self, response: httpx.Response, *, retried: bool) -> None:
        self._response = response
        self.status_code = response.status_code
        self.retried = retried
        connection_tokens = {
            t.strip().lower() for t in response.headers.get("connection", "").split(",")
        }
        self.raw_headers: list[tuple[bytes, bytes]] = [
            (name.lower(), value)
            for name, value in response.headers.raw
            if name.decode("latin-1").lower() not in _DROP_RESPONSE | connection_tokens
        ]

    def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body as sent (still compressed, if it was): Content-Length stays true."""
        return self._response.aiter_raw()

    async def aclose(self) -> None:
        await self._response.aclose()


class ProxyService:
    def __init__(self, services: Services) -> None:
        self.s = services

    # -- planning (blocking: runs in the thread pool) --------------------------------
    def plan(
        self, principal: Principal, connection_id: str, method: str, path: str, query: str
    ) -> ProxyPlan:
        """Check the path, ask the policy, get a valid token and build the target URL."""
        split_path(path)  # refuse escape attempts before any token is touched
        connection, profile = self.s.credentials.read(principal.workspace_id, connection_id)
        template = profile.api_base_url
        if not template:
            raise NotConfigured(
                f"profile {profile.name!r} has no api_base_url; set it to use the proxy"
            )
        # The policy sees the host and the resource path before a token exists, so
        # placeholders that need one stay as written: a host never depends on them.
        known = field_values(profile, connection.fields)
        sketch = {**{k: "{{" + k + "}}" for k in fields_in_template(template)}, **known}
        policy_base = _render(template, connection.tenant, sketch)
        host = urlsplit(policy_base).hostname or ""
        issued = self.s.tokens.get_token(
            principal,
            connection_id,
            purpose=Purpose.PROXY,
            method=method,
            host=host,
            path=urlsplit(join_path(policy_base, path)).path,
        )
        return self._build(issued, path, query, host)

    def _build(self, issued: IssuedToken, path: str, query: str, host: str) -> ProxyPlan:
        profile, connection = issued.profile, issued.connection
        template = profile.api_base_url
        if not template:
            raise NotConfigured(f"profile {profile.name!r} has no api_base_url")
        try:
            injection = issued.injection()
        except TemplateError as exc:
            raise InjectionError(f"an authorization field cannot be filled: {exc}") from None
        values = {
            **field_values(profile, connection.fields),
            "access_token": issued.tokens.access_token,
            **injection.path,
        }
        base = _render(template, connection.tenant, values)
        in_template = fields_in_template(template)
        params = {k: v for k, v in injection.path.items() if k not in in_template}
        parts = urlsplit(join_path(base, path, params))
        raw_query = "&".join(q for q in (parts.query, query) if q)
        if injection.query:
            raw_query = merge_raw_query(raw_query, list(injection.query.items()))
        url = urlunsplit(parts._replace(query=raw_query))
        if (parts.hostname or "") != host:
            raise Forbidden("the rendered URL would reach another host than the one allowed")
        egress = profile.egress_proxy_url
        if egress:
            egress = _render(egress, connection.tenant, values)
        return ProxyPlan(issued, url, host, injection, egress)

    def _plan_after_refusal(
        self, principal: Principal, plan: ProxyPlan, path: str, query: str
    ) -> ProxyPlan:
        issued = self.s.tokens.force_refresh(
            principal, plan.issued.connection.id, seen_version=plan.issued.connection.version
        )
        return self._build(issued, path, query, plan.host)

    def refresh_refused(
        self, principal: Principal, connection_id: str, refused_sha256: str | None
    ) -> IssuedToken:
        """For clients applying the token themselves (the SDK): the API refused a token.

        Refresh once, unless the stored token already differs from the refused one (then
        another caller refreshed first, and the new token is the answer).
        """
        issued = self.s.tokens.get_token(principal, connection_id)
        if refused_sha256 is not None:
            current = hashlib.sha256(issued.tokens.access_token.encode()).hexdigest()
            if not hmac.compare_digest(current, refused_sha256.strip().lower()):
                return issued
        return self.s.tokens.force_refresh(
            principal, connection_id, seen_version=issued.connection.version
        )

    # -- forwarding (async: runs on the server's loop) ---------------------------------
    async def forward(
        self, principal: Principal, connection_id: str, incoming: IncomingRequest
    ) -> UpstreamResponse:
        method = incoming.method.upper()
        plan = await _blocking(
            partial(self.plan, principal, connection_id, method, incoming.path, incoming.query)
        )
        body = await self._read_body(incoming, plan)
        headers = _forward_headers(incoming.headers)
        response = await self._send(plan, method, headers, body)
        if response.status_code != plan.auth_error_status:
            return UpstreamResponse(response, retried=False)

        # RFC 6750 section 3.1: "invalid_token" (401) means the token is expired, revoked
        # or otherwise refused; a fresh one may be accepted. Refresh once.
        try:
            fresh = await _blocking(
                partial(self._plan_after_refusal, principal, plan, incoming.path, incoming.query)
            )
        except NeedsReauth:
            await response.aclose()
            raise
        except DomainError as exc:
            # The IdP is unreachable or similar: the API's own answer says the most.
            log.warning("refresh after HTTP %s failed: %s", response.status_code, exc.detail)
            return UpstreamResponse(response, retried=False)
        if (
            not body.replayable
            or fresh.issued.tokens.access_token == plan.issued.tokens.access_token
        ):
            # The body has streamed away (the caller's own retry will get the new token),
            # or there is no new token to try.
            return UpstreamResponse(response, retried=False)
        await response.aclose()
        retry = await self._send(fresh, method, headers, body)
        return UpstreamResponse(retry, retried=True)

    async def _read_body(self, incoming: IncomingRequest, plan: ProxyPlan) -> _Body:
        headers = {k.lower(): v for k, v in incoming.headers}
        content_type = headers.get("content-type")
        length: int | None = None
        if "content-length" in headers:
            try:
                length = int(headers["content-length"])
            except ValueError:
                raise PayloadError("the Content-Length header is not a number") from None
        has_body = bool(length) or "transfer-encoding" in headers
        merge = bool(plan.injection.body) and carries_payload(incoming.method, has_body)
        if not has_body:
            return _Body(b"", None, content_type, 0, merge)
        stream = aiter(incoming.body)
        if merge:
            data, complete = await _read_upto(stream, PAYLOAD_LIMIT)
            if not complete:
                raise BodyTooLarge(
                    f"payload fields are merged into the body, which must then be at most "
                    f"{PAYLOAD_LIMIT // (1024 * 1024)} MiB"
                )
            return _Body(data, None, content_type, len(data), merge)
        if length is not None and length > REPLAY_LIMIT:
            return _Body(None, stream, content_type, length, merge)
        data, complete = await _read_upto(stream, REPLAY_LIMIT)
        if complete:
            return _Body(data, None, content_type, len(data), merge)
        # Larger than it looked (chunked): send what was read, then the rest, unbuffered.
        return _Body(None, _prepend(data, stream), content_type, length, merge)

    async def _send(
        self, plan: ProxyPlan, method: str, headers: list[tuple[str, str]], body: _Body
    ) -> httpx.Response:
        content: bytes | AsyncIterator[bytes] | None
        out = apply_header_list(headers, plan.injection)
        if body.merge_payload:
            merged, content_type = merge_body(
                body.data or b"", body.content_type, plan.injection.body
            )
            content = merged
            out = [(k, v) for k, v in out if k.lower() != "content-type"]
            out.append(("Content-Type", content_type))
        elif body.data is not None:
            content = body.data or None
        else:
            content = body.stream
            if body.length is not None:
                # The caller's length is still true: the body passes through unchanged.
                out.append(("Content-Length", str(body.length)))
        client = self.s.transports.async_client(plan.egress_proxy_url)
        request = client.build_request(method, plan.url, headers=out, content=content)
        try:
            return await client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise ProxyUpstreamTimeout(
                f"{plan.host} did not answer in time ({type(exc).__name__})", plan.host
            ) from None
        except httpx.ProxyError as exc:
            raise ProxyUpstreamError(
                f"the egress proxy could not reach {plan.host}: {_safe(exc, plan)}", plan.host
            ) from None
        except httpx.ConnectError as exc:
            raise ProxyUpstreamError(
                f"could not connect to {plan.host}: {_safe(exc, plan)}", plan.host
            ) from None
        except httpx.TransportError as exc:
            raise ProxyUpstreamError(
                f"the connection to {plan.host} failed: {_safe(exc, plan)}", plan.host
            ) from None


async def _blocking(call: Callable[[], T]) -> T:
    """Database reads and IdP calls block: run them in the thread pool FastAPI's
    ``run_in_threadpool`` uses, so the event loop keeps streaming other calls."""
    return await anyio.to_thread.run_sync(call)


def _render(template: str, tenant: str | None, values: dict[str, str]) -> str:
    try:
        return render_url(template, tenant=tenant, fields=values)
    except TemplateError as exc:
        raise InjectionError(f"the profile's URL cannot be rendered: {exc}") from None


def _forward_headers(headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    named = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == "connection"
        for token in value.split(",")
    }
    return [(k, v) for k, v in headers if k.lower() not in _DROP_REQUEST and k.lower() not in named]


def _safe(exc: Exception, plan: ProxyPlan) -> str:
    """An exception's text without anything secret that may have ended up in it."""
    text = f"{type(exc).__name__}: {exc}"[:300]
    for secret in (*plan.injection.values(), plan.issued.tokens.access_token, plan.url):
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


async def _read_upto(stream: AsyncIterator[bytes], limit: int) -> tuple[bytes, bool]:
    """Read until the end (True) or until more than ``limit`` bytes were read (False)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream:
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks), False
    return b"".join(chunks), True


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk


__all__ = [
    "HOP_BY_HOP",
    "PAYLOAD_LIMIT",
    "REPLAY_LIMIT",
    "BodyTooLarge",
    "IncomingRequest",
    "ProxyPlan",
    "ProxyService",
    "ProxyUpstreamError",
    "ProxyUpstreamTimeout",
    "UpstreamResponse",
]
