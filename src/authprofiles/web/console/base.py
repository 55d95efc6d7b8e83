"""What every console page shares: the signed-in person behind it, the layout's
context (navigation, workspace switcher, CSRF token, the notice after an action), and
the headers every page carries.

A page is a route that depends on ``console_page``. Not signed in, it sends the browser
to ``/signin`` and back; signed in without the role a page needs, ``page.require``
answers a page saying so (403). Pages read through the services with the person's own
``Principal``, so the console can show nothing the API would refuse them; they change
nothing themselves: the page's script calls the JSON API with the session cookie and
the ``X-CSRF-Token`` header, and the API's validation and problems are the console's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from authprofiles.composition import Services
from authprofiles.core.callers import Principal, Role, has_role
from authprofiles.services.people import Me
from authprofiles.services.signin import ActiveSession
from authprofiles.web.pages import services_of
from authprofiles.web.routes import templates
from authprofiles.web.signin import current_session

P = ParamSpec("P")
T = TypeVar("T")

#: Headers on every console page. Scripts and styles come from this server only (no
#: inline script or style), the page calls this server's API only, and is never framed,
#: cached or sent as a referrer.
CONSOLE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}

#: The messages a page shows after an action, by the code in its ``?notice=`` (a code,
#: never free text: a link cannot make the console say anything else). Each page module
#: adds its own with ``notices``.
NOTICES: dict[str, str] = {}


def notices(**messages: str) -> None:
    """Register the notices of a page module (``profile_created="…"`` is
    ``?notice=profile_created``)."""
    for code, message in messages.items():
        if code in NOTICES and NOTICES[code] != message:
            raise ValueError(f"notice {code} is registered twice")
        NOTICES[code] = message


@dataclass(frozen=True)
class NavItem:
    """A link of the side navigation, in a section; ``role`` is the least it needs."""

    section: str
    label: str
    href: str
    key: str
    role: Role = Role.VIEWER


#: The side navigation, in the seeds' words: Settings → Security & Control →
#: Authorization profile (seed 000), Manage and My settings > OAuth connections (seed 004).
NAVIGATION: tuple[NavItem, ...] = (
    NavItem("Security & Control", "Authorization profiles", "/console/profiles", "profiles"),
    NavItem("Security & Control", "Agents", "/console/agents", "agents", Role.DEVELOPER),
    NavItem("Security & Control", "Approvals", "/console/approvals", "approvals"),
    NavItem("My settings", "OAuth connections", "/console/connections", "connections"),
    NavItem("Manage", "Users", "/console/users", "users", Role.ADMIN),
    NavItem("Manage", "Teams", "/console/teams", "teams", Role.ADMIN),
    NavItem("Manage", "API keys", "/console/api-keys", "api-keys", Role.DEVELOPER),
    NavItem("Manage", "Webhooks & email", "/console/notifications", "notifications", Role.ADMIN),
    NavItem("Manage", "Audit log", "/console/audit", "audit", Role.ADMIN),
)


class SignInFirst(Exception):
    """No session: the browser goes to the sign-in page, and back here after."""

    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


class NotAllowedHere(Exception):
    """Signed in, but this page needs a role the person does not have here."""

    def __init__(self, page: ConsolePage, role: Role) -> None:
        self.page = page
        self.role = role


@dataclass
class ConsolePage:
    """One console request: the session, the services, and the page's answer."""

    request: Request
    services: Services
    session: ActiveSession
    me: Me
    #: (id, name, role) of each workspace the person may switch to.
    workspaces: list[tuple[str, str, Role]] = field(default_factory=list)

    @property
    def principal(self) -> Principal:
        return self.session.principal

    @property
    def role(self) -> Role:
        return self.principal.role

    def allows(self, role: Role) -> bool:
        return has_role(self.principal, role)

    def require(self, role: Role) -> None:
        """Refuse the page (403, a page saying why) unless the person has ``role``."""
        if not self.allows(role):
            raise NotAllowedHere(self, role)

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a (blocking) service call off the event loop."""
        return await run_in_threadpool(fn, *args, **kwargs)

    def render(
        self,
        template: str,
        context: Mapping[str, Any] | None = None,
        *,
        active: str | None = None,
        status_code: int = 200,
        title: str | None = None,
    ) -> Response:
        """The page ``template`` (under ``templates/console``) in the console's layout.

        Templates get what they show, never ``self``: its services reach the settings
        (the master key, the SMTP password) and every store."""
        notice = NOTICES.get(self.request.query_params.get("notice", ""))
        response = templates.TemplateResponse(
            self.request,
            f"console/{template}",
            {
                "me": self.me,
                "role": self.role.value,
                "is_admin": self.allows(Role.ADMIN),
                "csrf_token": self.session.csrf_token,
                "workspaces": self.workspaces,
                "navigation": [item for item in NAVIGATION if self.allows(item.role)],
                "active": active,
                "notice": notice,
                "title": title,
                "path": _path_of(self.request),
                **(context or {}),
            },
            status_code=status_code,
        )
        return with_console_headers(response, self.session, self.services)


def console_headers(response: Response) -> Response:
    """The console's headers on ``response`` (one that is no page of a session too)."""
    for name, value in CONSOLE_HEADERS.items():
        response.headers[name] = value
    return response


def with_console_headers(
    response: Response, session: ActiveSession | None, services: Services
) -> Response:
    console_headers(response)
    if session is not None and session.new_token is not None:
        response.headers.append(
            "set-cookie", services.sessions.cookie(session.new_token, session.expires_at)
        )
    return response


def _path_of(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


async def console_page(request: Request, services: Services = Depends(services_of)) -> ConsolePage:
    """The dependency of every console page: the signed-in person, or off to sign in."""
    session = await current_session(request, services)
    if session is None or session.principal.user_id is None:
        raise SignInFirst(_path_of(request))
    user_id = session.principal.user_id
    me = await run_in_threadpool(services.people.me, session.principal)
    workspaces = await run_in_threadpool(services.sessions.workspaces, user_id)
    return ConsolePage(request, services, session, me, workspaces)


def install(app: FastAPI) -> None:
    """Answer the console's two refusals as pages."""

    async def sign_in_first(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInFirst)
        target = "/signin?next=" + quote(exc.next_url, safe="/")
        return with_console_headers(
            RedirectResponse(target, status_code=303), None, services_of(request)
        )

    async def not_allowed(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, NotAllowedHere)
        return exc.page.render(
            "forbidden.html",
            {"needed": exc.role.value},
            status_code=403,
            title="Not available to your role",
        )

    app.add_exception_handler(SignInFirst, sign_in_first)
    app.add_exception_handler(NotAllowedHere, not_allowed)


__all__ = [
    "CONSOLE_HEADERS",
    "NAVIGATION",
    "NOTICES",
    "ConsolePage",
    "NavItem",
    "console_headers",
    "console_page",
    "install",
    "notices",
    "with_console_headers",
]
