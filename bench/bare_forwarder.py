"""The least a Python proxy can do: a bare ASGI app on uvicorn that sends each request to
the upstream with aiohttp and relays the answer. No API key, no policy, no token, no
injection, no streaming, no error handling: a reference for what the server and client
libraries alone cost, measured beside the real proxy (bench/proxy_bench.py).

    python -m bench.bare_forwarder <upstream base URL> <port>
"""

from __future__ import annotations

import sys
from typing import Any

import aiohttp
import uvicorn
import yarl

_SKIP_REQUEST = {b"host", b"authorization", b"connection"}
_SKIP_RESPONSE = {b"date", b"server", b"connection", b"transfer-encoding"}


class BareForwarder:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            if self.session is not None:
                await self.session.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if self.session is None:
            self.session = aiohttp.ClientSession(auto_decompress=False)
        target = self.upstream + scope["raw_path"].decode("latin-1")
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode("latin-1")
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in scope["headers"]
            if k not in _SKIP_REQUEST
        ]
        async with self.session.request(
            scope["method"], yarl.URL(target, encoded=True), headers=headers
        ) as response:
            body = await response.read()
            out = [(k.lower(), v) for k, v in response.raw_headers]
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": [(k, v) for k, v in out if k not in _SKIP_RESPONSE],
                }
            )
            await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    uvicorn.run(
        BareForwarder(sys.argv[1]),
        host="127.0.0.1",
        port=int(sys.argv[2]),
        log_level="warning",
        access_log=False,
    )
