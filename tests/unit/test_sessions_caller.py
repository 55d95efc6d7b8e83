"""The caller middleware with sessions: a bearer key wins and never touches the session
store; a session cookie resolves to the person, needs the CSRF header on unsafe methods,
and a rotated token goes out as Set-Cookie; each principal carries its request's address."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from authprofiles.api.caller import CallerMiddleware, principal_of
from authprofiles.core.callers import CallerKind, Principal, Role
from authprofiles.core.errors import DomainError, Unauthenticated
from authprofiles.services.signin import ActiveSession

KEY_PRINCIPAL = Principal(workspace_id="ws", role=Role.ADMIN, key_id="k1", name="ci")
PERSON = Principal(
    workspace_id="ws", role=Role.DEVELOPER, name="jane@example.com", user_id="u1",
    kind=CallerKind.USER, session_id="s1",
)  # fmt: skip
EXPIRES = datetime(2030, 1, 1, tzinfo=UTC)


class Keys:
    def cached(self, presented: str, address: str | None = None) -> Principal | None:
        return replace(KEY_PRINCIPAL, address=address) if presented == "ap_a_b" else None

    def authenticate(self, presented: str | None, address: str | None = None) -> Principal:
        raise Unauthenticated("send an API key as `Authorization: Bearer <key>`")


class FakeSessions:
    def __init__(self, rotate_to: str | None = None) -> None:
        self.seen: list[tuple[str | None, str | None]] = []
        self.rotate_to = rotate_to

    def resolve(self, token: str | None, address: str | None = None) -> ActiveSession:
        self.seen.append((token, address))
        if token != "good-token":
            raise Unauthenticated("your session has ended; sign in again")
        principal = Principal(**{**PERSON.__dict__, "address": address})
        return ActiveSession(principal, "the-csrf", self.rotate_to, EXPIRES)

    def cookie(self, token: str, expires_at: datetime) -> str:
        return f"authprofiles_session={token}; Path=/; HttpOnly; SameSite=Lax"


def app_answering_the_caller() -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        status, body = 200, b""
        try:
            principal = await principal_of(Request(scope, receive))
            body = f"{principal.kind.value} {principal.name} {principal.address}".encode()
        except DomainError as exc:
            status, body = (403 if "CSRF" in exc.detail else 401), exc.detail.encode()
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return app


def call(app: Any, method: str, *headers: tuple[bytes, bytes]) -> tuple[int, str, list[bytes]]:
    scope: Scope = {
        "type": "http",
        "method": method,
        "path": "/x",
        "raw_path": b"/x",
        "query_string": b"",
        "headers": list(headers),
        "client": ("203.0.113.7", 50000),
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    cookies = [v for k, v in sent[0]["headers"] if k == b"set-cookie"]
    return sent[0]["status"], sent[1]["body"].decode(), cookies


COOKIE = (b"cookie", b"other=1; authprofiles_session=good-token")


def test_a_bearer_key_wins_and_the_session_store_is_not_asked() -> None:
    sessions = FakeSessions()
    app = CallerMiddleware(app_answering_the_caller(), Keys(), sessions)
    status, body, _ = call(app, "POST", (b"authorization", b"Bearer ap_a_b"), COOKIE)
    assert (status, body) == (200, "api_key ci 203.0.113.7")
    assert sessions.seen == []


def test_a_session_cookie_resolves_to_the_person_with_the_address() -> None:
    sessions = FakeSessions()
    app = CallerMiddleware(app_answering_the_caller(), Keys(), sessions)
    assert call(app, "GET", COOKIE)[:2] == (200, "user jane@example.com 203.0.113.7")
    assert sessions.seen == [("good-token", "203.0.113.7")]


def test_an_unsafe_method_with_the_cookie_needs_the_csrf_header() -> None:
    app = CallerMiddleware(app_answering_the_caller(), Keys(), FakeSessions())
    assert call(app, "POST", COOKIE)[0] == 403
    assert call(app, "DELETE", COOKIE, (b"x-csrf-token", b"wrong"))[0] == 403
    assert call(app, "POST", COOKIE, (b"x-csrf-token", b"the-csrf"))[0] == 200
    for safe in ("GET", "HEAD", "OPTIONS"):
        assert call(app, safe, COOKIE)[0] == 200


def test_an_ended_session_or_no_credential_is_401() -> None:
    app = CallerMiddleware(app_answering_the_caller(), Keys(), FakeSessions())
    assert call(app, "GET", (b"cookie", b"authprofiles_session=stale"))[0] == 401
    status, body, _ = call(app, "GET")
    assert (status, body) == (401, "send an API key as `Authorization: Bearer <key>`")


def test_a_rotated_token_goes_out_as_set_cookie() -> None:
    app = CallerMiddleware(app_answering_the_caller(), Keys(), FakeSessions("new-token"))
    status, _, cookies = call(app, "GET", COOKIE)
    assert status == 200
    assert cookies == [b"authprofiles_session=new-token; Path=/; HttpOnly; SameSite=Lax"]
    assert (
        call(CallerMiddleware(app_answering_the_caller(), Keys(), FakeSessions()), "GET", COOKIE)[2]
        == []
    )
