"""`authprofiles mcp`: the MCP server face over stdio, for agents whose MCP client starts
its servers as commands. A client of the running server: it needs only its URL and an
agent grant's token, and keeps stdout for the protocol (anything else goes to stderr)."""

from __future__ import annotations

import os
from typing import Annotated

import anyio
import typer

from authprofiles.agent_mcp.stdio import DEFAULT_URL, StdioRelay
from authprofiles.logs import configure_logging

TOKEN_VARIABLE = "AUTHPROFILES_AGENT_TOKEN"  # noqa: S105 - a variable's name


def mcp(
    url: Annotated[
        str,
        typer.Option(
            envvar="AUTHPROFILES_URL",
            help="The running server's URL [AUTHPROFILES_URL]",
            show_default=True,
        ),
    ] = DEFAULT_URL,
) -> None:
    """Serve the MCP tools (list_connections, http_request, connect) over stdio, relayed
    to the server's /mcp with the agent grant's token in AUTHPROFILES_AGENT_TOKEN (an
    environment variable only: a flag would show it to everyone who lists processes)."""
    token = os.environ.get(TOKEN_VARIABLE, "").strip()
    if not token:
        typer.echo(
            f"{TOKEN_VARIABLE} is not set: set it to an agent grant's token "
            "(POST /api/v1/agent-grants answers it once)",
            err=True,
        )
        raise typer.Exit(2)
    if not url.startswith(("http://", "https://")):
        typer.echo(f"--url must be an http(s) URL, not {url!r}", err=True)
        raise typer.Exit(2)
    configure_logging("warning", "text")  # to stderr: stdout carries the protocol
    anyio.run(StdioRelay(url, token).serve)


__all__ = ["mcp"]
