"""The proxy: forward an agent's call to the profile's API with the credentials applied.

``ANY /proxy/{connection_id}/{path}`` reaches ``api_base_url`` + ``path``. Both bodies
stream: the request body is held in memory only when payload fields must be merged into
it, or when it is small enough to replay after a refused token; the response body is
relayed chunk by chunk (the edge sends a small one of known length in one piece). One
pool per egress route (``Transports.upstream``) serves every call, so that a call costs
a request on a warm connection, not a TLS handshake.

Every call asks the policy (``authorize_credential_use``, purpose ``proxy``, with the
method, host and path it will reach). The token comes from the token service; a token
this process used for the same connection within the last second is used again without
reading it anew (the token service's reuse window; see :meth:`ProxyService.plan_from_memory`).

On the profile's auth error status (seed 000 "Auth Error Status Code", default 401) the
token is refreshed once (single-flight, see ``TokenService.force_refresh``) and the call
is sent again when its body can be replayed.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import anyio.to_thread
import yarl

from authprofiles.core.connections import Connection
from authprofiles.core.errors import (
    Conflict,
    DomainError,
    Forbidden,
    UpstreamError,
    UpstreamTimeout,
)
from authprofiles.core.injection import (
    CallerPath,
    Injection,
    InjectionError,
    PayloadError,
    apply_header_list,
    carries_payload,
    fields_in_template,
    join_path,
    merge_body,
    merge_raw_query,
)
from authprofiles.core.profiles import Profile
from authprofiles.core.templating import TemplateError, render_url
from authprofiles.services.access import (
    Principal,
    Purpose,
)
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


class UpstreamBodyBrokeOff(Exception):
    """The upstream's body ended before its headers said it would, or the connection
    broke while it streamed. Not a :class:`DomainError`: once the response has begun,
    the edge can only cut the caller's connection."""


class UpstreamResponse:
    """The upstream's answer, body not yet read. The edge streams it and must call
    :meth:`aclose` (also when the caller goes away)."""

    def __init__(self, response: aiohttp.ClientResponse, *, host: str, retried: bool) -> None:
        self._response = response
        self.host = host
        self.status_code = response.status
        self.retried = retried
        dropped = _DROP_RESPONSE | {
            t.strip().lower() for t in response.headers.get("Connection", "").split(",")
        }
        self.raw_headers: list[tuple[bytes, bytes]] = [
            (lowered, value)
            for name, value in response.raw_headers
            if (lowered := name.lower()).decode("latin-1") not in dropped
        ]

    @property
    def content_length(self) -> int | None:
        value = self._response.headers.get("Content-Length")
        return int(value) if value is not None and value.isdigit() else None

    async def read_raw(self) -> bytes:
        """The whole body as sent, for small ones (see ``content_length``); closes."""
        try:
            return await self._response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamBodyBrokeOff(type(exc).__name__) from None
        finally:
            self._response.release()

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body as sent (still compressed, if it was): Content-Length stays true."""
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamBodyBrokeOff(type(exc).__name__) from None

    async def aclose(self) -> None:
        # A body read to its end gives the connection back to the pool; one cut short
        # closes it (aiohttp decides which).
        self._response.release()


@dataclass(frozen=True)
class _PolicyTarget:
    """What the policy is asked about: the upstream host and the base URL's path.

    Placeholders that need a token (``{{access_token}}``, path fields) stay as written:
    the policy sees the resource, not the credential.
    """

    host: str
    base: str

    def path_for(self, path: CallerPath) -> str:
        return urlsplit(join_path(self.base, path)).path


def _policy_target(connection: Connection, profile: Profile) -> _PolicyTarget:
    template = profile.api_base_url
    if not template:
        raise NotConfigured(
            f"profile {profile.name!r} has no api_base_url; set it to use the proxy"
        )
    known = field_values(profile, connection.fields)
    sketch = {**{k: "{{" + k + "}}" for k in fields_in_template(template)}, **known}
    base = _render(template, connection.tenant, sketch)
    return _PolicyTarget(urlsplit(base).hostname or "", base)


@dataclass(frozen=True)
class _Credentials:
    """What one issued token puts in every call: the same whatever the path."""

    injection: Injection
    base: str
    path_params: dict[str, str]
    egress_proxy_url: str | None


def _credentials_of(issued: IssuedToken) -> _Credentials:
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
    credentials = _Credentials(
        injection=injection,
        base=_render(template, connection.tenant, values),
        path_params={k: v for k, v in injection.path.items() if k not in in_template},
        egress_proxy_url=_render(egress, connection.tenant, values) if egress else None,
    )
    return credentials


def _derived(issued: IssuedToken) -> tuple[_PolicyTarget, _Credentials]:
    """Where calls with this token go and what they carry: worked out once per token and
    kept on it, so a token reused by the token service is not worked out again."""
    derived = issued.memo.get("proxy")
    if derived is None:
        derived = issued.memo["proxy"] = (
            _policy_target(issued.connection, issued.profile),
            _credentials_of(issued),
        )
    target, credentials = derived
    return target, credentials


class ProxyService:
    def __init__(self, services: Services) -> None:
        self.s = services

    # -- planning (blocking: runs in the thread pool) --------------------------------
    def plan(
        self, principal: Principal, connection_id: str, method: str, path: CallerPath, query: str
    ) -> ProxyPlan:
        """Ask the policy, get a valid token and build the target URL. ``path`` was
        checked before (:meth:`CallerPath.of`), so an escape is refused before any token
        is touched.

        The policy is asked about the host and resource path the call will reach. Those
        come from the profile and the connection, which the token service reads anyway;
        so the target seen last time for this connection is asked about, and checked
        against what the read returned: when it changed (the profile was edited), the
        policy is asked again about the new one. Only the first call reads twice.
        """
        last = self.s.tokens.last_issued(connection_id)
        target: _PolicyTarget | None = None
        if last is not None:
            # Only a guess, checked below against what the token service reads.
            with contextlib.suppress(DomainError):
                target = _policy_target(last.connection, last.profile)
        if target is None:
            connection, profile = self.s.credentials.read(principal.workspace_id, connection_id)
            target = _policy_target(connection, profile)
        for _ in range(2):
            issued = self.s.tokens.get_token(
                principal,
                connection_id,
                purpose=Purpose.PROXY,
                method=method,
                host=target.host,
                path=target.path_for(path),
            )
            current, credentials = _derived(issued)
            if current == target:
                return self._build(issued, credentials, path, query, target.host)
            target = current
        raise Conflict("the profile changed twice while this call was prepared; try again")

    def plan_from_memory(
        self, principal: Principal, connection_id: str, method: str, path: CallerPath, query: str
    ) -> ProxyPlan | None:
        """The same without I/O, from a token this process used within the
        ``token_reuse_seconds`` setting (the token endpoint's window too); None when there
        is none (then :meth:`plan`).

        The policy is asked every time, exactly as :meth:`plan` asks it. Reuse is bounded
        so that a deleted connection or an edited profile takes effect within that time;
        a token replaced by another worker meanwhile is caught by the refused-token
        retry, which then finds the stored token without calling the IdP.
        """
        issued = self.s.tokens.reusable(principal, connection_id)
        if issued is None:
            return None
        target, credentials = _derived(issued)
        self.s.tokens.authorize(
            principal,
            issued.connection,
            Purpose.PROXY,
            method=method,
            host=target.host,
            path=target.path_for(path),
        )
        return self._build(issued, credentials, path, query, target.host)

    def _build(
        self,
        issued: IssuedToken,
        credentials: _Credentials,
        path: CallerPath,
        query: str,
        host: str,
    ) -> ProxyPlan:
        parts = urlsplit(join_path(credentials.base, path, credentials.path_params))
        raw_query = "&".join(q for q in (parts.query, query) if q)
        if credentials.injection.query:
            raw_query = merge_raw_query(raw_query, list(credentials.injection.query.items()))
        url = urlunsplit(parts._replace(query=raw_query))
        if (parts.hostname or "") != host:
            raise Forbidden("the rendered URL would reach another host than the one allowed")
        return ProxyPlan(issued, url, host, credentials.injection, credentials.egress_proxy_url)

    def _plan_after_refusal(
        self, principal: Principal, plan: ProxyPlan, path: CallerPath, query: str
    ) -> ProxyPlan:
        connection_id = plan.issued.connection.id
        try:
            issued = self.s.tokens.force_refresh(
                principal, connection_id, seen_version=plan.issued.connection.version
            )
        except DomainError:
            self.s.tokens.forget(connection_id)
            raise
        return self._build(issued, _derived(issued)[1], path, query, plan.host)

    def refresh_refused(
        self, principal: Principal, connection_id: str, refused_sha256: str | None
    ) -> IssuedToken:
        """For clients applying the token themselves (the SDK): the API refused a token.

        Refresh once, unless the stored token already differs from the refused one (then
        another caller refreshed first, and the new token is the answer).
        """
        self.s.tokens.forget(connection_id)  # nobody may reuse the refused token
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
        # Checked once, before any token is touched; joined under two bases below.
        path = CallerPath.of(incoming.path)
        args = (principal, connection_id, method, path, incoming.query)
        plan = await self.s.tokens.reuse_or_read(
            connection_id,
            partial(self.plan_from_memory, *args),
            partial(_blocking, partial(self.plan, *args)),
        )
        body = await self._read_body(incoming, plan)
        headers = _forward_headers(incoming.headers)
        response = await self._send(plan, method, headers, body)
        if response.status != plan.auth_error_status:
            return UpstreamResponse(response, host=plan.host, retried=False)

        # RFC 6750 section 3.1: "invalid_token" (401) means the token is expired, revoked
        # or otherwise refused; a fresh one may be accepted. Refresh once.
        try:
            fresh = await _blocking(
                partial(self._plan_after_refusal, principal, plan, path, incoming.query)
            )
        except NeedsReauth:
            response.release()
            raise
        except DomainError as exc:
            # The IdP is unreachable or similar: the API's own answer says the most.
            log.warning("refresh after HTTP %s failed: %s", response.status, exc.detail)
            return UpstreamResponse(response, host=plan.host, retried=False)
        if (
            not body.replayable
            or fresh.issued.tokens.access_token == plan.issued.tokens.access_token
        ):
            # The body has streamed away (the caller's own retry will get the new token),
            # or there is no new token to try.
            return UpstreamResponse(response, host=plan.host, retried=False)
        response.release()
        retry = await self._send(fresh, method, headers, body)
        return UpstreamResponse(retry, host=fresh.host, retried=True)

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
    ) -> aiohttp.ClientResponse:
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
        session = self.s.transports.upstream(plan.egress_proxy_url)
        try:
            return await session.request(
                method,
                # Already encoded and checked (join_path): sent exactly as built.
                yarl.URL(plan.url, encoded=True),
                headers=out,
                data=content,
                allow_redirects=False,
                proxy=plan.egress_proxy_url,
            )
        except TimeoutError as exc:  # aiohttp's connect and read timeouts are these
            raise UpstreamTimeout(
                f"{plan.host} did not answer in time ({type(exc).__name__})", plan.host
            ) from None
        except (aiohttp.ClientProxyConnectionError, aiohttp.ClientHttpProxyError) as exc:
            raise UpstreamError(
                f"the egress proxy could not reach {plan.host}: {_safe(exc, plan)}", plan.host
            ) from None
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamError(
                f"could not connect to {plan.host}: {_safe(exc, plan)}", plan.host
            ) from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(
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
    "UpstreamBodyBrokeOff",
    "UpstreamResponse",
]
