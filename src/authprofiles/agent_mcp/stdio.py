"""``authprofiles mcp``: the MCP server face over stdio, as a client of the running server.

An MCP client that starts its servers as commands (most desktop agents do) runs this; it
relays the tools of the server's ``/mcp`` (streamable HTTP) with the agent's token, and holds
nothing else: no database, no key, no credential but that token. Each relayed call is an
exchange of its own with ``/mcp``, which keeps no session, so a server restarted meanwhile
is no matter, and a token revoked meanwhile fails that call alone, as an error result.

Only the MCP messages use stdout; anything logged goes to stderr.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from mcp import types
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import McpError

from authprofiles import __version__
from authprofiles.agent_mcp.tools import INSTRUCTIONS

log = logging.getLogger("authprofiles.mcp.stdio")

DEFAULT_URL = "http://127.0.0.1:8000"
#: Connect and write within this; an answer may take longer (a held call, a slow API).
CONNECT_SECONDS = 30.0
READ_SECONDS = 300.0


class StdioRelay:
    """The tools of ``{url}/mcp``, served to the stdio client, each call relayed."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self.endpoint = self.url + "/mcp"
        self._token = token
        self.server: Server[Any, Any] = Server(
            "authprofiles", version=__version__, instructions=INSTRUCTIONS
        )
        self.server.request_handlers[types.ListToolsRequest] = self._list_tools
        self.server.request_handlers[types.CallToolRequest] = self._call_tool

    async def serve(self) -> None:
        """Serve stdin and stdout until the client closes stdin."""
        async with stdio_server() as (read, write):
            await self.server.run(read, write, self.server.create_initialization_options())

    @asynccontextmanager
    async def _remote(self) -> AsyncIterator[ClientSession]:
        async with (
            httpx.AsyncClient(
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=httpx.Timeout(CONNECT_SECONDS, read=READ_SECONDS),
            ) as http,
            streamable_http_client(self.endpoint, http_client=http) as (read, write, _),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session

    async def _list_tools(self, _request: types.ListToolsRequest) -> types.ServerResult:
        try:
            async with self._remote() as remote:
                listed = await remote.list_tools()
        except Exception as exc:
            raise McpError(
                types.ErrorData(code=types.INTERNAL_ERROR, message=self._failure(exc)["detail"])
            ) from None
        return types.ServerResult(listed)

    async def _call_tool(self, call: types.CallToolRequest) -> types.ServerResult:
        try:
            async with self._remote() as remote:
                result = await remote.call_tool(call.params.name, call.params.arguments or {})
        except Exception as exc:
            problem = self._failure(exc)
            return types.ServerResult(
                types.CallToolResult(
                    content=[types.TextContent(type="text", text=json.dumps(problem, indent=2))],
                    structuredContent=problem,
                    isError=True,
                )
            )
        return types.ServerResult(result)

    def _failure(self, exc: BaseException) -> dict[str, Any]:
        """Why the server could not be asked, as a problem document (the token never in it)."""
        cause = _innermost(exc)
        if isinstance(cause, httpx.HTTPStatusError):
            status = cause.response.status_code
            if status == 401:
                detail = (
                    f"authprofiles at {self.url} refused the agent token (401): it is unknown, "
                    "expired or revoked, or not one for /mcp; ask the grant's maker for a new one "
                    "(AUTHPROFILES_AGENT_TOKEN)"
                )
            else:
                detail = f"authprofiles at {self.url} answered {status} at /mcp"
            return {"type": "about:blank", "title": "Refused", "status": status, "detail": detail}
        if isinstance(cause, McpError):
            detail = f"authprofiles at {self.url} answered an error: {cause.error.message}"
        elif isinstance(cause, httpx.HTTPError):
            log.warning("could not reach %s: %s", self.endpoint, type(cause).__name__)
            detail = (
                f"could not reach authprofiles at {self.url} ({type(cause).__name__}); is it "
                "running, and is AUTHPROFILES_URL its address?"
            )
        else:
            log.warning("relaying to %s failed: %s", self.endpoint, type(cause).__name__)
            detail = f"relaying to authprofiles at {self.url} failed ({type(cause).__name__})"
        return {"type": "about:blank", "title": "Bad gateway", "status": 502, "detail": detail}


def _innermost(exc: BaseException) -> BaseException:
    """The first error an exception group (the transport's task group) holds."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


__all__ = ["DEFAULT_URL", "StdioRelay"]
