"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

import logging
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authprofiles.core.errors import (
    AlreadyExists,
    DomainError,
    Unavailable,
    UpstreamError,
    ValidationFailed,
)
from authprofiles.core.validation import field_path
from authprofiles.services.api_keys import Unauthenticated
from authprofiles.services.errors import IdPRefused, NeedsReauth

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("authprofiles.api")


class FieldProblem(BaseModel):
    field: str = Field(description="The field, as a path such as `additional_fields[0].key`")
    message: str = Field(description="What is wrong with it")


class Problem(BaseModel):
    """Every error answer: RFC 9457 problem details, as `application/problem+json`. Some
    carry more members (`upstream_host`, `connection_status`, `last_error`, ...)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="`about:blank` or a URI naming the kind of problem")
    title: str = Field(description="The kind of problem, in a few words")
    status: int = Field(description="The HTTP status code")
    detail: str = Field(description="What went wrong this time, and what to do about it")
    errors: list[FieldProblem] = Field(
        default_factory=list, description="Each field at fault (invalid or conflicting input)"
    )


def too_large_detail(limit: int) -> str:
    return (
        f"the request body is larger than {limit} bytes, the most this server reads "
        "(AUTHPROFILES_MAX_BODY_BYTES); send a smaller body"
    )


def problem(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_from_loc(loc: tuple[Any, ...], *, keep_last: bool) -> str:
    # The first part says where the input came from (body, query, path, header).
    parts = loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc
    if not parts:
        return str(loc[0] if loc else "body")
    return field_path(tuple(parts), keep_last=keep_last)


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(_request: Request, exc: DomainError) -> JSONResponse:
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
            headers = {"WWW-Authenticate": 'Bearer realm="authprofiles"'}
        if isinstance(exc, Unavailable) and exc.retry_after is not None:
            headers = {"Retry-After": str(exc.retry_after)}
        return problem(exc.status_code, exc.title, exc.detail, headers=headers, **extra)

    @app.exception_handler(RequestValidationError)
    async def request_invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for err in exc.errors():
            message = "is not a known field" if err["type"] == "extra_forbidden" else err["msg"]
            field = _field_from_loc(tuple(err["loc"]), keep_last=err["type"] == "extra_forbidden")
            errors.append({"field": field, "message": message})
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
            return problem(
                422,
                "Invalid input",
                f"the request body {message}",
                errors=[{"field": "body", "message": message}],
            )
        if status == 405:
            # Starlette names the methods of the first route matching the path; a path has
            # one route per method here, and RFC 9110 section 15.5.6 asks for all of them.
            allowed = _allowed_methods(request)
            headers["Allow"] = ", ".join(allowed)
            detail = f"{request.method} is not allowed here; this path takes {', '.join(allowed)}"
        return problem(status, _title(status), detail, headers=headers or None)


def log_unexpected(exc: BaseException) -> None:
    """Never echo the exception, nor log its message: either may hold a secret. The log
    gets the type and where it happened, which is what fixing it needs."""
    log.error(
        "unhandled %s at\n%s",
        type(exc).__name__,
        "".join(traceback.format_tb(exc.__traceback__)),
    )


class ContainUnexpected:
    """Answer an error nobody handled with a 500 problem, logged without its message.

    The app's outermost middleware: the error is answered here, so it never reaches
    Starlette's ServerErrorMiddleware, which would hand it on to the server's logger with
    its message (an SQL error's message holds the statement's parameters: ciphertexts, a
    profile's settings), and whose re-raise made the server drop the connection.
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
            log_unexpected(exc)
            if started:  # too late for an answer; the connection ends instead
                return
            response = problem(
                500, "Internal error", "something went wrong on our side; see the server log"
            )
            await response(scope, receive, send)


def _unreadable_body(exc: StarletteHTTPException) -> str | None:
    cause = exc.__cause__
    if isinstance(cause, UnicodeDecodeError):
        return "is not UTF-8 encoded JSON (RFC 8259 section 8.1)"
    if isinstance(cause, RecursionError):
        return "nests arrays or objects too deeply to be read"
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
    from http import HTTPStatus

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
    schema is filled in by :func:`document_problems`)."""
    return {
        status: {"description": text, "content": {PROBLEM_JSON: {}}}
        for status, text in described.items()
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
