"""Pages a person sees: for now the OAuth callback, which says what happened."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from authprofiles.composition import Services
from authprofiles.web.pages import HTML_PAGE, services_of

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
router = APIRouter(tags=["oauth"])


@router.get(
    "/oauth/callback",
    response_class=HTMLResponse,
    responses={
        200: {"description": "A page saying the connection is made"},
        400: {
            "description": "A page saying why not (state, code or the IdP)",
            "content": HTML_PAGE,
        },
        502: {"description": "A page saying the code exchange failed", "content": HTML_PAGE},
    },
)
async def oauth_callback(
    request: Request,
    services: Services = Depends(services_of),
    state: str | None = None,
    code: str | None = None,
    error: str | None = None,
    error_description: str | None = None,
    iss: str | None = None,
) -> HTMLResponse:
    """The redirect target of the authorization-code grant (no API key: the state is the
    credential, single use and short-lived). `iss` is the RFC 9207 issuer of the answer,
    checked against the profile's `issuer` before the code is redeemed."""
    outcome = await run_in_threadpool(
        lambda: services.connections.complete_authorization(
            state=state, code=code, error=error, error_description=error_description, iss=iss
        )
    )
    response = templates.TemplateResponse(
        request,
        "callback.html",
        {"outcome": outcome},
        status_code=outcome.status_code,
    )
    # The page may carry an error from the IdP; it must not be cached or framed.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
