"""The real app served by uvicorn on loopback: in a thread, or as separate processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(
    url: str, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


class ThreadServer:
    """uvicorn in a daemon thread of the test process; ``url`` is its base URL."""

    def __init__(self, app: FastAPI, port: int | None = None, **options: Any) -> None:
        """``options`` go to uvicorn.Config (``timeout_keep_alive``, say)."""
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on", **options
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> ThreadServer:
        self.thread.start()
        wait_until_up(self.url)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class ProcessServer:
    """`authprofiles serve` as its own process, the way an operator runs it."""

    def __init__(
        self,
        env: dict[str, str],
        cwd: Path,
        port: int | None = None,
        workers: int = 1,
        *,
        separate_stderr: bool = False,
    ) -> None:
        """``separate_stderr``: standard error (the log) goes to ``errors``, apart from
        standard output (what the command prints for a person) in ``log``."""
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = cwd / f"server-{self.port}.log"
        self.errors = cwd / f"server-{self.port}.err" if separate_stderr else self.log
        full_env = {**os.environ, **env}
        self._log_handle = open(self.log, "wb")
        self._errors_handle = open(self.errors, "wb") if separate_stderr else None
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "authprofiles.cli.main",
                "serve",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
            ],
            env=full_env,
            cwd=cwd,
            stdout=self._log_handle,
            stderr=self._errors_handle or subprocess.STDOUT,
        )

    def start(self) -> ProcessServer:
        try:
            wait_until_up(self.url, process=self.process)
        except RuntimeError:
            self.stop()
            output = self.log.read_text()
            if self.errors != self.log:
                output += self.errors.read_text()
            raise RuntimeError(output) from None
        return self

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._log_handle.close()
        if self._errors_handle:
            self._errors_handle.close()
