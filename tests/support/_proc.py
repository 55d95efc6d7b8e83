"""Parent-side management of a server subprocess: start, wait until it answers, stop.

Output goes to a log file (a pipe nobody reads would fill up and stall the server);
its tail is put in every error so a failed start explains itself.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]


class ServerStartError(RuntimeError):
    """The subprocess died or did not answer in time; the message has its log tail."""


class ServerProcess:
    """One server subprocess that binds 127.0.0.1 on a free port and reports it."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        workdir: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.workdir = workdir
        self.log_path = workdir / f"{name}.log"
        self.port_file = workdir / f"{name}.port"
        self._argv = [sys.executable, *argv]
        self._env = dict(os.environ)
        # The child imports tests.support.*: put the repository root first.
        pythonpath = [str(REPO_ROOT)]
        if self._env.get("PYTHONPATH"):
            pythonpath.append(self._env["PYTHONPATH"])
        self._env.update(
            PYTHONPATH=os.pathsep.join(pythonpath),
            PYTHONUNBUFFERED="1",
            SUPPORT_PORT_FILE=str(self.port_file),
            SUPPORT_PARENT_PID=str(os.getpid()),
        )
        self._env.update(env or {})
        self._proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(
        self,
        ready: Callable[[int], bool],
        timeout: float = 60.0,
    ) -> int:
        """Start the child, wait for its port, then until ``ready(port)`` is true."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port_file.unlink(missing_ok=True)
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                self._argv,
                cwd=REPO_ROOT,
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Own process group: stop() can end the server and any workers it forked.
                start_new_session=True,
            )
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while not self.port:
            self._check_alive()
            try:
                text = self.port_file.read_text()
            except FileNotFoundError:
                text = ""
            # Written as "port\n"; a file without its newline is still being written.
            if text.endswith("\n") and text.strip():
                self.port = int(text.split()[0])
                break
            self._check_deadline(deadline, "to report its port")
            time.sleep(0.02)
        while True:
            self._check_alive()
            try:
                if ready(self.port):
                    return self.port
            except (httpx.HTTPError, OSError):
                pass
            self._check_deadline(deadline, "to answer")
            time.sleep(0.05)

    def _check_alive(self) -> None:
        assert self._proc is not None
        code = self._proc.poll()
        if code is not None:
            raise ServerStartError(
                f"{self.name} exited with code {code}. Log tail:\n{self.log_tail()}"
            )

    def _check_deadline(self, deadline: float, what: str) -> None:
        if time.monotonic() > deadline:
            self.stop()
            raise ServerStartError(
                f"{self.name} took too long {what}. Log tail:\n{self.log_tail()}"
            )

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, limit: int = 6000) -> str:
        return log_tail(self.log_path, limit)

    def stop(self) -> None:
        """SIGTERM the group (graceful), SIGKILL whatever lingers. Idempotent."""
        proc, self._proc = self._proc, None
        atexit.unregister(self.stop)
        if proc is None:
            return
        group = proc.pid  # the session leader's pid is its process group id
        if proc.poll() is None:
            signal_group(group, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                signal_group(group, signal.SIGKILL)
                proc.wait(timeout=5)
        # Forked workers (proxy.py's acceptors) must not outlive their parent.
        signal_group(group, signal.SIGKILL)


def log_tail(path: Path, limit: int = 6000) -> str:
    """The end of a server's log file, to put in an error that its start or a request
    failed."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return "(no log)"
    return data[-limit:].decode("utf-8", "replace")


def signal_group(group: int, sig: signal.Signals) -> None:
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        pass


def http_ok(url: str) -> bool:
    """Readiness probe: the URL answers 200 (no proxy from the environment)."""
    return httpx.get(url, timeout=2.0, trust_env=False).status_code == 200


class _LoggedProcess(Protocol):
    def stop(self) -> None: ...

    @property
    def log_path(self) -> Path: ...

    def log_tail(self, limit: int = 6000) -> str: ...


class ControlledServer:
    """A running test server with control endpoints (``X-Control-Token``) and a log:
    stop() (or ``with``) ends it; a refused control request raises ``error``."""

    error: type[RuntimeError] = RuntimeError

    def __init__(self, process: _LoggedProcess, base_url: str, control_token: str) -> None:
        self._process = process
        self.base_url = base_url
        # trust_env=False: an HTTP(S)_PROXY in the environment must not catch loopback.
        self._http = httpx.Client(
            base_url=base_url,
            headers={"X-Control-Token": control_token},
            timeout=30.0,
            trust_env=False,
        )

    def stop(self) -> None:
        self._http.close()
        self._process.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def log_path(self) -> Path:
        """The subprocess's combined stdout and stderr (tracebacks land here)."""
        return self._process.log_path

    def log_tail(self, limit: int = 6000) -> str:
        return self._process.log_tail(limit)

    def _control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self._http.request(method, path, json=body)
        if response.status_code >= 400:
            raise self.error(
                f"{method} {path} -> {response.status_code}: {response.text[:2000]}\n"
                f"log tail:\n{self.log_tail(3000)}"
            )
        return response.json()
