"""The sign-in pages: email and password, "Sign in with <provider>", sign-out (here or
everywhere), the workspace switcher, and setting a password from a reset link.

Every form is protected against cross-site request forgery. Before sign-in there is no
session to hold a token, so the forms use a double-submit cookie
(``authprofiles_signin_csrf``: a random value in a cookie and the same value in the
form; another site can make a browser post the form but can neither read nor set that
cookie). Once signed in, forms carry the session's own CSRF token (``csrf_token``),
which the pages also put in ``<meta name="csrf-token">`` for scripts calling the API
with the cookie (they send it as ``X-CSRF-Token``); ``GET /signin/csrf`` answers it too.

The pages carry no script and no inline style (a strict Content-Security-Policy), and
are never cached, framed, or sent as a referrer (a reset link's URL is a credential).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from authprofiles.composition import Services
from authprofiles.core.callers import Principal
from authprofiles.core.errors import (
    DomainError,
    NotFound,
    TooLarge,
    TooManyAttempts,
    Unauthenticated,
    UpstreamError,
    ValidationFailed,
)
from authprofiles.services.signin import (
    CSRF_FIELD,
    SESSION_COOKIE,
    ActiveSession,
    SignedIn,
    csrf_matches,
    safe_next,
)
from authprofiles.services.signin.sessions import set_cookie_header
from authprofiles.web.pages import HTML_PAGE, services_of
from authprofiles.web.routes import templates

router = APIRouter(tags=["sign-in"])

#: The double-submit cookie of the forms shown before sign-in.
SIGNIN_CSRF_COOKIE = "authprofiles_signin_csrf"
#: Binds a single sign-on to the browser that started it (see ``SsoStart``).
SSO_BINDING_COOKIE = "authprofiles_sso"
SSO_COOKIE_PATH = "/signin/sso"
#: The largest form these pages read.
MAX_FORM_BYTES = 16 * 1024

_STYLESHEET = Path(__file__).parent / "templates" / "signin.css"
#: Answers of every form here before it is read whole (problems, not pages).
_FORM_REFUSED: dict[int | str, dict[str, Any]] = {
    413: {"description": "The form is larger than these pages send"}
}

#: Headers on every page here: nothing but this server's own stylesheet and forms.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None


async def _form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (what these pages' forms send),
    at most :data:`MAX_FORM_BYTES`; a larger one is refused, read no further."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise TooLarge(f"a form here is at most {MAX_FORM_BYTES} bytes")
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def _secure(services: Services) -> bool:
    return services.sessions.secure_cookie


def _with_headers(response: Response, cookies: list[str] | None = None) -> Response:
    for name, value in PAGE_HEADERS.items():
        response.headers[name] = value
    for cookie in cookies or []:
        response.headers.append("set-cookie", cookie)
    return response


async def current_session(request: Request, services: Services) -> ActiveSession | None:
    """The signed-in session of this browser, or None."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        return await run_in_threadpool(services.sessions.resolve, token, _address(request))
    except Unauthenticated:
        return None


def _rotated(services: Services, session: ActiveSession | None) -> list[str]:
    if session is None or session.new_token is None:
        return []
    return [services.sessions.cookie(session.new_token, session.expires_at)]


def _page(
    request: Request,
    services: Services,
    template: str,
    context: Mapping[str, Any],
    *,
    status_code: int = 200,
    cookies: list[str] | None = None,
) -> Response:
    response = templates.TemplateResponse(
        request,
        template,
        {"sso_name": services.signin.sso_provider_name, **context},
        status_code=status_code,
    )
    return _with_headers(response, cookies or [])


#: The lengths a pre-sign-in double-submit token may have (ours are 43 characters).
SIGNIN_CSRF_LENGTHS = range(20, 101)


def _signin_csrf(request: Request, services: Services) -> tuple[str, list[str]]:
    """The pre-sign-in double-submit token: the browser's, or a new one to set."""
    token = request.cookies.get(SIGNIN_CSRF_COOKIE)
    if token and len(token) in SIGNIN_CSRF_LENGTHS:
        return token, []
    token = secrets.token_urlsafe(32)
    cookie = set_cookie_header(SIGNIN_CSRF_COOKIE, token, secure=_secure(services), max_age=None)
    return token, [cookie]


def _signin_csrf_ok(request: Request, form: Mapping[str, str]) -> bool:
    """Whether a form shown before sign-in carries the double-submit token: the cookie
    must be there, of the length we make, and the form's field equal to it. A cross-site
    post can send any field but neither read nor set the cookie, so an empty or missing
    cookie is refused outright (login CSRF: signing a victim's browser into the
    attacker's account)."""
    cookie = request.cookies.get(SIGNIN_CSRF_COOKIE)
    if not cookie or len(cookie) not in SIGNIN_CSRF_LENGTHS:
        return False
    return csrf_matches(cookie, form.get(CSRF_FIELD))


def _signin_page(
    request: Request,
    services: Services,
    *,
    error: str | None = None,
    status_code: int = 200,
    email: str = "",
    next_url: str | None = None,
    locked_until: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra_cookies: list[str] | None = None,
) -> Response:
    csrf, cookies = _signin_csrf(request, services)
    response = _page(
        request,
        services,
        "signin.html",
        {
            "signin_csrf": csrf,
            "error": error,
            "email": email,
            "next": safe_next(next_url),
            "locked_until": locked_until,
        },
        status_code=status_code,
        cookies=cookies + (extra_cookies or []),
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _signed_in_response(services: Services, signed_in: SignedIn) -> Response:
    """Off to where the person was going, with the new session's cookie."""
    response = RedirectResponse(signed_in.next, status_code=303)
    cookie = services.sessions.cookie(signed_in.session.token, signed_in.session.expires_at)
    return _with_headers(response, [cookie])


# -- sign-in --------------------------------------------------------------------------


@router.get(
    "/signin",
    response_class=HTMLResponse,
    responses={200: {"description": "The sign-in page (or, signed in, who you are)"}},
)
async def signin_page(
    request: Request, services: Services = Depends(services_of), next: str | None = None
) -> Response:
    """Email and password, and "Sign in with <provider>" when single sign-on is set up.
    Signed in already: who you are, the workspace switcher and the sign-out buttons."""
    session = await current_session(request, services)
    if session is None:
        return _signin_page(request, services, next_url=next)
    assert session.principal.user_id is not None
    workspaces = await run_in_threadpool(services.sessions.workspaces, session.principal.user_id)
    return _page(
        request,
        services,
        "signin_done.html",
        {
            "csrf_token": session.csrf_token,
            "principal": session.principal,
            "workspaces": workspaces,
            "next": safe_next(next),
        },
        cookies=_rotated(services, session),
    )


@router.post(
    "/signin",
    response_class=HTMLResponse,
    responses={
        303: {"description": "Signed in: off to `next`, with the session cookie"},
        401: {"description": "The page again, saying why not", "content": HTML_PAGE},
        403: {"description": "The form's CSRF token is missing or wrong", "content": HTML_PAGE},
        429: {"description": "Locked: the page says until when", "content": HTML_PAGE},
        **_FORM_REFUSED,
    },
)
async def signin(request: Request, services: Services = Depends(services_of)) -> Response:
    """Sign in with email and password (form fields `email`, `password`, `csrf_token`,
    `next`). Failed tries are counted per account and per address; a locked account or
    address is told when it unlocks."""
    form = await _form(request)
    email, next_url = form.get("email", ""), form.get("next")
    if not _signin_csrf_ok(request, form):
        return _signin_page(
            request,
            services,
            error="The form had expired; please sign in again.",
            status_code=403,
            email=email,
            next_url=next_url,
        )
    try:
        signed_in = await run_in_threadpool(
            lambda: services.signin.sign_in_with_password(
                email,
                form.get("password", ""),
                _address(request),
                next_url,
                previous_token=request.cookies.get(SESSION_COOKIE),
            )
        )
    except TooManyAttempts as exc:
        until = exc.until.isoformat().replace("+00:00", "Z")
        return _signin_page(
            request,
            services,
            error=exc.detail,
            status_code=429,
            email=email,
            next_url=next_url,
            locked_until=until,
            headers={"Retry-After": str(exc.retry_after)},
        )
    except Unauthenticated as exc:
        return _signin_page(
            request, services, error=exc.detail, status_code=401, email=email, next_url=next_url
        )
    return _signed_in_response(services, signed_in)


@router.get(
    "/signin/csrf",
    responses={
        200: {"description": "`{csrf_token}` of the signed-in session"},
        401: {"description": "Not signed in"},
    },
)
async def signin_csrf(request: Request, services: Services = Depends(services_of)) -> Response:
    """The CSRF token of the browser's session, which an API call made with the session
    cookie sends as `X-CSRF-Token` when its method is not GET, HEAD or OPTIONS. 401 when
    not signed in."""
    session = await current_session(request, services)
    if session is None:
        raise Unauthenticated("not signed in")
    response = JSONResponse({"csrf_token": session.csrf_token})
    return _with_headers(response, _rotated(services, session))


@router.get("/signin/style.css", include_in_schema=False)
async def stylesheet() -> Response:
    return Response(
        _STYLESHEET.read_bytes(),
        media_type="text/css",
        headers={"Cache-Control": "public, max-age=3600"},
    )


# -- single sign-on -------------------------------------------------------------------


@router.post(
    "/signin/sso",
    responses={
        303: {"description": "Off to the OpenID provider"},
        403: {"description": "The form's CSRF token is missing or wrong", "content": HTML_PAGE},
        404: {"description": "Single sign-on is not set up"},
        502: {"description": "The provider could not be used", "content": HTML_PAGE},
        **_FORM_REFUSED,
    },
)
async def sso_start(request: Request, services: Services = Depends(services_of)) -> Response:
    """Begin signing in at the OpenID Connect provider (form fields `csrf_token`,
    `next`): authorization code with PKCE, state and nonce."""
    form = await _form(request)
    if not _signin_csrf_ok(request, form):
        return _signin_page(
            request,
            services,
            error="The form had expired; please try again.",
            status_code=403,
            next_url=form.get("next"),
        )
    try:
        started = await run_in_threadpool(services.signin.start_sso, form.get("next"))
    except UpstreamError as exc:
        return _signin_page(request, services, error=exc.detail, status_code=502)
    binding = set_cookie_header(
        SSO_BINDING_COOKIE,
        started.binding,
        secure=_secure(services),
        max_age=600,
        path=SSO_COOKIE_PATH,
    )
    return _with_headers(RedirectResponse(started.redirect_url, status_code=303), [binding])


@router.get(
    "/signin/sso/callback",
    responses={
        303: {"description": "Signed in: off to `next`, with the session cookie"},
        401: {"description": "The sign-in page, saying why not", "content": HTML_PAGE},
        404: {"description": "Single sign-on is not set up", "content": HTML_PAGE},
        502: {"description": "The provider could not be used", "content": HTML_PAGE},
    },
)
async def sso_callback(
    request: Request,
    services: Services = Depends(services_of),
    state: str | None = None,
    code: str | None = None,
    error: str | None = None,
    iss: str | None = None,
) -> Response:
    """Where the provider sends the person back: the state (once), the code, the ID
    token (signature, issuer, audience, nonce) and the verified email decide."""
    cleared = set_cookie_header(
        SSO_BINDING_COOKIE, "", secure=_secure(services), max_age=0, path=SSO_COOKIE_PATH
    )
    try:
        signed_in = await run_in_threadpool(
            lambda: services.signin.complete_sso(
                state=state,
                code=code,
                error=error,
                iss=iss,
                binding=request.cookies.get(SSO_BINDING_COOKIE),
                address=_address(request),
                previous_token=request.cookies.get(SESSION_COOKIE),
            )
        )
    except (Unauthenticated, NotFound, UpstreamError) as exc:
        status = (
            502 if isinstance(exc, UpstreamError) else 404 if isinstance(exc, NotFound) else 401
        )
        return _signin_page(
            request, services, error=exc.detail, status_code=status, extra_cookies=[cleared]
        )
    response = _signed_in_response(services, signed_in)
    response.headers.append("set-cookie", cleared)
    return response


# -- signed in: sign-out, switching workspaces ----------------------------------------


async def _session_form(
    request: Request, services: Services
) -> tuple[ActiveSession | None, dict[str, str]]:
    """The session and the form, when the form carries the session's CSRF token."""
    form = await _form(request)
    session = await current_session(request, services)
    if session is None or not csrf_matches(session.csrf_token, form.get(CSRF_FIELD)):
        return None, form
    return session, form


def _back_to_signin(services: Services, *, clear: bool) -> Response:
    cookies = [services.sessions.cookie_removal()] if clear else []
    return _with_headers(RedirectResponse("/signin", status_code=303), cookies)


_SIGNED_IN_FORM: dict[int | str, dict[str, Any]] = {
    303: {"description": "Done: back to the sign-in page"},
    403: {
        "description": "Not signed in, or the form's CSRF token is wrong: the sign-in page",
        "content": HTML_PAGE,
    },
    **_FORM_REFUSED,
}


@router.post("/signout", responses=_SIGNED_IN_FORM)
async def signout(request: Request, services: Services = Depends(services_of)) -> Response:
    """End this browser's session (form field `csrf_token`)."""
    session, _ = await _session_form(request, services)
    if session is None:
        return _forbidden(request, services)
    await run_in_threadpool(services.sessions.sign_out, request.cookies.get(SESSION_COOKIE))
    return _back_to_signin(services, clear=True)


@router.post("/signout/everywhere", responses=_SIGNED_IN_FORM)
async def signout_everywhere(
    request: Request, services: Services = Depends(services_of)
) -> Response:
    """End every session of the signed-in person, in every browser (form field
    `csrf_token`)."""
    session, _ = await _session_form(request, services)
    if session is None or session.principal.user_id is None:
        return _forbidden(request, services)
    await run_in_threadpool(services.sessions.sign_out_everywhere, session.principal.user_id)
    return _back_to_signin(services, clear=True)


@router.post(
    "/signin/workspace",
    responses={**_SIGNED_IN_FORM, 303: {"description": "Switched: off to `next`"}},
)
async def switch_workspace(request: Request, services: Services = Depends(services_of)) -> Response:
    """Work in another of your workspaces (form fields `workspace_id`, `csrf_token`,
    `next`)."""
    session, form = await _session_form(request, services)
    if session is None:
        return _forbidden(request, services)
    principal: Principal = session.principal
    try:
        await run_in_threadpool(
            services.sessions.switch_workspace, principal, form.get("workspace_id", "")
        )
    except NotFound:
        return _forbidden(request, services)
    response = RedirectResponse(safe_next(form.get("next")), status_code=303)
    return _with_headers(response, _rotated(services, session))


def _forbidden(request: Request, services: Services) -> Response:
    return _signin_page(
        request,
        services,
        error="That form had expired, or you are not signed in. Please try again.",
        status_code=403,
    )


# -- password reset links -------------------------------------------------------------


@router.get(
    "/reset/{token}",
    response_class=HTMLResponse,
    responses={
        200: {"description": "A form to choose a new password"},
        404: {"description": "The link is unknown, used or expired", "content": HTML_PAGE},
    },
)
async def reset_page(
    token: str, request: Request, services: Services = Depends(services_of)
) -> Response:
    """The page of a one-time password reset link."""
    try:
        email = await run_in_threadpool(services.signin.reset_email, token)
    except NotFound as exc:
        return _reset_page(request, services, token, error=exc.detail, status_code=404)
    return _reset_page(request, services, token, email=email)


def _reset_page(
    request: Request,
    services: Services,
    token: str,
    *,
    email: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    csrf, cookies = _signin_csrf(request, services)
    return _page(
        request,
        services,
        "signin_reset.html",
        {"signin_csrf": csrf, "token": token, "email": email, "error": error},
        status_code=status_code,
        cookies=cookies,
    )


@router.post(
    "/reset/{token}",
    response_class=HTMLResponse,
    responses={
        303: {"description": "Password set, signed in: off to the console"},
        400: {"description": "The password was refused; the page says why", "content": HTML_PAGE},
        403: {"description": "The form's CSRF token is missing or wrong", "content": HTML_PAGE},
        404: {"description": "The link is unknown, used or expired", "content": HTML_PAGE},
        409: {"description": "The account cannot take a password now", "content": HTML_PAGE},
        **_FORM_REFUSED,
    },
)
async def reset(
    token: str, request: Request, services: Services = Depends(services_of)
) -> Response:
    """Set a new password (form fields `password`, `confirm`, `csrf_token`); the link
    works once, and every other session of the person ends."""
    form = await _form(request)
    if not _signin_csrf_ok(request, form):
        return _reset_page(
            request,
            services,
            token,
            error="The form had expired; please try again.",
            status_code=403,
        )
    password = form.get("password", "")
    if password != form.get("confirm", ""):
        return _reset_page(
            request, services, token, error="The two passwords differ.", status_code=400
        )
    try:
        signed_in = await run_in_threadpool(
            lambda: services.signin.reset_password(
                token,
                password,
                _address(request),
                previous_token=request.cookies.get(SESSION_COOKIE),
            )
        )
    except ValidationFailed as exc:
        message = "; ".join(e.message for e in exc.errors) or exc.detail
        return _reset_page(request, services, token, error=f"Password {message}.", status_code=400)
    except NotFound as exc:
        return _reset_page(request, services, token, error=exc.detail, status_code=404)
    except DomainError as exc:
        return _reset_page(request, services, token, error=exc.detail, status_code=409)
    if signed_in is None:
        return _back_to_signin(services, clear=True)
    return _signed_in_response(services, signed_in)


__all__ = ["PAGE_HEADERS", "SIGNIN_CSRF_COOKIE", "SSO_BINDING_COOKIE", "router"]
