"""What each MCP tool does for an agent: the API's own use cases, called with the agent's
principal, so its grant, the credential policy and approvals apply exactly as on the proxy.

A tool answers a JSON object, or raises: a ``DomainError`` (answered as the API answers it,
as a problem document) or :class:`Refused` (a problem document made here). No answer
carries a secret: ``http_request`` answers what the proxy gives an agent, with the injected
credentials already replaced by ``[redacted]``; the others read statuses and links.
"""

from __future__ import annotations

import base64
import codecs
import json
import re
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from functools import partial
from typing import Any
from urllib.parse import quote, urlencode

from authprofiles.agent_mcp.tools import ConnectArguments, HttpRequestArguments
from authprofiles.api.routes.proxy import consent_for_agent, next_step_fields
from authprofiles.composition import Services
from authprofiles.core.callers import Principal
from authprofiles.core.connections import Connection, ConnectionStatus
from authprofiles.core.errors import DomainError, FieldError, NotFound, ValidationFailed
from authprofiles.services.blocking import in_thread_pool
from authprofiles.services.connections import ReauthorizeRequest
from authprofiles.services.errors import NeedsReauth
from authprofiles.services.proxy import IncomingRequest, UpstreamBodyBrokeOff, UpstreamResponse

#: The most of an upstream's body a tool result carries; the rest is cut (``truncated``).
MAX_RESULT_BODY = 1024 * 1024

#: RFC 9110 section 5.6.2: a field name is a token.
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
#: RFC 9110 section 5.5: a field value holds no control character but horizontal tab.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_CHARSET = re.compile(r"charset\s*=\s*\"?([^\";\s]+)", re.IGNORECASE)


class Refused(Exception):
    """A tool call refused with a problem document made here (not from a domain error)."""

    def __init__(self, problem: dict[str, Any]) -> None:
        super().__init__(problem.get("detail", ""))
        self.problem = problem


def _time(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


# -- list_connections -----------------------------------------------------------------------
async def list_connections(services: Services, principal: Principal) -> dict[str, Any]:
    return await in_thread_pool(partial(_list_connections, services, principal))


def _list_connections(services: Services, principal: Principal) -> dict[str, Any]:
    grant = services.agent_grants.grant_of(principal)
    names: dict[str, str | None] = {}
    entries: list[dict[str, Any]] = []
    for connection_id in sorted(grant.connection_ids):
        try:
            connection = services.connections.get(principal, connection_id)
        except DomainError as exc:
            # Deleted since, or its person lost access to it: the grant names it still.
            entries.append({"id": connection_id, "status": "unavailable", "detail": exc.detail})
            continue
        entries.append(_described(services, principal, connection, names))
    return {
        "agent": grant.agent,
        "expires_at": _time(grant.expires_at),
        "connections": entries,
        "rules": [rule.as_dict() for rule in grant.rules],
        "rate_per_minute": grant.rate_per_minute,
        "max_calls": grant.max_calls,
    }


def _described(
    services: Services,
    principal: Principal,
    connection: Connection,
    names: dict[str, str | None],
) -> dict[str, Any]:
    """A connection as the agent sees it: never a token, only whether there is a usable one."""
    if connection.profile_id not in names:
        try:
            names[connection.profile_id] = services.profiles.get(
                principal, connection.profile_id
            ).name
        except DomainError:
            names[connection.profile_id] = None
    tokens = connection.tokens
    return {
        "id": connection.id,
        "profile_id": connection.profile_id,
        "profile_name": names[connection.profile_id],
        "owner": connection.owner,
        "tenant": connection.tenant,
        "status": connection.status.value,
        "expires_at": _time(tokens.expires_at if tokens else None),
    }


# -- http_request ---------------------------------------------------------------------------
async def http_request(
    services: Services, principal: Principal, arguments: HttpRequestArguments
) -> dict[str, Any]:
    """The call through the proxy, as ``ANY /api/v1/proxy/{connection_id}/{path}`` makes
    it for an agent (its grant's rules first, then the policy, the token, the redaction)."""
    path, query = _path_and_query(arguments)
    headers = _headers(arguments.headers or {})
    body = _body(arguments.body, headers)
    if body:
        headers.append(("Content-Length", str(len(body))))
    incoming = IncomingRequest(
        method=arguments.method, path=path, query=query, headers=headers, body=_once(body)
    )
    try:
        upstream = await services.proxy.forward(principal, arguments.connection_id, incoming)
    except NeedsReauth as exc:
        consent = await consent_for_agent(services, principal, arguments.connection_id, exc)
        if consent is None:
            raise
        raise Refused(consent) from None
    try:
        data, truncated = await _read_at_most(upstream, MAX_RESULT_BODY)
    except UpstreamBodyBrokeOff as exc:
        raise Refused(
            {
                "type": "about:blank",
                "title": "Bad gateway",
                "status": 502,
                "detail": f"the answer from {upstream.host} broke off ({exc})",
                "upstream_host": upstream.host,
            }
        ) from None
    finally:
        await upstream.aclose()
    answer_headers = _answer_headers(upstream.raw_headers)
    text = _text(data, answer_headers.get("content-type"), final=not truncated)
    return {
        "status": upstream.status_code,
        "headers": answer_headers,
        "body": text if text is not None else base64.b64encode(data).decode("ascii"),
        "body_encoding": "text" if text is not None else "base64",
        "truncated": truncated,
    }


def _path_and_query(arguments: HttpRequestArguments) -> tuple[str, str]:
    path, mark, inline_query = arguments.path.partition("?")
    if mark and arguments.query is not None:
        raise ValidationFailed(
            [FieldError("query", "give the query once: in `path` after `?`, or in `query`")]
        )
    # As the proxy's route hands it on: the path after the connection id, no leading slash.
    path = path.removeprefix("/")
    query = arguments.query
    if isinstance(query, dict):
        pairs = [
            (name, value)
            for name, values in query.items()
            for value in (values if isinstance(values, list) else [values])
        ]
        return path, urlencode(pairs, quote_via=quote)
    return path, query if query is not None else inline_query


def _headers(given: dict[str, str]) -> list[tuple[str, str]]:
    errors = []
    for name, value in given.items():
        if not _TOKEN.match(name):
            errors.append(FieldError(f"headers.{name}", "is not a valid HTTP field name"))
        elif _CONTROL.search(value):
            errors.append(FieldError(f"headers.{name}", "may not hold line breaks or controls"))
        else:
            try:
                value.encode("latin-1")
            except UnicodeEncodeError:
                errors.append(FieldError(f"headers.{name}", "must be Latin-1 text"))
    if errors:
        raise ValidationFailed(errors)
    return list(given.items())


def _body(body: str | dict[str, Any] | list[Any] | None, headers: list[tuple[str, str]]) -> bytes:
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8")
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", "application/json"))
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


async def _once(body: bytes) -> AsyncIterator[bytes]:
    if body:
        yield body


async def _read_at_most(upstream: UpstreamResponse, limit: int) -> tuple[bytes, bool]:
    """The body up to ``limit`` bytes, and whether there was more."""
    chunks: list[bytes] = []
    size = 0
    stream = upstream.aiter_raw()
    try:
        async for chunk in stream:
            room = limit - size
            if len(chunk) > room:
                chunks.append(chunk[:room])
                return b"".join(chunks), True
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks), False
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()


def _answer_headers(raw: Sequence[tuple[bytes, bytes]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in raw:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _text(data: bytes, content_type: str | None, *, final: bool) -> str | None:
    """The body as text in its charset (UTF-8 when it names none), or None when it is not
    text in it (then the result carries it in base64). A cut body may end mid-character."""
    found = _CHARSET.search(content_type or "")
    try:
        decoder = codecs.getincrementaldecoder(found.group(1) if found else "utf-8")()
        return str(decoder.decode(data, final=final))
    except (LookupError, UnicodeDecodeError):
        return None


# -- connect --------------------------------------------------------------------------------
async def connect(
    services: Services, principal: Principal, arguments: ConnectArguments
) -> dict[str, Any]:
    return await in_thread_pool(partial(_connect, services, principal, arguments.profile_id))


def _connect(services: Services, principal: Principal, profile: str) -> dict[str, Any]:
    """Authorize (again) the grant's connection of ``profile`` (an id or a name); when the
    grant has several, the first that is not active."""
    grant = services.agent_grants.grant_of(principal)
    names: dict[str, str | None] = {}
    matching = []
    for connection_id in sorted(grant.connection_ids):
        try:
            connection = services.connections.get(principal, connection_id)
        except DomainError:
            continue
        described = _described(services, principal, connection, names)
        if profile in (connection.profile_id, described["profile_name"]):
            matching.append(connection)
    if not matching:
        raise NotFound(
            f"your agent grant has no connection of the profile {profile!r}; "
            "list_connections names those it has"
        )
    chosen = next((c for c in matching if c.status is not ConnectionStatus.ACTIVE), matching[0])
    started = services.connections.reauthorize(principal, chosen.id, ReauthorizeRequest())
    return {
        "connection_id": chosen.id,
        "profile_id": chosen.profile_id,
        "status": started.connection.status.value,
        **next_step_fields(started.next_step),
    }


__all__ = ["MAX_RESULT_BODY", "Refused", "connect", "http_request", "list_connections"]
