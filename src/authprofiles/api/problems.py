"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authprofiles.api.access_log import wire_path
from authprofiles.core.agent_grants import (
    AgentRefused,
    ApprovalRequired,
    RateLimited,
    RuleRefused,
)
from authprofiles.core.errors import (
    AlreadyExists,
    Conflict,
    DomainError,
    Forbidden,
    NotFound,
    TooLarge,
    TooManyAttempts,
    Unauthenticated,
    Unavailable,
    UpstreamError,
    UpstreamTimeout,
    ValidationFailed,
)
from authprofiles.core.injection import (
    InjectionError,
    PathEscape,
    PayloadError,
    UnsupportedMediaType,
)
from authprofiles.core.validation import input_errors, json_type_of
from authprofiles.services.errors import DiscoveryError, IdPRefused, NeedsReauth, NotConfigured
from authprofiles.store.cipher import RetiredKeyUsed, SecretsUnreadable

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("authprofiles.api")


class FieldProblem(BaseModel):
    field: str = Field(
        description="The field, as a path such as `additional_fields[0].key`; `body` for the "
        "body as a whole",
        examples=["token_url"],
    )
    message: str = Field(
        description="What is wrong with it",
        examples=["'ftp://idp' is not a valid http or https URL"],
    )


class Problem(BaseModel):
    """Every error answer: RFC 9457 problem details, as `application/problem+json`. Some
    carry more members (`upstream_host`, `connection_status`, `last_error`, ...)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(
        description="`about:blank` or a URI naming the kind of problem", examples=["about:blank"]
    )
    title: str = Field(
        description="The kind of problem, in a few words", examples=["Invalid input"]
    )
    status: int = Field(description="The HTTP status code", examples=[422])
    detail: str = Field(
        description="What went wrong this time, and what to do about it",
        examples=["2 problem(s) with: token_url, client_secret"],
    )
    errors: list[FieldProblem] = Field(
        default_factory=list,
        description="Each field at fault (invalid or conflicting input), all at once",
        examples=[
            [
                {"field": "token_url", "message": "'ftp://idp' is not a valid http or https URL"},
                {
                    "field": "client_secret",
                    "message": "Client secret is required for oauth2_client_credentials profiles",
                },
            ]
        ],
    )


@dataclass(frozen=True)
class ProblemKind:
    """What a kind of domain error is to an HTTP client: RFC 9457's ``status``, ``title``
    and ``type`` (``about:blank``: the title is the status's meaning, refined)."""

    status: int
    title: str
    type: str = "about:blank"


#: The API's one answer to each domain error. An error answers as the first class of its
#: MRO found here, so a new subclass answers as its base until it is given its own line.
PROBLEM_KINDS: dict[type[DomainError], ProblemKind] = {
    DomainError: ProblemKind(400, "Bad request"),
    ValidationFailed: ProblemKind(422, "Invalid input"),
    DiscoveryError: ProblemKind(422, "No usable metadata"),
    Unauthenticated: ProblemKind(401, "Unauthorized"),
    Forbidden: ProblemKind(403, "Forbidden"),
    NotFound: ProblemKind(404, "Not found"),
    Conflict: ProblemKind(409, "Conflict"),
    AlreadyExists: ProblemKind(409, "Already exists"),
    NeedsReauth: ProblemKind(409, "Connection needs authorization again"),
    NotConfigured: ProblemKind(409, "Profile not configured"),
    InjectionError: ProblemKind(409, "Credentials cannot be applied"),
    PathEscape: ProblemKind(400, "Path not allowed"),
    PayloadError: ProblemKind(400, "Payload fields cannot be placed"),
    UnsupportedMediaType: ProblemKind(415, "Payload fields cannot be placed"),
    IdPRefused: ProblemKind(400, "Refused by the identity provider"),
    TooLarge: ProblemKind(413, "Request body too large"),
    UpstreamError: ProblemKind(502, "Bad gateway"),
    UpstreamTimeout: ProblemKind(504, "Gateway timeout"),
    Unavailable: ProblemKind(503, "Service unavailable"),
    TooManyAttempts: ProblemKind(429, "Too many attempts"),
    RetiredKeyUsed: ProblemKind(503, "Master key changed"),
    SecretsUnreadable: ProblemKind(503, "Secrets unreadable"),
    AgentRefused: ProblemKind(403, "Not for agents", "/problems/agent-credential"),
    RuleRefused: ProblemKind(403, "Outside the agent grant", "/problems/grant-rule"),
    ApprovalRequired: ProblemKind(403, "Approval required", "/problems/approval-required"),
    RateLimited: ProblemKind(429, "Too many calls", "/problems/grant-limit"),
}


def problem_kind(exc: DomainError) -> ProblemKind:
    """``exc``'s answer: its class's, or its nearest base's (:data:`PROBLEM_KINDS`)."""
    for cls in type(exc).__mro__:
        kind = PROBLEM_KINDS.get(cls)
        if kind is not None:
            return kind
    return PROBLEM_KINDS[DomainError]  # not reached: DomainError is in every MRO


def too_large_detail(limit: int) -> str:
    return (
        f"the request body is larger than {limit} bytes, the most this server reads "
        "(AUTHPROFILES_MAX_BODY_BYTES); send a smaller body"
    )


def problem(
    status: int,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    *,
    problem_type: str = "about:blank",
    **extra: Any,
) -> JSONResponse:
    body = {"type": problem_type, "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def domain_problem(exc: DomainError) -> JSONResponse:
    """The problem answer to a domain error (:data:`PROBLEM_KINDS`), with the members and
    headers its kind carries."""
    kind = problem_kind(exc)
    extra: dict[str, Any] = {}
    headers = None
    if isinstance(exc, ValidationFailed | AlreadyExists):
        extra["errors"] = [{"field": e.field, "message": e.message} for e in exc.errors]
    if isinstance(exc, NeedsReauth):
        extra["connection_status"] = "needs_reauth"
        if exc.last_error:
            extra["last_error"] = exc.last_error
    if isinstance(exc, IdPRefused) and exc.error:
        extra["idp_error"] = exc.error
    if isinstance(exc, UpstreamError) and exc.host:
        extra["upstream_host"] = exc.host
    if isinstance(exc, Unauthenticated):
        # RFC 6750 section 3: a 401 names the scheme the resource takes.
        headers = {"WWW-Authenticate": 'Bearer realm="authprofiles"'}
    if isinstance(exc, Unavailable) and exc.retry_after is not None:
        headers = {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, RuleRefused):
        extra["failed_rules"] = exc.reasons
    if isinstance(exc, ApprovalRequired):
        extra["approval_id"] = exc.approval_id
        extra["approval_url"] = exc.approval_url
    if isinstance(exc, RateLimited) and exc.retry_after is not None:
        headers = {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, TooManyAttempts):
        headers = {"Retry-After": str(exc.retry_after)}
        extra["locked_until"] = exc.until.isoformat().replace("+00:00", "Z")
    return problem(kind.status, kind.title, exc.detail, headers, problem_type=kind.type, **extra)


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(_request: Request, exc: DomainError) -> JSONResponse:
        return domain_problem(exc)

    @app.exception_handler(RequestValidationError)
    async def request_invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        body_problem = _body_problem(exc)
        if body_problem is not None:
            return invalid_body(body_problem)
        # Each location starts with where the input came from (body, query, path, header).
        found = input_errors(exc.errors(), skip=1)
        errors = [{"field": e.field, "message": e.message} for e in found]
        fields = ", ".join(dict.fromkeys(e["field"] for e in errors))
        return problem(
            422, "Invalid input", f"{len(errors)} problem(s) with: {fields}", errors=errors
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        status, detail = exc.status_code, str(exc.detail)
        headers = dict(exc.headers) if exc.headers else {}
        limit = request.scope.get(MAX_BODY_SIZE_SCOPE_KEY)
        if status == 413 and isinstance(limit, int):
            # Starlette's body limit, reached while a body without Content-Length was read.
            detail = too_large_detail(limit)
        if status == 400 and (message := _unreadable_body(exc)):
            # FastAPI's bare 400 for a JSON body it could not decode: as invalid as malformed
            # JSON, which it answers with a 422 naming the body, so answered the same way.
            return invalid_body(message)
        if status == 405:
            # Starlette names the methods of the first route matching the path; a path has
            # one route per method here, and RFC 9110 section 15.5.6 asks for all of them.
            allowed = _allowed_methods(request)
            headers["Allow"] = ", ".join(allowed)
            detail = f"{request.method} is not allowed here; this path takes {', '.join(allowed)}"
        return problem(status, _title(status), detail, headers=headers or None)


def log_unexpected(exc: BaseException, scope: Scope) -> None:
    """Never echo the exception, nor log its message: either may hold a secret. The log
    gets the type, the request (method and path, without the query string, which may hold
    a credential) and where it happened, which is what fixing it needs."""
    method, path = scope.get("method", "-"), wire_path(scope)
    log.error(
        "unhandled %s in %s %s at\n%s",
        type(exc).__name__,
        method,
        path,
        "".join(traceback.format_tb(exc.__traceback__)),
        extra={"method": method, "path": path, "error": type(exc).__name__},
    )


class ContainUnexpected:
    """Answer an error nobody handled with a 500 problem, logged without its message.

    Outside every middleware of the app's but the access log: the error is answered here,
    so it never reaches Starlette's ServerErrorMiddleware, which would hand it on to the
    server's logger with its message (an SQL error's message holds the statement's
    parameters: ciphertexts, a profile's settings), and whose re-raise made the server
    drop the connection.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            log_unexpected(exc, scope)
            if started:  # too late for an answer; the connection ends instead
                return
            response = problem(
                500, "Internal error", "something went wrong on our side; see the server log"
            )
            await response(scope, receive, send)


def invalid_body(message: str) -> JSONResponse:
    """422 for a body that cannot be used as a whole: ``message`` says why (it follows
    "the request body"), and what to send instead."""
    return problem(
        422,
        "Invalid input",
        f"the request body {message}",
        errors=[{"field": "body", "message": message}],
    )


def _body_problem(exc: RequestValidationError) -> str | None:
    """Why the body as a whole cannot be used, if that is the problem: it is not JSON
    (where, and why), it is missing, or it is JSON but not an object."""
    for err in exc.errors():
        loc = tuple(err["loc"])
        if err["type"] == "json_invalid":
            return _malformed(exc.body, loc[-1] if len(loc) > 1 else None, err)
        if loc == ("body",):
            if err["type"] == "missing":
                return "is missing: send a JSON object, with Content-Type: application/json"
            if err["type"] in ("dict_type", "model_type", "model_attributes_type"):
                got = json_type_of(err.get("input"))
                return f"must be a JSON object ({{...}}), not {got}"
    return None


def _malformed(document: Any, position: Any, err: Any) -> str:
    """Where JSON that does not parse goes wrong: line and column (counted from 1) and
    character (counted from 0, as the parser counts), with the parser's reason."""
    reason = str((err.get("ctx") or {}).get("error") or "it does not parse")
    where = ""
    if isinstance(document, str) and isinstance(position, int):
        line = document.count("\n", 0, position) + 1
        column = position - document.rfind("\n", 0, position)
        where = f" at line {line}, column {column} (character {position})"
    reason = reason[:1].lower() + reason[1:]
    return f"is not valid JSON: {reason}{where}; send JSON, with Content-Type: application/json"


def _unreadable_body(exc: StarletteHTTPException) -> str | None:
    cause = exc.__cause__
    if isinstance(cause, UnicodeDecodeError):
        return (
            f"is not UTF-8 encoded JSON (RFC 8259 section 8.1): the byte at offset "
            f"{cause.start} is not UTF-8; send JSON encoded as UTF-8"
        )
    if isinstance(cause, RecursionError):
        return "nests arrays or objects too deeply to be read; send JSON nested less deeply"
    return None


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> list[str]:
    """The methods some route takes at this path, asked of the routes themselves."""
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
        )
    ]


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


# -- OpenAPI --------------------------------------------------------------------------------
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_FASTAPI_422 = {
    "application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}
}
#: Answers any operation of a kind can give, described once here rather than on each.
_COMMON: dict[int, str] = {
    401: "No valid API key (`Authorization: Bearer <api key>`)",
    404: "Nothing of that id in the caller's workspace",
    413: "The request body is larger than the server reads",
    415: "The request body is not JSON (`Content-Type: application/json`)",
    422: "Invalid input: `errors` names each field at fault",
    503: "Not now: the database stayed busy or a master key changed meanwhile (try again "
    "after `Retry-After`), or a stored secret cannot be decrypted with the keys this server "
    "holds (the detail names the key)",
}


def problem_responses(described: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """For a route's ``responses``: the error answers only it gives, each described (the
    schema is filled in by :func:`document_problems`), by status."""
    return {
        status: {"description": text, "content": {PROBLEM_JSON: {}}}
        for status, text in sorted(described.items())
    }


def document_problems(schema: dict[str, Any]) -> None:
    """Make every error answer in an OpenAPI ``schema`` an ``application/problem+json``
    :class:`Problem`, and add those each operation can give by its kind: 401 and 503
    where it needs an API key (it reads the database), 404 where its path names
    something, 413, 415 and 422 where it takes a body, 422 where it takes parameters.
    FastAPI's own 422 (``HTTPValidationError``) describes a body this API never sends,
    and goes."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(problem_schema.pop("$defs", {}))
    components["Problem"] = problem_schema
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            parameters = operation.get("parameters", [])
            common: set[int] = set()
            if operation.get("security"):
                common |= {401, 503}  # every keyed operation reads the database
            if any(p.get("in") == "path" for p in parameters):
                common.add(404)
            if "requestBody" in operation:
                common |= {413, 415, 422}
            if parameters:
                common.add(422)
            for status in sorted(common):
                responses.setdefault(str(status), {"description": _COMMON[status]})
            for code, response in responses.items():
                content = response.get("content")
                # An error answered in another type (the callback's HTML page) says so.
                if code.startswith(("4", "5")) and (
                    content is None or PROBLEM_JSON in content or content == _FASTAPI_422
                ):
                    if content == _FASTAPI_422:
                        response["description"] = _COMMON[422]
                    response["content"] = {PROBLEM_JSON: {"schema": _PROBLEM_REF}}
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
