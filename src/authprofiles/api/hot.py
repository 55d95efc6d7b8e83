"""Operations served ahead of FastAPI's routing, each declared once, like any other.

The token endpoint, the proxy and the liveness probe are called far more than anything
else, and FastAPI's per-request dependency solving cost more than those endpoints do
(measured at 32 concurrent callers: a token cost about twice what a bare endpoint did;
in the proxy, a third of its CPU). Each is still declared as a FastAPI operation: a path,
its response model and problems, its parameters and dependencies in the endpoint's
signature; ``/openapi.json`` describes it from that declaration, as it describes every
route. Only the serving differs: the app puts these routes ahead of its own, and
:class:`HotRoute` calls the endpoint with the path parameters as matched and each
dependency called with the request, which is all such an endpoint may take.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[..., Awaitable[Response]]
E = TypeVar("E", bound=Endpoint)


class HotRoute(APIRoute):
    """A FastAPI operation whose endpoint is called without the dependency solver.

    The endpoint is a coroutine answering with a ``Response`` of its own (a response
    model documents it; nothing validates it on the way out). It may take, as checked
    when the route is made: path parameters typed ``str`` (nothing to convert), the
    ``Request``, and dependencies that take the request alone (``CurrentPrincipal``,
    ``ServicesDep``).
    """

    def __init__(self, path: str, endpoint: Endpoint, **options: Any) -> None:
        super().__init__(path, endpoint, **options)
        self.app = _asgi(self.get_route_handler())

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return lean_handler(self.endpoint, self.dependant)

    # Starlette's own matching and handling: FastAPI's look first for the context of a
    # router it was included through, which a route put ahead of the app's never has.
    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = Route.matches(self, scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await Route.handle(self, scope, receive, send)


def _asgi(handler: Callable[[Request], Awaitable[Response]]) -> ASGIApp:
    """The endpoint as an ASGI app, and no more: not FastAPI's wrapper, which opens two
    exit stacks per request for dependencies with `yield` (none here has one), nor
    Starlette's, which looks for the exception handlers itself; an error raised here
    reaches them through the app's exception middleware, as any mounted app's does."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        response = await handler(Request(scope, receive, send))
        await response(scope, receive, send)

    return app


def lean_handler(
    endpoint: Callable[..., Any], dependant: Dependant
) -> Callable[[Request], Coroutine[Any, Any, Response]]:
    """``endpoint`` called with the path parameters, the request and the dependencies
    its signature (``dependant``) names; TypeError for anything else it asks for."""
    name = getattr(endpoint, "__name__", repr(endpoint))
    if not _is_async(endpoint):
        raise TypeError(f"{name}: a hot route's endpoint is a coroutine function")
    if other := _other_inputs(dependant):
        raise TypeError(f"{name}: a hot route takes no {', '.join(other)}")
    path_names = []
    for field in dependant.path_params:
        if field.field_info.annotation is not str:
            raise TypeError(f"{name}: path parameter {field.name!r} must be a str")
        path_names.append(field.name)
    resolvers: list[tuple[str, Callable[[Request], Any], bool]] = []
    for dependency in dependant.dependencies:
        call = dependency.call
        if (
            dependency.name is None
            or call is None
            or dependency.request_param_name is None
            or dependency.dependencies
            or dependency.path_params
            or _other_inputs(dependency)
        ):
            raise TypeError(f"{name}: {dependency.name!r} must depend on the request alone")
        resolvers.append((dependency.name, call, _is_async(call)))
    request_name = dependant.request_param_name
    if request_name is not None and not path_names and not resolvers:
        return endpoint  # it takes the request alone, as Starlette calls it

    async def handle(request: Request) -> Response:
        arguments: dict[str, Any] = {key: request.path_params[key] for key in path_names}
        if request_name is not None:
            arguments[request_name] = request
        for key, call, is_async in resolvers:
            arguments[key] = await call(request) if is_async else call(request)
        response: Response = await endpoint(**arguments)
        return response

    return handle


def _is_async(call: Callable[..., Any]) -> bool:
    """A coroutine function, or an object whose ``__call__`` is one (a security scheme)."""
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(
        getattr(call, "__call__", None)  # noqa: B004 - the method, not callable()
    )


def _other_inputs(dependant: Dependant) -> list[str]:
    """What ``dependant`` takes besides path parameters, the request and dependencies."""
    fields = (
        *dependant.query_params,
        *dependant.header_params,
        *dependant.cookie_params,
        *dependant.body_params,
    )
    special = (
        dependant.http_connection_param_name,
        dependant.websocket_param_name,
        dependant.response_param_name,
        dependant.background_tasks_param_name,
        dependant.security_scopes_param_name,
    )
    return [f"{field.name!r}" for field in fields] + [f"{name!r}" for name in special if name]


class HotRouter:
    """Hot operations, declared as on an ``APIRouter``; the app makes their routes
    (:meth:`routes`) and puts them ahead of its own."""

    def __init__(self, **defaults: Any) -> None:
        self._defaults = defaults
        self._declared: list[tuple[str, Endpoint, type[HotRoute], dict[str, Any]]] = []

    def add_api_route(
        self,
        path: str,
        endpoint: Endpoint,
        *,
        route_class: type[HotRoute] = HotRoute,
        **options: Any,
    ) -> None:
        """``options`` are ``APIRoute``'s (``methods``, ``response_model``, ``responses``...)."""
        self._declared.append((path, endpoint, route_class, {**self._defaults, **options}))

    def get(self, path: str, **options: Any) -> Callable[[E], E]:
        def declare(endpoint: E) -> E:
            self.add_api_route(path, endpoint, methods=["GET"], **options)
            return endpoint

        return declare

    def routes(self, prefix: str = "") -> list[HotRoute]:
        """A route for each operation, its path under ``prefix``."""
        return [
            route_class(prefix + path, endpoint, **options)
            for path, endpoint, route_class, options in self._declared
        ]


__all__ = ["HotRoute", "HotRouter", "lean_handler"]
