"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

import logging
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from authprofiles.core.errors import DomainError, ValidationFailed
from authprofiles.core.validation import field_path
from authprofiles.services.api_keys import Unauthenticated
from authprofiles.services.errors import IdPRefused, NeedsReauth

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("authprofiles.api")


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
        if isinstance(exc, ValidationFailed):
            extra["errors"] = [{"field": e.field, "message": e.message} for e in exc.errors]
        if isinstance(exc, NeedsReauth):
            extra["connection_status"] = "needs_reauth"
            if exc.last_error:
                extra["last_error"] = exc.last_error
        if isinstance(exc, IdPRefused) and exc.error:
            extra["idp_error"] = exc.error
        if isinstance(exc, Unauthenticated):
            headers = {"WWW-Authenticate": 'Bearer realm="authprofiles"'}
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
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(
            exc.status_code,
            _title(exc.status_code),
            str(exc.detail),
            headers=dict(exc.headers) if exc.headers else None,
        )

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        # Never echo the exception, nor log its message: either may hold a secret. The
        # log gets the type and where it happened, which is what fixing it needs.
        log.error(
            "unhandled %s at\n%s",
            type(exc).__name__,
            "".join(traceback.format_tb(exc.__traceback__)),
        )
        return problem(
            500, "Internal error", "something went wrong on our side; see the server log"
        )


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
