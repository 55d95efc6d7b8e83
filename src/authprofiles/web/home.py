"""The page a person lands on at ``/`` (the console once signed in), and the README at
``/readme``: what this server is, which version, and where to go next. No API key."""

from __future__ import annotations

from functools import lru_cache
from importlib import metadata

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markdown_it import MarkdownIt

from authprofiles import __version__
from authprofiles.web.console.home import START
from authprofiles.web.routes import templates
from authprofiles.web.signin import current_session

router = APIRouter(tags=["pages"])

#: Pages of this server's own; nothing on them comes from a caller.
_HEADERS = {"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}


@router.get(
    "/",
    response_class=HTMLResponse,
    responses={
        200: {"description": "A page for people: sign in, and the documentation"},
        303: {"description": "Signed in: off to the console"},
    },
)
async def home(request: Request) -> Response:
    """The service's name and version, a way to sign in to the console, links to the
    API documentation (`/docs`, `/redoc`), the health endpoints and the README. A
    signed-in person goes straight to the console."""
    services = request.app.state.services
    if await current_session(request, services) is not None:
        return RedirectResponse(START, status_code=303, headers={"Cache-Control": "no-store"})
    settings = services.settings
    return templates.TemplateResponse(
        request,
        "home.html",
        {"version": __version__, "callback_url": settings.callback_url},
        headers=_HEADERS,
    )


@router.get(
    "/readme",
    response_class=HTMLResponse,
    responses={200: {"description": "The README of the installed version, as a page"}},
)
async def readme(request: Request) -> HTMLResponse:
    """The README this version was released with (the package's own description)."""
    return templates.TemplateResponse(
        request,
        "readme.html",
        {"version": __version__, "readme_html": _readme_html()},
        headers=_HEADERS,
    )


@lru_cache(maxsize=1)
def _readme_html() -> str:
    try:
        text = metadata.metadata("authprofiles").json.get("description")
    except metadata.PackageNotFoundError:
        text = None
    if not isinstance(text, str) or not text.strip():
        return "<p>This installation carries no README.</p>"
    # The README is the package's own text, not a caller's: its HTML (comments) may pass.
    html: str = MarkdownIt("commonmark", {"html": True}).enable("table").render(text)
    return html
