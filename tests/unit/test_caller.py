"""The caller middleware resolves a request's principal once, from its bearer API key, and
only where something asks for it; a refusal is remembered and raised there alone."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from authprofiles.api.access_log import AccessLog
from authprofiles.api.caller import CALLER, Caller, CallerMiddleware, bearer_key, principal_of
from authprofiles.core.callers import Principal, Role
from authprofiles.core.errors import Unauthenticated

ALICE = Principal(workspace_id="ws", role=Role.DEVELOPER, key_id="k1", name="alice")


class FakeKeys:
    """A key store: ``known`` keys verify (through the database, counted); ``recent`` ones
    are in the in-memory cache."""

    def __init__(self, known: dict[str, Principal], recent: dict[str, Principal]) -> None:
        self.known, self.recent = known, recent
        self.verified: list[str | None] = []

    def cached(self, presented: str, address: str | None = None) -> Principal | None:
        return self.recent.get(presented)

    def authenticate(self, presented: str | None, address: str | None = None) -> Principal:
        self.verified.append(presented)
        if not presented:
            raise Unauthenticated("send an API key as `Authorization: Bearer <key>`")
        if presented not in self.known:
            raise Unauthenticated("unknown or revoked API key")
        return self.known[presented]


def scope_with(*headers: tuple[bytes, bytes]) -> Scope:
    return {
        "type": "http",
        "method": "GET",
        "path": "/x",
        "raw_path": b"/x",
        "query_string": b"",
        "headers": list(headers),
    }


@pytest.mark.parametrize(
    ("value", "key"),
    [
        (b"Bearer ap_a_b", "ap_a_b"),
        (b"bearer  ap_a_b ", "ap_a_b"),  # RFC 6750 section 2.1: the scheme is case-insensitive
        (b"BEARER ap_a_b", "ap_a_b"),
        (b"Basic dXNlcjpwdw==", None),
        (b"Bearer", None),
        (b"Bearer   ", None),
        (b"", None),
    ],
)
def test_the_key_is_the_credential_of_a_bearer_authorization(value: bytes, key: str | None) -> None:
    assert bearer_key(scope_with((b"authorization", value))) == key


def test_without_an_authorization_header_there_is_no_key() -> None:
    assert bearer_key(scope_with((b"accept", b"*/*"))) is None


def test_a_cached_key_resolves_without_verifying_it_again() -> None:
    keys = FakeKeys(known={}, recent={"ap_a_b": ALICE})
    caller = Caller("ap_a_b", keys)
    assert asyncio.run(caller.principal()) is ALICE
    assert keys.verified == []
    assert caller.name == "alice"


def test_a_key_not_in_the_cache_is_verified_once_per_request() -> None:
    keys = FakeKeys(known={"ap_a_b": ALICE}, recent={})
    caller = Caller("ap_a_b", keys)

    async def twice() -> list[Principal]:
        return [await caller.principal(), await caller.principal()]

    assert asyncio.run(twice()) == [ALICE, ALICE]
    assert keys.verified == ["ap_a_b"]


@pytest.mark.parametrize("key", [None, "ap_nope_nope"])
def test_a_refusal_is_remembered_and_raised_each_time_it_is_asked(key: str | None) -> None:
    keys = FakeKeys(known={"ap_a_b": ALICE}, recent={})
    caller = Caller(key, keys)

    async def twice() -> list[Unauthenticated]:
        refusals = []
        for _ in range(2):
            with pytest.raises(Unauthenticated) as refused:
                await caller.principal()
            refusals.append(refused.value)
        return refusals

    first, second = asyncio.run(twice())
    assert first is second
    assert keys.verified == [key]
    assert caller.name is None


def _app(*, needs_caller: bool) -> Any:
    """An app behind the middleware, which asks for the principal or not, and answers
    with its name, or the refusal's detail."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body = b"anyone"
        status = 200
        if needs_caller:
            try:
                body = (await principal_of(Request(scope, receive))).name.encode()
            except Unauthenticated as exc:
                status, body = 401, exc.detail.encode()
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return app


def call(app: Any, scope: Scope) -> tuple[int, bytes]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], sent[1]["body"]


def test_a_route_needing_no_caller_answers_whatever_key_came() -> None:
    keys = FakeKeys(known={}, recent={})
    app = CallerMiddleware(_app(needs_caller=False), keys)
    assert call(app, scope_with((b"authorization", b"Bearer ap_nope_nope"))) == (200, b"anyone")
    assert call(app, scope_with()) == (200, b"anyone")
    assert keys.verified == []  # nothing asked, so nothing was checked


def test_a_route_needing_a_caller_gets_the_principal_or_the_refusal() -> None:
    keys = FakeKeys(known={"ap_a_b": ALICE}, recent={})
    app = CallerMiddleware(_app(needs_caller=True), keys)
    assert call(app, scope_with((b"authorization", b"Bearer ap_a_b"))) == (200, b"alice")
    assert call(app, scope_with()) == (
        401,
        b"send an API key as `Authorization: Bearer <key>`",
    )
    assert call(app, scope_with((b"authorization", b"Bearer ap_nope_nope"))) == (
        401,
        b"unknown or revoked API key",
    )


def test_the_caller_is_left_in_the_scope_state_the_access_log_reads(
    caplog: pytest.LogCaptureFixture,
) -> None:
    keys = FakeKeys(known={"ap_a_b": ALICE}, recent={})
    app = AccessLog(CallerMiddleware(_app(needs_caller=True), keys))
    scope = scope_with((b"authorization", b"Bearer ap_a_b"))
    with caplog.at_level("INFO", logger="authprofiles.access"):
        call(app, scope)
        call(AccessLog(CallerMiddleware(_app(needs_caller=False), keys)), scope_with())
    assert isinstance(scope["state"][CALLER], Caller)
    served, anonymous = (r for r in caplog.records if r.name == "authprofiles.access")
    assert served.caller == "alice"  # type: ignore[attr-defined]
    assert anonymous.caller == "-"  # type: ignore[attr-defined]
