"""A fast local token endpoint: any POST is answered with a new access and refresh token,
as an authorization server that rotates refresh tokens answers a refresh (RFC 6749
section 5.1). No framework, no database: what it costs is the floor of one renewal's
round trip. ``GET /healthz`` answers 200; ``GET /count`` how many tokens it issued.

    python -m uvicorn bench.token_endpoint:app --port 9000 --no-access-log
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_issued = 0
_JSON = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": _JSON})
    await send({"type": "http.response.body", "body": body})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    global _issued
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    more = True
    while more:  # the request body, read and dropped
        more = (await receive()).get("more_body", False)
    if scope["method"] == "GET":
        if scope["path"] == "/count":
            await _answer(send, 200, json.dumps({"issued": _issued}).encode())
        else:
            await _answer(send, 200, b'{"status": "ok"}')
        return
    _issued += 1
    token = {
        "access_token": secrets.token_urlsafe(24),
        "refresh_token": secrets.token_urlsafe(24),
        "token_type": "Bearer",
        "expires_in": 3600,
    }
    await _answer(send, 200, json.dumps(token).encode())
