"""A real HTTP forward proxy (proxy.py, in a subprocess) that records what it forwarded.

Clients use it as ``HTTP_PROXY``/``proxy=``: plain-HTTP requests arrive in absolute
form (``GET http://127.0.0.1:8000/x HTTP/1.1``) and are forwarded; HTTPS would be
tunnelled with CONNECT. ``forwarded()`` lists the URLs in arrival order.
"""

from __future__ import annotations

import socket
from pathlib import Path
from types import TracebackType

from ._proc import ServerProcess


def _accepts(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=2.0):
        return True


class ForwardProxy:
    """``url`` is http://127.0.0.1:<port>; ``forwarded()`` what went through it."""

    def __init__(self, process: ServerProcess, record_path: Path) -> None:
        self._process = process
        self._record_path = record_path
        self.url = f"http://127.0.0.1:{process.port}"

    def forwarded(self) -> list[str]:
        """URLs forwarded, in order: ``"http://127.0.0.1:1234/path?q"`` (``"host:443"``
        for a CONNECT tunnel)."""
        return [line.split(" ", 1)[1] for line in self.forwarded_requests()]

    def forwarded_requests(self) -> list[str]:
        """Like ``forwarded()`` with the method: ``"GET http://127.0.0.1:1234/path?q"``."""
        try:
            text = self._record_path.read_text()
        except FileNotFoundError:
            return []
        return [line for line in text.splitlines() if line]

    def clear(self) -> None:
        self._record_path.write_text("")

    def log_tail(self, limit: int = 6000) -> str:
        return self._process.log_tail(limit)

    def stop(self) -> None:
        self._process.stop()

    def __enter__(self) -> ForwardProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_forward_proxy(tmp_path: Path, *, timeout: float = 60.0) -> ForwardProxy:
    workdir = Path(tmp_path) / "forward_proxy"
    workdir.mkdir(parents=True, exist_ok=True)
    record_path = workdir / "forwarded.txt"
    record_path.write_text("")
    process = ServerProcess(
        "forward_proxy",
        [
            "-m",
            "tests.support.proxy_recorder",
            "--hostname",
            "127.0.0.1",
            "--port",
            "0",
            "--port-file",
            str(workdir / "forward_proxy.port"),
            "--plugins",
            "tests.support.proxy_recorder.RecordingPlugin",
            # One acceptor process is plenty for tests and starts fastest.
            "--num-acceptors",
            "1",
            # Idle connections (e.g. a slow upstream) are cut after --timeout seconds.
            "--timeout",
            "120",
            "--log-level",
            "WARNING",
        ],
        workdir,
        env={"SUPPORT_PROXY_RECORD": str(record_path)},
    )
    process.start(_accepts, timeout)
    return ForwardProxy(process, record_path)
