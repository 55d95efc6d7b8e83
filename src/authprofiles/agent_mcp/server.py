"""``/mcp``: the MCP server face, over streamable HTTP, for agents holding a grant.

Built on the ``mcp`` SDK's low-level ``Server`` and its streamable HTTP session manager
(its ``FastMCP`` would configure the root logger on construction). The manager runs
stateless and answers JSON: every ``POST`` stands alone, authenticated by its own bearer
token, so any worker of any host can serve it, and no server-to-client stream is kept
open (``GET`` and ``DELETE`` answer 405, as the transport allows).

Before the SDK sees a request, the caller must be an agent with a credential for this
resource (MCP's authorization, after RFC 9728 and RFC 8707): an agent grant's own token, or
an access token the server's token endpoint issued for ``/mcp``. Anything else answers
``401`` with ``WWW-Authenticate: Bearer resource_metadata="..."`` naming where to find how
to get one: an API key, an access token issued for the proxy, an expired or revoked
grant's. The token is this server's alone: the tools call the use cases in-process, and
the proxy never forwards the caller's ``Authorization``.
"""

from __future__ import annotations

import json
import logging
from contextlib import AsyncExitStack
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPBearer
from mcp import types
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from authprofiles import __version__
from authprofiles.agent_mcp import calls
from authprofiles.agent_mcp.authorization import MCP_PATH, mcp_resource, resource_metadata_url
from authprofiles.agent_mcp.tools import (
    ARGUMENTS,
    CONNECT,
    HTTP_REQUEST,
    INSTRUCTIONS,
    LIST_CONNECTIONS,
    TOOLS,
    ConnectArguments,
    HttpRequestArguments,
)
from authprofiles.api.caller import bearer_key, principal_of
from authprofiles.api.problems import PROBLEM_JSON, domain_problem, log_unexpected, problem
from authprofiles.composition import Services
from authprofiles.core.callers import Principal
from authprofiles.core.errors import DomainError, NotFound, Unauthenticated, ValidationFailed
from authprofiles.core.validation import input_errors
from authprofiles.services.agent_grants import for_audience, is_agent_credential

log = logging.getLogger("authprofiles.mcp")

#: Where, in the request scope's ``state``, the authenticated agent waits for the tools.
PRINCIPAL = "authprofiles.mcp.principal"


class AgentBearer(HTTPBearer):
    """Publishes ``/mcp``'s security scheme in the OpenAPI schema; the route checks the
    credential itself, to answer with the challenge MCP clients follow."""

    def __init__(self) -> None:
        super().__init__(
            auto_error=False,
            scheme_name="AgentBearer",
            description="An agent grant's token, or an access token issued for `/mcp` by "
            "`POST /oauth/token` (client credentials: the grant's id and token)",
        )


_PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {}}}
_JSON_RPC_ERROR: dict[str, Any] = {"content": {"application/json": {"schema": {"type": "object"}}}}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The JSON-RPC response",
        "content": {
            "application/json": {
                "schema": {"type": "object"},
                "example": {
                    "jsonrpc": "2.0",
                    "id": 2,
                    "result": {"content": [{"type": "text", "text": "{...}"}], "isError": False},
                },
            }
        },
    },
    202: {"description": "A notification or response, accepted"},
    400: {**_JSON_RPC_ERROR, "description": "Not a JSON-RPC message (a JSON-RPC error)"},
    401: {
        **_PROBLEM,
        "description": "No credential for `/mcp`, or an unknown, expired or revoked one, or "
        "one issued for another resource: `WWW-Authenticate` names the resource metadata",
    },
    403: {**_PROBLEM, "description": "An `Origin` other than this server's"},
    406: {**_JSON_RPC_ERROR, "description": "`Accept` names neither JSON nor event streams"},
    413: {**_JSON_RPC_ERROR, "description": "A body over 4 MiB"},
    415: {**_JSON_RPC_ERROR, "description": "A body that is not `application/json`"},
    503: {**_PROBLEM, "description": "The MCP server is not running yet"},
}
_REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "description": "A JSON-RPC 2.0 message of the Model Context Protocol",
            },
            "example": {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {"name": "list_connections", "arguments": {}},
            },
        }
    },
}


class _Relayed(Response):
    """The route's answer: the SDK's transport answers the request itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.background = None
        self.status_code = 200
        self.raw_headers = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class AgentMcpServer:
    """The MCP server of one app: its tools, its transport (started and stopped with the
    app, :meth:`start` and :meth:`stop`) and its route (:attr:`router`)."""

    def __init__(self, services: Services) -> None:
        # The SDK logs each message it handles at INFO; the access log has its line already.
        logging.getLogger("mcp").setLevel(logging.WARNING)
        self.services = services
        self.server: Server[Any, Request] = Server(
            "authprofiles", version=__version__, instructions=INSTRUCTIONS
        )
        self.server.request_handlers[types.ListToolsRequest] = self._list_tools
        self.server.request_handlers[types.CallToolRequest] = self._call_tool
        self._manager: StreamableHTTPSessionManager | None = None
        self._running: AsyncExitStack | None = None
        self.router = APIRouter(tags=["mcp"])
        self.router.add_api_route(
            MCP_PATH,
            self.serve,
            methods=["POST"],
            name="mcp",
            summary="The MCP server (streamable HTTP)",
            response_class=Response,
            responses=_RESPONSES,
            dependencies=[Depends(AgentBearer())],
            openapi_extra={"requestBody": _REQUEST_BODY},
        )

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the transport (a manager runs once: each start makes a new one)."""
        manager = StreamableHTTPSessionManager(app=self.server, json_response=True, stateless=True)
        running = AsyncExitStack()
        await running.enter_async_context(manager.run())
        self._manager, self._running = manager, running

    async def stop(self) -> None:
        running, self._running, self._manager = self._running, None, None
        if running is not None:
            await running.aclose()

    # -- HTTP -------------------------------------------------------------------------------
    async def serve(self, request: Request) -> Response:
        """Model Context Protocol over streamable HTTP, for agents: the tools
        `list_connections`, `http_request` and `connect`. Send an agent grant's token (or an
        access token issued for `/mcp`) as `Authorization: Bearer`; without one, the `401`
        names this resource's metadata (`/.well-known/oauth-protected-resource/mcp`)."""
        settings = self.services.settings
        origin = request.headers.get("origin")
        if origin is not None and origin.rstrip("/") != _origin(settings.public_base_url):
            # MCP's transport: an Origin that is not the server's own is refused (a page
            # elsewhere, perhaps reached by DNS rebinding).
            return problem(
                403, "Forbidden", f"requests from the origin {origin!r} are not served here"
            )
        found = await self._authenticated(request)
        if isinstance(found, Response):
            return found
        manager = self._manager
        if manager is None:
            return problem(503, "Service unavailable", "the MCP server is not running yet")
        request.scope.setdefault("state", {})[PRINCIPAL] = found
        return _Relayed(manager.handle_request)

    async def _authenticated(self, request: Request) -> Principal | Response:
        """The agent calling, with a credential good for ``/mcp``; else the challenge."""
        settings = self.services.settings
        resource = mcp_resource(settings)
        presented = bearer_key(request.scope)
        if presented is None:
            # RFC 6750 section 3.1: no error code when the request had no credential.
            return self._challenge(
                f"send an agent grant's token, or an access token issued for {resource}, "
                "as `Authorization: Bearer <token>`",
                error=None,
            )
        if not is_agent_credential(presented):
            return self._challenge(
                f"an API key is not a token for {resource}: send an agent grant's token, or "
                "an access token issued for it",
                error="invalid_token",
            )
        try:
            return for_audience(await principal_of(request), resource)
        except Unauthenticated as exc:
            return self._challenge(exc.detail, error="invalid_token")
        except DomainError as exc:
            return domain_problem(exc)

    def _challenge(self, detail: str, *, error: str | None) -> Response:
        """401 with RFC 9728 section 5.1's challenge: where the resource's metadata is."""
        parts = ['realm="authprofiles"']
        if error is not None:
            parts.append(f'error="{error}"')
        parts.append(f'resource_metadata="{resource_metadata_url(self.services.settings)}"')
        return problem(
            401, "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer " + ", ".join(parts)}
        )

    # -- MCP --------------------------------------------------------------------------------
    async def _list_tools(self, _request: types.ListToolsRequest) -> types.ServerResult:
        return types.ServerResult(types.ListToolsResult(tools=TOOLS))

    async def _call_tool(self, call: types.CallToolRequest) -> types.ServerResult:
        name, arguments = call.params.name, call.params.arguments or {}
        request = self.server.request_context.request
        try:
            principal = _principal_of(request)
            answer = await self._run(name, arguments, principal)
        except calls.Refused as refused:
            return _error_result(refused.problem)
        except DomainError as exc:
            return _error_result(_problem_of(exc))
        except Exception as exc:
            # Never the exception's message: it may hold a secret.
            log_unexpected(exc, request.scope if request is not None else {"type": "mcp"})
            return _error_result(
                {
                    "type": "about:blank",
                    "title": "Internal error",
                    "status": 500,
                    "detail": "something went wrong on our side; see the server log",
                }
            )
        return types.ServerResult(
            types.CallToolResult(
                content=[types.TextContent(type="text", text=json.dumps(answer, indent=2))],
                structuredContent=answer,
                isError=False,
            )
        )

    async def _run(
        self, name: str, arguments: dict[str, Any], principal: Principal
    ) -> dict[str, Any]:
        model = ARGUMENTS.get(name)
        if model is None:
            raise NotFound(f"no tool named {name!r}; the tools are {', '.join(ARGUMENTS)}")
        try:
            parsed = model.model_validate(arguments)
        except ValidationError as exc:
            raise ValidationFailed(input_errors(exc.errors())) from None
        if name == LIST_CONNECTIONS:
            return await calls.list_connections(self.services, principal)
        if name == HTTP_REQUEST:
            assert isinstance(parsed, HttpRequestArguments)
            return await calls.http_request(self.services, principal, parsed)
        assert name == CONNECT and isinstance(parsed, ConnectArguments)
        return await calls.connect(self.services, principal, parsed)


def _principal_of(request: Request | None) -> Principal:
    principal = request.scope.get("state", {}).get(PRINCIPAL) if request is not None else None
    if not isinstance(principal, Principal):
        raise Unauthenticated("this MCP request was not authenticated")
    return principal


def _problem_of(exc: DomainError) -> dict[str, Any]:
    """The problem document the API answers ``exc`` with (one table for both faces)."""
    answer: dict[str, Any] = json.loads(bytes(domain_problem(exc).body))
    return answer


def _error_result(problem_document: dict[str, Any]) -> types.ServerResult:
    """A refused call: a tool result with ``isError``, carrying the problem document."""
    return types.ServerResult(
        types.CallToolResult(
            content=[types.TextContent(type="text", text=json.dumps(problem_document, indent=2))],
            structuredContent=problem_document,
            isError=True,
        )
    )


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


__all__ = ["PRINCIPAL", "AgentMcpServer"]
