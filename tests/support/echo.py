"""Handle on the echo upstream subprocess (see echo_app for its routes)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from ._proc import ServerProcess, http_ok
from .echo_app import DEFAULT_CHUNK, pattern_chunk


class EchoServer:
    """A running echo upstream: ``url`` is its base URL (http://127.0.0.1:<port>)."""

    def __init__(self, process: ServerProcess) -> None:
        self._process = process
        self.url = f"http://127.0.0.1:{process.port}"
        self._http = httpx.Client(base_url=self.url, timeout=30.0, trust_env=False)

    def stop(self) -> None:
        self._http.close()
        self._process.stop()

    def __enter__(self) -> EchoServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log_tail(self, limit: int = 6000) -> str:
        return self._process.log_tail(limit)

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        response = self._http.post(path, json=body)
        response.raise_for_status()
        return response.json()

    def accept_tokens(self, *tokens: str) -> None:
        """Bearer tokens accepted on /protected/... from now on (replaces the set)."""
        self._post("/_echo/accept-token", {"tokens": list(tokens)})

    def use_introspection(
        self, introspection_url: str | None, client_id: str = "", client_secret: str = ""
    ) -> None:
        """Check /introspected/... bearer tokens with RFC 7662 (client_secret_basic).

        ``None`` turns it off.
        """
        self._post(
            "/_echo/introspection",
            {"url": introspection_url, "client_id": client_id, "client_secret": client_secret},
        )

    def requests(self) -> list[dict[str, Any]]:
        """Requests received (method, path, query, headers, body_length), oldest first."""
        data: list[dict[str, Any]] = self._http.get("/_echo/requests").json()
        return data

    def clear_requests(self) -> None:
        self._http.delete("/_echo/requests").raise_for_status()

    def reset(self) -> None:
        """Forget accepted tokens, introspection settings and recorded requests."""
        self._post("/_echo/reset", {})


def expected_bytes(n: int) -> bytes:
    """What GET /bytes/{n} returns (byte i is i % 256). For small n only."""
    return pattern_chunk(0, n)


def expected_sha256(n: int) -> str:
    """SHA-256 of GET /bytes/{n}, computed chunk by chunk (fine for 200 MB)."""
    digest = hashlib.sha256()
    offset = 0
    while offset < n:
        size = min(DEFAULT_CHUNK, n - offset)
        digest.update(pattern_chunk(offset, size))
        offset += size
    return digest.hexdigest()


def start_echo(tmp_path: Path, *, timeout: float = 60.0) -> EchoServer:
    workdir = Path(tmp_path) / "echo"
    process = ServerProcess("echo", ["-m", "tests.support.echo_app"], workdir)
    process.start(lambda port: http_ok(f"http://127.0.0.1:{port}/_echo/health"), timeout)
    return EchoServer(process)
