"""proxy.py plugin (and entry point) for the egress ForwardProxy: records what it forwards.

Runs only inside the proxy.py subprocess:

    python -m tests.support.proxy_recorder --port 0 --port-file ... (proxy.py flags)

Every forwarded request is appended as one line ``METHOD URL`` to the file named by
SUPPORT_PROXY_RECORD (HTTPS tunnels: ``CONNECT host:port``). proxy.py serves from
several processes, so each line is a single O_APPEND write (atomic for short lines).
"""

from __future__ import annotations

import os

from proxy.common.utils import text_
from proxy.http.exception import HttpRequestRejected
from proxy.http.parser import HttpParser
from proxy.http.proxy import HttpProxyBasePlugin


def _record(line: str) -> None:
    fd = os.open(os.environ["SUPPORT_PROXY_RECORD"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, (line.replace("\n", " ") + "\n").encode())
    finally:
        os.close(fd)


class RecordingPlugin(HttpProxyBasePlugin):
    """Records each request; one plain-HTTP request per client connection; streams.

    proxy.py binds a client connection to the upstream of its FIRST request and sends
    later keep-alive requests there whatever their absolute URL says: a client reusing
    its proxy connection for another origin would silently reach the wrong server.
    So every forwarded request carries ``Connection: close`` (the upstream closes, so
    does proxy.py, and the client opens a new proxy connection next time); should a
    second request for another origin still arrive on a connection, it gets a 502.
    (True HTTP pipelining, several requests sent before the first answer, stalls in
    proxy.py; no common client pipelines.)
    """

    _origin: tuple[bytes | None, int | None] | None = None

    def handle_client_request(self, request: HttpParser) -> HttpParser | None:
        method = text_(request.method or b"")
        if request.is_https_tunnel:
            _record(f"{method} {text_(request.host)}:{request.port}")
            return request
        origin = (request.host, request.port)
        if self._origin is not None and origin != self._origin:
            raise HttpRequestRejected(
                status_code=502, reason=b"Bad Gateway (one origin per proxy connection)"
            )
        self._origin = origin
        _record(f"{method} http://{text_(request.host)}:{request.port}{text_(request.path)}")
        request.del_header(b"connection")
        request.add_header(b"Connection", b"close")
        return request

    def handle_upstream_chunk(self, chunk: memoryview) -> memoryview | None:
        if self._origin is None:  # CONNECT tunnel: opaque bytes, proxy.py relays as is
            return chunk
        # proxy.py parses plain-HTTP responses and accumulates the body with
        # `body += chunk` (quadratic: 200 MB took ~100 s). With one request per
        # connection it needs no parsed response, so hand the bytes to the client here
        # and return None to skip that parsing.
        self.client.queue(chunk)
        return None


def main() -> None:
    from tests.support import _child

    _child.exit_with_parent()
    import proxy

    proxy.main()  # reads its flags from sys.argv


if __name__ == "__main__":
    main()
