"""``/docs`` (Swagger UI) and ``/redoc``, served whole by this server.

FastAPI's own pages load Swagger UI, Redoc, a favicon and Google's fonts from CDNs: on
a machine without the internet (where a self-hosted credentials service often runs) they
stay blank. Here the pages point at Swagger UI's and Redoc's dist files as installed with
the ``fastapi-offline`` package (from the package registry, not kept in this repository),
served under :data:`ASSETS_PATH`, and ask for nothing from another host.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

#: Where the pages' scripts, style sheet and icon are served.
ASSETS_PATH = "/docs/assets"
#: The package whose ``static`` folder holds swagger-ui-bundle.js, swagger-ui.css,
#: redoc.standalone.js and favicon.png.
ASSETS_PACKAGE = "fastapi_offline"

#: Swagger UI's options beyond FastAPI's defaults. No validator: Swagger UI would send the
#: schema's URL to validator.swagger.io and show the badge it answers with.
SWAGGER_UI_PARAMETERS = {"validatorUrl": None}


#: The pages may load from this server only, whatever a future Swagger UI or Redoc would
#: fetch: the browser itself refuses anything else (Redoc's "powered by" logo comes from a
#: CDN; refused, Redoc leaves it out). Inline script and style: FastAPI's page starts
#: Swagger UI with an inline script, and both style their elements inline; Redoc runs its
#: search in a worker made from a blob: URL.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)


def _same_origin_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return page


def assets_directory() -> str:
    return str(files(ASSETS_PACKAGE) / "static")


def install(app: FastAPI) -> None:
    """Serve the docs pages and their assets; the app is made with ``docs_url=None`` and
    ``redoc_url=None`` so that FastAPI's CDN pages are not there as well."""
    app.mount(ASSETS_PATH, StaticFiles(directory=assets_directory()), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            swagger_ui_parameters={**SWAGGER_UI_PARAMETERS, **(app.swagger_ui_parameters or {})},
        )
        return _same_origin_only(page)

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )
        return _same_origin_only(page)
