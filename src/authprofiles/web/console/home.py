"""``/console``: where the console starts (the authorization profiles, seed 000)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import RedirectResponse, Response

from authprofiles.web.console.base import ConsolePage, console_page, with_console_headers

router = APIRouter(include_in_schema=False)

#: The console's first page.
START = "/console/profiles"


@router.get("/console")
async def console_start(page: ConsolePage = Depends(console_page)) -> Response:
    redirect = RedirectResponse(START, status_code=303)
    return with_console_headers(redirect, page.session, page.services)
