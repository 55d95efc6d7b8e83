"""The echo upstream: a tiny raw-ASGI app served by uvicorn in a subprocess.

    python -m tests.support.echo_app      (started by tests.support.echo.start_echo)

Routes (any method unless noted):
  /status/{code}          answer that status (echo JSON as body, if the status allows one)
  /delay/{seconds}        answer the echo after sleeping (for upstream-timeout tests)
  /bytes/{n}              stream n bytes in ?chunk= (default 64 KiB) chunks; byte i is i % 256
  /protected/...          401 unless "Authorization: Bearer <t>" with t set by accept-token
  /introspected/...       401 unless the bearer token is active per RFC 7662 introspection
  POST /_echo/accept-token   {"tokens": [...]} or {"token": "..."}: the accepted set, replaced
  POST /_echo/introspection  {"url", "client_id", "client_secret"} (null url: off)
  GET  /_echo/requests       recent requests (not /_echo/ ones); DELETE clears them
  POST /_echo/reset          forget tokens, introspection settings and recorded requests
  GET  /_echo/health
  anything else           200 with the echo JSON:
      {method, path, raw_path, query, headers, body, body_length, json, form}
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, parse_qsl

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

DEFAULT_CHUNK = 64 * 1024
_PATTERN = bytes(range(256))


class _State:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.accepted_tokens: set[str] = set()
        self.introspection: dict[str, str] | None = None
        self.requests: deque[dict[str, Any]] = deque(maxlen=1000)


state = _State()


def pattern_chunk(offset: int, size: int) -> bytes:
    """Bytes [offset, offset + size) of the infinite 0..255 pattern."""
    start = offset % 256
    repeats = (start + size) // 256 + 1
    return (_PATTERN * repeats)[start : start + size]


async def _read_body(receive: Receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts)


def _headers(scope: Scope) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _echo(scope: Scope, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    text = body.decode("utf-8", "replace")
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    parsed_json: Any = None
    form: dict[str, Any] | None = None
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            parsed_json = json.loads(text)
        except ValueError:
            parsed_json = None
    elif content_type == "application/x-www-form-urlencoded":
        # Repeated keys become lists, single ones plain strings.
        pairs = parse_qs(text, keep_blank_values=True)
        form = {k: v[0] if len(v) == 1 else v for k, v in pairs.items()}
    return {
        "method": scope["method"],
        "path": scope["path"],
        "raw_path": scope.get("raw_path", scope["path"].encode()).decode("latin-1"),
        "query": scope.get("query_string", b"").decode("latin-1"),
        "headers": headers,
        "body": text,
        "body_length": len(body),
        "json": parsed_json,
        "form": form,
    }


async def _send_json(
    send: Send, status: int, payload: Any, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    no_body = status < 200 or status in (204, 304)
    body = b"" if no_body else json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json")] + (extra or [])
    if not no_body:
        headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _bearer(headers: dict[str, str]) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def _introspect(token: str) -> bool:
    import httpx

    config = state.introspection
    if not config:
        return False
    basic = base64.b64encode(f"{config['client_id']}:{config['client_secret']}".encode()).decode()
    async with httpx.AsyncClient(timeout=10.0, trust_env=False) as client:
        response = await client.post(
            config["url"], data={"token": token}, headers={"Authorization": f"Basic {basic}"}
        )
    return response.status_code == 200 and response.json().get("active") is True


async def _stream_bytes(scope: Scope, send: Send, total: int) -> None:
    query = dict(parse_qsl(scope.get("query_string", b"").decode()))
    chunk = max(1, int(query.get("chunk", DEFAULT_CHUNK)))
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/octet-stream"),
                (b"content-length", str(total).encode()),
            ],
        }
    )
    # One chunk in memory at a time; uvicorn applies back-pressure on send().
    sent = 0
    while sent < total:
        size = min(chunk, total - sent)
        await send(
            {
                "type": "http.response.body",
                "body": pattern_chunk(sent, size),
                "more_body": sent + size < total,
            }
        )
        sent += size
    if total == 0:
        await send({"type": "http.response.body", "body": b""})


async def _control(scope: Scope, send: Send, body: bytes) -> None:
    path, method = scope["path"], scope["method"]
    data: dict[str, Any] = json.loads(body) if body.strip() else {}
    if path == "/_echo/health":
        await _send_json(send, 200, {"ok": True})
    elif path == "/_echo/accept-token" and method == "POST":
        tokens = data.get("tokens")
        if tokens is None:
            tokens = [data["token"]] if data.get("token") else []
        state.accepted_tokens = set(tokens)
        await _send_json(send, 200, {"accepted": sorted(state.accepted_tokens)})
    elif path == "/_echo/introspection" and method == "POST":
        state.introspection = data if data.get("url") else None
        await _send_json(send, 200, {"enabled": state.introspection is not None})
    elif path == "/_echo/requests":
        if method == "DELETE":
            state.requests.clear()
        await _send_json(send, 200, list(state.requests))
    elif path == "/_echo/reset" and method == "POST":
        state.reset()
        await _send_json(send, 200, {"ok": True})
    else:
        await _send_json(send, 404, {"error": "unknown control endpoint"})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    path: str = scope["path"]
    body = await _read_body(receive)
    if path.startswith("/_echo/"):
        await _control(scope, send, body)
        return
    headers = _headers(scope)
    state.requests.append(
        {
            "method": scope["method"],
            "path": path,
            "query": scope.get("query_string", b"").decode("latin-1"),
            "headers": headers,
            "body_length": len(body),
        }
    )
    segments = path.strip("/").split("/")
    try:
        if segments[0] == "bytes" and len(segments) == 2:
            await _stream_bytes(scope, send, int(segments[1]))
            return
        status = 200
        if segments[0] == "status" and len(segments) == 2:
            status = int(segments[1])
            HTTPStatus(status)  # reject nonsense codes with a 400 below
        elif segments[0] == "delay" and len(segments) == 2:
            await asyncio.sleep(float(segments[1]))
    except ValueError:
        await _send_json(send, 400, {"error": f"bad path {path}"})
        return
    if segments[0] in ("protected", "introspected"):
        token = _bearer(headers)
        if segments[0] == "protected":
            allowed = token is not None and token in state.accepted_tokens
        else:
            allowed = token is not None and await _introspect(token)
        if not allowed:
            challenge = b'Bearer error="invalid_token"' if token else b"Bearer"
            await _send_json(
                send,
                401,
                {"error": "invalid_token" if token else "missing_token"},
                [(b"www-authenticate", challenge)],
            )
            return
    await _send_json(send, status, _echo(scope, headers, body))


def main() -> None:
    from tests.support import _child

    _child.exit_with_parent()
    sock = _child.bind_loopback()
    _child.announce_port(sock.getsockname()[1])
    _child.serve_asgi(app, sock)


if __name__ == "__main__":
    main()
