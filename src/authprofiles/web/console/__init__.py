"""The web console: the seeds' screens for people, served by the same server.

Pages are rendered here (Jinja2, ``templates/console``) from the services, with the
signed-in person's own principal; actions go through the JSON API from the console's
script (``static/console.js``), so validation, permissions and problems are the API's.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from authprofiles.web.console import admin, connections, home, profiles
from authprofiles.web.console.base import install as install_refusals

#: The console's own stylesheet and scripts (written here; no CDN, no build step).
STATIC_DIR = Path(__file__).parent.parent / "static"
STATIC_PATH = "/console/static"

router = APIRouter(include_in_schema=False)
for module in (home, profiles, connections, admin):
    router.include_router(module.router)


def install(app: FastAPI) -> None:
    install_refusals(app)
    app.include_router(router)
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="console-static")


__all__ = ["STATIC_PATH", "install", "router"]
