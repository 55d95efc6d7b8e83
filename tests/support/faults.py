"""FaultProxy: an HTTP relay in front of an upstream (usually the IdP) that can misbehave.

It runs in a background thread of the test process, on 127.0.0.1 and a free port.
Paths are preserved: ``faults.url + "/o/token/"`` reaches ``upstream + "/o/token/"``.

Modes (``faults.mode = ...`` or ``faults.set_mode(...)``):

* ``"pass"``        forward the request and relay the answer (Host rewritten to upstream)
* ``"status_500"``  answer 500 with a small text body
* ``"timeout"``     accept, read the request, answer nothing for ``hold_seconds``, close
* ``"truncated"``   send headers with a Content-Length larger than the body sent, close
* ``"bad_json"``    200, ``application/json``, body ``{not json``

A fault is produced by the relay itself, so the upstream never sees the request,
unless ``forward=True``: then the request is forwarded first (the IdP acts on it, e.g.
rotates the refresh token) and only the answer is replaced by the fault.
"""

from __future__ import annotations

import http.client
import socket
import socketserver
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, cast, get_args
from urllib.parse import urlsplit

# Hop-by-hop headers (RFC 9110 7.6.1) are never relayed: the proxy's own list.
from authprofiles.services.proxy import HOP_BY_HOP

Mode = Literal["pass", "status_500", "timeout", "truncated", "bad_json"]
MODES: tuple[str, ...] = get_args(Mode)

_CHUNK = 64 * 1024


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str  # with query string
    mode: str  # what the relay did: "pass" or the fault mode


@dataclass
class _Rule:
    mode: Mode = "pass"
    remaining: int | None = None  # None: until changed
    path_prefix: str = ""
    hold_seconds: float = 30.0
    forward: bool = False


class FaultProxy:
    """Relay with switchable faults. ``url`` is its base URL; start() is done on init."""

    def __init__(self, upstream: str, *, hold_seconds: float = 30.0) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http:// base URL, got {upstream!r}")
        self.upstream = upstream.rstrip("/")
        self._upstream_host = parts.hostname
        self._upstream_port = parts.port or 80
        self._upstream_netloc = parts.netloc
        self._upstream_prefix = parts.path.rstrip("/")
        self._lock = threading.Lock()
        self._rule = _Rule(hold_seconds=hold_seconds)
        self._default_hold = hold_seconds
        self._seen: list[SeenRequest] = []
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.relay = self
        self.port: int = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"FaultProxy:{self.port}",
            daemon=True,
        )
        self._thread.start()

    # -- control -----------------------------------------------------------------

    @property
    def mode(self) -> Mode:
        with self._lock:
            return self._rule.mode

    @mode.setter
    def mode(self, mode: Mode) -> None:
        self.set_mode(mode)

    def set_mode(
        self,
        mode: Mode,
        *,
        times: int | None = None,
        path_prefix: str = "",
        hold_seconds: float | None = None,
        forward: bool = False,
    ) -> None:
        """Switch mode.

        times:        apply the fault to that many matching requests, then back to "pass"
        path_prefix:  only requests whose path starts with it (e.g. "/o/token/") fault
        hold_seconds: how long "timeout" holds the connection (default from __init__)
        forward:      forward the request upstream first, then answer with the fault
        """
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {MODES}")
        with self._lock:
            self._rule = _Rule(
                mode=mode,
                remaining=times,
                path_prefix=path_prefix,
                hold_seconds=self._default_hold if hold_seconds is None else hold_seconds,
                forward=forward,
            )

    def reset(self) -> None:
        """Back to "pass" and forget the requests seen."""
        self.set_mode("pass")
        with self._lock:
            self._seen.clear()

    @property
    def requests(self) -> int:
        """Number of requests received (whatever was done with them)."""
        with self._lock:
            return len(self._seen)

    def seen(self) -> list[SeenRequest]:
        with self._lock:
            return list(self._seen)

    def requests_to(self, path_prefix: str) -> int:
        with self._lock:
            return sum(1 for r in self._seen if r.path.startswith(path_prefix))

    # -- lifecycle ---------------------------------------------------------------

    def stop(self) -> None:
        self._stopping.set()  # releases connections held by "timeout"
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:  # idle keep-alive connections: wake their threads
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- used by the handler -----------------------------------------------------

    def _decide(self, method: str, path: str) -> _Rule | None:
        """Record the request; return the fault rule to apply, or None to pass."""
        with self._lock:
            rule = self._rule
            applies = rule.mode != "pass" and path.startswith(rule.path_prefix)
            if applies and rule.remaining is not None:
                rule.remaining -= 1
                if rule.remaining <= 0:
                    self._rule = _Rule(hold_seconds=self._default_hold)
            self._seen.append(SeenRequest(method, path, rule.mode if applies else "pass"))
            return rule if applies else None

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many clients connecting at once
    relay: FaultProxy

    def server_bind(self) -> None:
        # HTTPServer.server_bind would resolve the host name (getfqdn): skip that.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-answer are expected here (timeouts, truncation).
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real server
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.relay._track(self.connection, add=True)

    def finish(self) -> None:
        self.server.relay._track(self.connection, add=False)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests inspect seen() instead

    def _handle(self) -> None:
        relay = self.server.relay
        body = self._read_body()
        rule = relay._decide(self.command, self.path)
        if rule is None:
            self._forward(body, relay_answer=True)
            return
        if rule.forward:
            self._forward(body, relay_answer=False)
        self._fault(rule)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()  # CRLF after each chunk
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _forward(self, body: bytes, relay_answer: bool) -> None:
        relay = self.server.relay
        upstream = http.client.HTTPConnection(
            relay._upstream_host, relay._upstream_port, timeout=120
        )
        try:
            upstream.putrequest(
                self.command,
                relay._upstream_prefix + self.path,
                skip_host=True,
                skip_accept_encoding=True,
            )
            # Headers as received (repeats kept), but Host names the upstream, and the
            # body, de-chunked if need be, goes with a plain Content-Length.
            for name, value in self.headers.items():
                if name.lower() not in HOP_BY_HOP | {"host", "content-length"}:
                    upstream.putheader(name, value)
            upstream.putheader("Host", relay._upstream_netloc)
            if body or self.command in ("POST", "PUT", "PATCH"):
                upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body or None)
            response = upstream.getresponse()
            if relay_answer:
                self._relay_response(response)
            else:
                response.read()
        except OSError as exc:
            if relay_answer:
                self._simple(502, f"FaultProxy: upstream unreachable: {exc}\n".encode())
        finally:
            upstream.close()

    def _relay_response(self, response: http.client.HTTPResponse) -> None:
        self.send_response_only(response.status, response.reason)
        length = response.getheader("Content-Length")
        has_body = self.command != "HEAD" and response.status not in (204, 304)
        chunked = has_body and length is None
        for name, value in response.getheaders():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if not has_body:
            return
        while chunk := response.read(_CHUNK):  # streamed, never whole in memory
            if chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            else:
                self.wfile.write(chunk)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def _simple(
        self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8"
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _fault(self, rule: _Rule) -> None:
        mode = rule.mode
        if mode == "status_500":
            self._simple(500, b"FaultProxy: injected 500\n")
        elif mode == "bad_json":
            self._simple(200, b"{not json", "application/json")
        elif mode == "truncated":
            body = b'{"access_token": "trunc'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body) + 1000))  # promise more
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True  # then hang up mid-body
        elif mode == "timeout":
            # Say nothing; the client's read timeout is what is being tested.
            self.server.relay._stopping.wait(rule.hold_seconds)
            self.close_connection = True
        else:  # pragma: no cover - guarded by set_mode
            raise AssertionError(cast(str, mode))
