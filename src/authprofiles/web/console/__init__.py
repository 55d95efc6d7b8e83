"""The web console: the seeds' screens for people, served by the same server.

Pages are rendered here (Jinja2, ``templates/console``) from the services, with the
signed-in person's own principal; actions go through the JSON API from the console's
script (``static/console.js``), so validation, permissions and problems are the API's.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.types import Scope

from authprofiles.web.console import admin, agents, connections, home, profiles
from authprofiles.web.console.base import (
    ConsolePage,
    console_headers,
    console_page,
    with_console_headers,
)
from authprofiles.web.console.base import install as install_refusals

#: The console's own stylesheet and scripts (written here; no CDN, no build step).
STATIC_DIR = Path(__file__).parent.parent / "static"
STATIC_PATH = "/console/static"

router = APIRouter(include_in_schema=False)
for module in (home, profiles, connections, agents, admin):
    router.include_router(module.router)


class ConsoleStatic(StaticFiles):
    """The console's files, each with ``X-Content-Type-Options: nosniff`` (a script or
    stylesheet is only ever what its type says); a file that is not there answers a
    plain 404 with the console's headers (not the API's JSON problem)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            response = await super().get_response(path, scope)
        except HTTPException as exc:
            refused = PlainTextResponse(
                "Not found." if exc.status_code == 404 else str(exc.detail),
                status_code=exc.status_code,
                headers=dict(exc.headers or {}),
            )
            return console_headers(refused)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


#: Matched last (after the pages and the static files): any other console address.
not_found = APIRouter(include_in_schema=False)
CATCH_ALL = "/console/{rest:path}"


@not_found.api_route(CATCH_ALL, methods=["GET", "HEAD"])
async def unknown_page(rest: str, page: ConsolePage = Depends(console_page)) -> Response:
    """A console address that is no page: the 404 page, in the layout (signed out, off
    to sign in first, as for any console page)."""
    if not rest:
        # ``/console/``: the console's start, as ``/console``.
        return with_console_headers(
            RedirectResponse("/console", status_code=303), page.session, page.services
        )
    return page.render("not_found.html", status_code=404, title="Page not found")


@not_found.api_route(CATCH_ALL, methods=["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
async def unknown_call(rest: str) -> Response:
    """No console address takes this method: a plain 404 with the console's headers."""
    return console_headers(PlainTextResponse("Not found.", status_code=404))


def install(app: FastAPI) -> None:
    install_refusals(app)
    app.include_router(router)
    # In this order: the pages, then the files (a mount answers everything under its
    # path, a missing file too), then every other console address.
    app.mount(STATIC_PATH, ConsoleStatic(directory=STATIC_DIR), name="console-static")
    app.include_router(not_found)


__all__ = ["STATIC_PATH", "ConsoleStatic", "install", "router"]
