"""A hot operation is declared once, like any FastAPI route: the schema describes it as it
would the same route, and it is served without the dependency solver."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, Request, Response
from fastapi.security import HTTPBearer
from fastapi.testclient import TestClient
from pydantic import BaseModel

from authprofiles.api.hot import HotRoute, HotRouter


class Bearer(HTTPBearer):
    def __init__(self) -> None:
        super().__init__(auto_error=False, description="A key")

    async def __call__(self, request: Request) -> str:  # type: ignore[override]
        return request.headers.get("authorization", "nobody")


def stamp(request: Request) -> str:
    return request.url.path


Caller = Annotated[str, Depends(Bearer())]
Stamp = Annotated[str, Depends(stamp)]


class Thing(BaseModel):
    id: str


async def get_thing(thing_id: str, caller: Caller, stamp: Stamp) -> Response:
    """A thing, as its caller may see it."""
    return Response(f"{thing_id} for {caller} at {stamp}".encode(), media_type="text/plain")


OPTIONS: dict[str, Any] = {
    "response_model": Thing,
    "responses": {404: {"description": "No such thing"}},
    "tags": ["things"],
}


def hot_app() -> FastAPI:
    hot = HotRouter(tags=OPTIONS["tags"])
    hot.get("/things/{thing_id}", **{k: v for k, v in OPTIONS.items() if k != "tags"})(get_thing)
    app = FastAPI()
    app.router.routes[:0] = hot.routes("/v1")
    return app


def test_the_schema_describes_a_hot_operation_as_it_would_the_same_route() -> None:
    plain = FastAPI()
    plain.get("/v1/things/{thing_id}", **OPTIONS)(get_thing)
    assert hot_app().openapi() == plain.openapi()


def test_a_hot_operation_gets_its_path_parameters_and_dependencies() -> None:
    with TestClient(hot_app()) as client:
        answer = client.get("/v1/things/t-1", headers={"Authorization": "Bearer k"})
    assert answer.status_code == 200
    assert answer.text == "t-1 for Bearer k at /v1/things/t-1"


def test_a_hot_route_is_matched_ahead_of_the_apps_own() -> None:
    app = hot_app()

    @app.get("/v1/things/{thing_id}")
    def shadowed(thing_id: str) -> str:
        return "the slow one"

    assert isinstance(app.router.routes[0], HotRoute)
    with TestClient(app) as client:
        assert client.get("/v1/things/t-1").text == "t-1 for nobody at /v1/things/t-1"


async def with_query(thing_id: str, limit: int = 5) -> Response:
    raise AssertionError


async def with_number(thing_id: int) -> Response:
    raise AssertionError


def needs_more(request: Request, stamp: Stamp) -> str:
    return stamp


async def with_nested(thing_id: str, more: Annotated[str, Depends(needs_more)]) -> Response:
    raise AssertionError


def without_await(thing_id: str) -> Response:
    raise AssertionError


@pytest.mark.parametrize(
    ("endpoint", "complaint"),
    [
        (with_query, "takes no 'limit'"),
        (with_number, "'thing_id' must be a str"),
        (with_nested, "'more' must depend on the request alone"),
        (without_await, "is a coroutine function"),
    ],
)
def test_what_the_solver_would_be_needed_for_is_refused_when_declared(
    endpoint: Any, complaint: str
) -> None:
    hot = HotRouter()
    hot.get("/things/{thing_id}")(endpoint)
    with pytest.raises(TypeError, match=complaint):
        hot.routes()
