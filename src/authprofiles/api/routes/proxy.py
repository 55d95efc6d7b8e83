"""/api/v1/proxy: call the profile's API through authprofiles, credentials applied.

Also ``POST /connections/{id}/token/refresh``: for clients that apply the token
themselves (the SDK) and were refused by the API, the counterpart of the proxy's own
refresh-once-and-retry.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import Message, Receive, Scope, Send

from authprofiles.api.deps import CurrentPrincipal, ProxyCaller, ServicesDep
from authprofiles.api.hot import Endpoint, HotRoute, HotRouter
from authprofiles.api.problems import PROBLEM_JSON, problem, problem_responses
from authprofiles.api.routes.connections import TOKEN_PROBLEMS
from authprofiles.api.schemas import TokenPublic
from authprofiles.composition import Services
from authprofiles.core.callers import Principal
from authprofiles.core.connections import NextStep
from authprofiles.core.errors import DomainError, NotFound
from authprofiles.core.injection import PathEscape
from authprofiles.services.connections import ReauthorizeRequest
from authprofiles.services.errors import NeedsReauth
from authprofiles.services.proxy import (
    IncomingRequest,
    UpstreamBodyBrokeOff,
    UpstreamResponse,
)

log = logging.getLogger("authprofiles.proxy")
router = APIRouter(tags=["proxy"])
#: Served ahead of the app's routing (``api.hot``): a proxied call is the service's hottest
#: path, and FastAPI's route matching and dependency solving cost more than the call
#: itself (measured: they took a third of the proxy's CPU).
hot = HotRouter(tags=["proxy"])

#: Upstream bodies of known length up to this are relayed in one piece.
SMALL_BODY = 64 * 1024
PROXY_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")

_PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {}}}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The upstream API's answer, streamed as it arrives"},
    400: {**_PROBLEM, "description": "The path tries to leave the profile's api_base_url"},
    401: {**_PROBLEM, "description": "No valid API key or agent grant (expired, revoked)"},
    403: {
        **_PROBLEM,
        "description": "The policy refused this use of the connection; for an agent, "
        "outside its grant (`failed_rules`), or held for a person's approval (type "
        "`/problems/approval-required`, with `approval_id` and `approval_url`)",
    },
    409: {
        **_PROBLEM,
        "description": "The connection needs authorization again (for an agent, with the "
        "`authorization_url` or device code its person follows)",
    },
    429: {**_PROBLEM, "description": "An agent grant's rate or call budget is spent"},
    413: {**_PROBLEM, "description": "Payload fields need a body of at most 10 MiB"},
    415: {**_PROBLEM, "description": "Payload fields need a JSON object or form body"},
    502: {**_PROBLEM, "description": "The upstream could not be reached (`upstream_host`)"},
    504: {**_PROBLEM, "description": "The upstream did not answer in time (`upstream_host`)"},
}


class UpstreamStreamingResponse(Response):
    """Relays the upstream body chunk by chunk and closes the upstream connection when
    done, when the body breaks off, or as soon as the caller goes away."""

    def __init__(self, upstream: UpstreamResponse) -> None:
        self.upstream = upstream
        self.status_code = upstream.status_code
        self.background = None
        self.raw_headers = list(upstream.raw_headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def relay() -> None:
                    await self._relay(send)
                    group.cancel_scope.cancel()

                group.start_soon(relay)
                await _until_disconnected(receive)
                group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self.upstream.aclose()

    async def _relay(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        try:
            async for chunk in self.upstream.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except UpstreamBodyBrokeOff as exc:
            # Headers are out: the only honest signal left is to break the connection,
            # so the caller sees a short body rather than a complete-looking one.
            log.warning("upstream body broke off: %s", exc)
            raise
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _until_disconnected(receive: Receive) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return


def _target(scope: Scope, mount: str) -> tuple[str, str]:
    """(connection id, path after it) from the request line. The path stays exactly as
    sent: the decoded one would hide ``%2F`` and ``%2e%2e``, the very things an escape
    attempt uses. The prefix and the id (a UUID) need no encoding; when the prefix came
    encoded, the raw path cannot be cut at it, and the request is refused."""
    raw = bytes(scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
    _, marker, rest = raw.split("?", 1)[0].partition(mount + "/")
    if not marker:
        raise PathEscape(f"send the proxy's path as {mount}/{{connection_id}}/..., unencoded")
    connection_id, _, tail = rest.partition("/")
    return connection_id, tail


class ProxyRoute(HotRoute):
    """A proxy operation, ``{mount}/{connection_id}/{path}``, which also answers at the
    connection's root, ``{mount}/{connection_id}`` (the ``api_base_url`` itself)."""

    def __init__(self, path: str, endpoint: Endpoint, **options: Any) -> None:
        super().__init__(path, endpoint, **options)
        self.mount = path.partition("/{connection_id}")[0]
        # As compiled from the path, but for the slash before an empty `path`: optional.
        self.path_regex = re.compile(
            f"^{re.escape(self.mount)}/(?P<connection_id>[^/]+)/?(?P<path>.*)$"
        )


async def proxy_call(
    connection_id: str,
    path: str,
    principal: ProxyCaller,
    request: Request,
    services: ServicesDep,
) -> Response:
    """Forward to the profile's `api_base_url` + `path` with the token and the
    authorization fields applied. Method, query, headers (but hop-by-hop ones, the
    caller's `Authorization` and `Host`) and body pass through and both bodies stream.
    On the profile's `auth_error_status_code` (default 401) the token is refreshed once
    and the call retried when its body could be kept (bodies up to 1 MiB)."""
    # The router matched the decoded path, in which `%2F` is a slash: `connection_id` and
    # `path` name the call in the schema, and it goes where the path as sent says.
    route = request.scope["route"]
    assert isinstance(route, ProxyRoute)
    target_id, tail = _target(request.scope, route.mount)
    if not target_id:
        raise NotFound("name a connection: /api/v1/proxy/{connection_id}/{path}")
    return await _proxy(target_id, tail, request, services, principal)


for _method in PROXY_METHODS:
    # One operation per method, so each has its own OpenAPI operation id.
    hot.add_api_route(
        "/proxy/{connection_id}/{path:path}",
        proxy_call,
        route_class=ProxyRoute,
        methods=[_method],
        name=f"proxy_{_method.lower()}",
        response_class=Response,
        responses=_RESPONSES,
        include_in_schema=_method != "HEAD",
    )


async def _proxy(
    connection_id: str,
    tail: str,
    request: Request,
    services: Services,
    principal: Principal,
) -> Response:
    incoming = IncomingRequest(
        method=request.method,
        path=tail,
        query=bytes(request.scope.get("query_string", b"")).decode("latin-1"),
        headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.scope["headers"]],
        body=request.stream(),
    )
    # An upstream that cannot be reached is an UpstreamError naming its host, answered
    # (with `upstream_host`) by the API's one domain error handler.
    try:
        upstream = await services.proxy.forward(
            principal, connection_id, incoming, wait_seconds=_prefer_wait(request)
        )
    except NeedsReauth as exc:
        if not principal.is_agent:
            raise
        consent = await consent_for_agent(services, principal, connection_id, exc)
        if consent is None:
            raise
        return JSONResponse(consent, status_code=409, media_type=PROBLEM_JSON)
    length = upstream.content_length
    if request.method != "HEAD" and length is not None and length <= SMALL_BODY:
        # A small body of known size goes in one message: memory stays bounded (at most
        # SMALL_BODY), and typical API answers skip the disconnect-watching relay.
        try:
            body = await upstream.read_raw()
        except UpstreamBodyBrokeOff as exc:
            # Nothing was sent to the caller yet, so this can still be an honest 502.
            return problem(
                502,
                "Bad gateway",
                f"the answer from {upstream.host} broke off ({exc})",
                upstream_host=upstream.host,
            )
        response = Response(status_code=upstream.status_code)
        response.body = body
        response.raw_headers = list(upstream.raw_headers)
        return response
    return UpstreamStreamingResponse(upstream)


def _prefer_wait(request: Request) -> float:
    """``Prefer: wait=N`` (RFC 7240 section 4.3): how long the caller will wait for a held
    call's decision; 0 when it did not say."""
    for value in request.headers.getlist("prefer"):
        for preference in value.split(","):
            name, _, amount = preference.strip().partition("=")
            if name.strip().lower() == "wait":
                try:
                    return max(0.0, float(amount.strip().strip('"')))
                except ValueError:
                    return 0.0
    return 0.0


def next_step_fields(step: NextStep | None) -> dict[str, Any]:
    """What a person does next to authorize a connection (only the grant's own members)."""
    if step is None:
        return {}
    expires_at = step.expires_at.isoformat().replace("+00:00", "Z") if step.expires_at else None
    return {
        key: value
        for key, value in (
            ("authorization_url", step.authorization_url),
            ("user_code", step.user_code),
            ("verification_uri", step.verification_uri),
            ("verification_uri_complete", step.verification_uri_complete),
            ("interval", step.interval),
            ("expires_at", expires_at),
        )
        if value is not None
    }


async def consent_for_agent(
    services: Services, principal: Principal, connection_id: str, exc: NeedsReauth
) -> dict[str, Any] | None:
    """Just-in-time consent: an agent called through a connection its person must authorize
    (again). The problem document carries what that person follows (a link, or a device
    code); the agent's call succeeds once they have. None when nothing can be started for
    them (a shared connection its maker may not manage, a password the service does not
    keep): the refusal then stands as it was. The proxy and the MCP face both answer so."""
    try:
        started = await run_in_threadpool(
            services.connections.reauthorize, principal, connection_id, ReauthorizeRequest()
        )
    except DomainError:
        return None
    if started.next_step is None:
        return None
    return {
        "type": "/problems/consent-required",
        "title": "Consent required",
        "status": 409,
        "detail": f"{exc.detail}. The connection's person must authorize it: send them the "
        "authorization_url (or the user_code at verification_uri); then make the call again",
        "connection_status": "needs_reauth",
        "connection_id": connection_id,
        **next_step_fields(started.next_step),
    }


def mount_path(prefix: str) -> str:
    return f"{prefix}/proxy"


class TokenRefreshRequest(BaseModel):
    """Which token the API refused, so concurrent clients cause one refresh, not many."""

    model_config = ConfigDict(extra="forbid")

    refused_token_sha256: str | None = Field(
        default=None,
        description="Hex SHA-256 of the refused access token. When the stored token "
        "already differs, it is returned without another refresh. Left out: refresh now.",
        pattern=r"^[0-9a-fA-F]{64}$",
        examples=["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
    )


@router.post(
    "/connections/{connection_id}/token/refresh",
    response_model=TokenPublic,
    tags=["connections"],
    responses=problem_responses(TOKEN_PROBLEMS),
)
async def refresh_refused_token(
    connection_id: str,
    services: ServicesDep,
    principal: CurrentPrincipal,
    body: TokenRefreshRequest | None = None,
) -> TokenPublic:
    """An API refused the token (its auth error status): refresh once and return the new
    token, in the shape of `GET /connections/{id}/token`."""
    refused = body.refused_token_sha256 if body else None
    issued = await run_in_threadpool(
        services.proxy.refresh_refused, principal, connection_id, refused
    )
    return TokenPublic.of(issued)
