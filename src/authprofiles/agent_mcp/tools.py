"""The MCP tools an agent sees: their names, what they do, and the arguments they take.

The names are the contract's (``list_connections``, ``http_request``, ``connect``); each
tool's input schema is made from its arguments' model, which also checks a call's
arguments, so the two never disagree. Nothing here reaches the server's data: the stdio
face, a client of the running server, reads this module too.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from mcp import types
from pydantic import BaseModel, ConfigDict, Field, field_validator

LIST_CONNECTIONS: Final = "list_connections"
HTTP_REQUEST: Final = "http_request"
CONNECT: Final = "connect"

#: Told to the agent when it connects (MCP's ``instructions``).
INSTRUCTIONS: Final = (
    "authprofiles holds OAuth credentials for you and applies them to your calls; you never "
    "see a token. Call list_connections first: it names the connections your grant lets you "
    "use, their status, and the calls your grant allows. http_request calls a connection's "
    "API (a path relative to its base URL); a call the grant does not allow, or one held "
    "for a person's approval, answers an error result saying why (with an approval_url to "
    "hand to a person). When a connection needs a person to authorize it, connect (or the "
    "error of http_request) gives the authorization URL or device code to send them."
)

Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class _Arguments(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ListConnectionsArguments(_Arguments):
    """``list_connections`` takes nothing."""


class HttpRequestArguments(_Arguments):
    connection_id: str = Field(
        min_length=1,
        max_length=200,
        description="The connection to call through (an id from list_connections)",
    )
    method: Method = Field(description="The HTTP method")
    path: str = Field(
        max_length=3000,
        description="The path under the connection's API base URL, as sent on the wire "
        "(percent-encoded), e.g. /invoices/42; a query after `?` is taken as `query`",
    )
    query: str | dict[str, str | list[str]] | None = Field(
        default=None,
        description="The query: an object of parameters (a list for a repeated one), or a "
        "string already encoded, such as `status=open&page=2`",
    )
    headers: dict[str, str] | None = Field(
        default=None,
        description="Request headers (`Authorization` is the connection's: one given here is "
        "dropped)",
    )
    body: str | dict[str, Any] | list[Any] | None = Field(
        default=None,
        description="The request body: text as is, or a JSON object or array (sent as JSON, "
        "with `Content-Type: application/json` unless the headers name another type)",
    )

    @field_validator("method", mode="before")
    @classmethod
    def _upper_case(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class ConnectArguments(_Arguments):
    profile_id: str = Field(
        min_length=1,
        max_length=200,
        description="The profile whose connection (one of your grant's) to authorize: its "
        "id or its name",
    )


ARGUMENTS: Final[dict[str, type[_Arguments]]] = {
    LIST_CONNECTIONS: ListConnectionsArguments,
    HTTP_REQUEST: HttpRequestArguments,
    CONNECT: ConnectArguments,
}


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.pop("title", None)
    schema.pop("description", None)
    schema.setdefault("properties", {})
    return schema


TOOLS: Final = [
    types.Tool(
        name=LIST_CONNECTIONS,
        title="List my connections",
        description="The connections your agent grant lets you use: id, profile, status "
        "(`active`, `needs_reauth`, `pending`) and token expiry, with the calls the grant "
        "allows (methods and path globs: `*` one segment, `**` any) and when it expires.",
        inputSchema=_schema(ListConnectionsArguments),
        annotations=types.ToolAnnotations(readOnlyHint=True, openWorldHint=False),
    ),
    types.Tool(
        name=HTTP_REQUEST,
        title="Call an API through a connection",
        description="An HTTP request to a connection's API, its credentials applied by "
        "authprofiles (you never see them). Answers the API's status, headers and body (text, "
        "or base64 for binary; at most 1 MiB, `truncated` when cut). A call your grant does "
        "not allow, one held for a person's approval (`approval_url`), or one whose connection "
        "needs a person to authorize it again (`authorization_url`) is an error result "
        "saying so.",
        inputSchema=_schema(HttpRequestArguments),
        annotations=types.ToolAnnotations(destructiveHint=True, openWorldHint=True),
    ),
    types.Tool(
        name=CONNECT,
        title="Authorize a connection",
        description="Starts (or starts again) the authorization of your grant's connection "
        "of a profile: answers the `authorization_url` a person opens, or the `user_code` they "
        "enter at `verification_uri`; the connection works once they have. For grants that "
        "need no person, the connection is renewed at once.",
        inputSchema=_schema(ConnectArguments),
        annotations=types.ToolAnnotations(destructiveHint=False, openWorldHint=True),
    ),
]


__all__ = [
    "ARGUMENTS",
    "CONNECT",
    "HTTP_REQUEST",
    "INSTRUCTIONS",
    "LIST_CONNECTIONS",
    "TOOLS",
    "ConnectArguments",
    "HttpRequestArguments",
    "ListConnectionsArguments",
]
