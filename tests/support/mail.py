"""pytest plugin: a real SMTP server and a real webhook receiver on loopback, each on a
port the system chose. Enabled for every test layer by tests/conftest.py.

Fixtures:
  smtp_server       (function) aiosmtpd on 127.0.0.1: ``.port``, ``.messages`` (each an
                    ``email.message.Message``, with ``.envelope_to``), ``wait_for(n)``;
                    ``require_auth(username, password)`` makes it demand AUTH (over
                    plain SMTP, as AUTHPROFILES_SMTP_SECURITY=none sends it)
  webhook_receiver  (function) an HTTP server in a thread: ``.url``, ``.requests`` (each
                    ``Received(path, headers, body)``), ``wait_for(n)``,
                    ``script(500, 200, ...)`` answers the next requests with those
                    statuses (then 200)
  silent_smtp_server()  (a context manager, not a fixture) a server that accepts
                    connections and never answers: an unreachable mail server

Use them for the settings of the app under test, e.g.

    @pytest.fixture
    def settings(make_settings, smtp_server):
        return make_settings(smtp_host="127.0.0.1", smtp_port=smtp_server.port,
                             smtp_security="none", webhook_allow_private=True,
                             notification_tick_seconds=0.2, notification_retry_seconds=0.2)

``wait_for`` waits on a condition variable (no polling sleeps), with a generous timeout,
and raises ``AssertionError`` saying what arrived when fewer came.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

#: Long enough for a loaded CI machine; waits end as soon as the messages arrive.
WAIT_SECONDS = 30.0


class _Arrivals:
    """A list things arrive in from another thread, and a wait for the n-th."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self.items: list[Any] = []

    def add(self, item: Any) -> None:
        with self._condition:
            self.items.append(item)
            self._condition.notify_all()

    def wait_for(self, count: int, timeout: float, what: str) -> list[Any]:
        with self._condition:
            if not self._condition.wait_for(lambda: len(self.items) >= count, timeout):
                raise AssertionError(
                    f"expected {count} {what} within {timeout:g} s, got {len(self.items)}"
                )
            return list(self.items)


# -- SMTP -------------------------------------------------------------------------------------


class _Handler:
    def __init__(self, arrivals: _Arrivals) -> None:
        self.arrivals = arrivals

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content or b""
        raw = content if isinstance(content, bytes) else content.encode()
        message = email.message_from_bytes(raw, policy=email.policy.default)
        message.envelope_to = list(envelope.rcpt_tos)  # type: ignore[attr-defined]
        message.smtp_login = session.auth_data if session.authenticated else None  # type: ignore[attr-defined]
        self.arrivals.add(message)
        return "250 Message accepted for delivery"


class _Authenticator:
    def __init__(self) -> None:
        self.credentials: tuple[str, str] | None = None

    def __call__(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        if self.credentials is None:
            return AuthResult(success=True)
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        given = (auth_data.login.decode(), auth_data.password.decode())
        if given != self.credentials:
            # Not handled: aiosmtpd answers 535 itself.
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=auth_data.login.decode())


class _LoopbackController(Controller):
    """aiosmtpd's Controller on a port the system chose: it connects to its own port
    once started, so the port is read from the listening socket first."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@dataclass
class SmtpServer:
    port: int
    host: str = "127.0.0.1"
    _arrivals: _Arrivals = field(default_factory=_Arrivals)
    _authenticator: _Authenticator = field(default_factory=_Authenticator)

    @property
    def messages(self) -> list[Message]:
        return list(self._arrivals.items)

    def wait_for(self, count: int, timeout: float = WAIT_SECONDS) -> list[Message]:
        """The messages once ``count`` have arrived."""
        return self._arrivals.wait_for(count, timeout, "email(s)")

    def require_auth(self, username: str, password: str) -> None:
        """Accept only this login from now on (any login is accepted until then)."""
        self._authenticator.credentials = (username, password)


@contextmanager
def running_smtp_server(starttls: ssl.SSLContext | None = None) -> Iterator[SmtpServer]:
    """An SMTP server on loopback for the block. With ``starttls`` (a server context) it
    offers STARTTLS, requires it before mail, and takes a login only after it."""
    arrivals = _Arrivals()
    authenticator = _Authenticator()
    options: dict[str, Any] = (
        {"tls_context": starttls, "require_starttls": True}
        if starttls is not None
        # Without TLS, a login comes over plain SMTP (AUTHPROFILES_SMTP_SECURITY=none).
        else {"auth_require_tls": False}
    )
    controller = _LoopbackController(
        _Handler(arrivals),
        hostname="127.0.0.1",
        port=0,
        authenticator=authenticator,
        **options,
    )
    controller.start()
    try:
        yield SmtpServer(port=controller.port, _arrivals=arrivals, _authenticator=authenticator)
    finally:
        controller.stop()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    with running_smtp_server() as server:
        yield server


class SilentSmtpServer:
    """A server that takes connections on loopback and never says a word: an SMTP client
    waits for the greeting until its timeout. ``.port``; ``wait_for_connection()`` returns
    once a client has connected. Closing it (the end of ``silent_smtp_server``) hangs up
    on every client, whose wait then ends at once."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._arrivals = _Arrivals()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:  # closed
                return
            self._arrivals.add(connection)

    def wait_for_connection(self, timeout: float = WAIT_SECONDS) -> None:
        self._arrivals.wait_for(1, timeout, "SMTP connection(s)")

    def start(self) -> SilentSmtpServer:
        self._thread.start()
        return self

    def close(self) -> None:
        # shutdown() wakes the accept() blocked in the thread; close() alone may not.
        for held in (self._listener, *self._arrivals.items):
            with contextlib.suppress(OSError):
                held.shutdown(socket.SHUT_RDWR)
            held.close()
        self._thread.join(timeout=10)


@contextmanager
def silent_smtp_server() -> Iterator[SilentSmtpServer]:
    """A :class:`SilentSmtpServer` for the block."""
    server = SilentSmtpServer().start()
    try:
        yield server
    finally:
        server.close()


# -- webhooks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One request the receiver got: its path, headers (names lower-cased) and body."""

    path: str
    headers: dict[str, str]
    body: bytes
    #: The status it was answered with.
    status: int


class WebhookReceiver:
    def __init__(self) -> None:
        self._arrivals = _Arrivals()
        self._script: list[int] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status = receiver._next_status()
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                headers = {name.lower(): value for name, value in self.headers.items()}
                receiver._arrivals.add(Received(self.path, headers, body, status))

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/hooks/authprofiles"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _next_status(self) -> int:
        with self._lock:
            return self._script.pop(0) if self._script else 200

    def script(self, *statuses: int) -> None:
        """Answer the next requests with ``statuses``, in order; 200 after them."""
        with self._lock:
            self._script.extend(statuses)

    @property
    def requests(self) -> list[Received]:
        return list(self._arrivals.items)

    def wait_for(self, count: int, timeout: float = WAIT_SECONDS) -> list[Received]:
        """The requests once ``count`` have arrived."""
        return self._arrivals.wait_for(count, timeout, "webhook request(s)")

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()


def mail_settings(smtp_server: SmtpServer, username: str, password: str) -> dict[str, Any]:
    """Settings (for ``make_settings``) that send email through the suite's ``smtp_server``,
    which from now on asks for ``username`` and ``password``, and webhooks to loopback
    (where the suite's receiver listens); the app's notification worker stays idle (the
    tests run delivery passes themselves)."""
    smtp_server.require_auth(username, password)
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_server.port,
        "smtp_security": "none",
        "smtp_username": username,
        "smtp_password": password,
        "smtp_from": "alerts@authprofiles.example.com",
        "webhook_allow_private": True,
        "notification_tick_seconds": 3600,
    }
