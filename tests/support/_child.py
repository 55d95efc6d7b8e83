"""Helpers that run inside a server subprocess (never in the test process).

The parent passes two environment variables:

* ``SUPPORT_PORT_FILE``: where the child writes the port it bound, once listening;
* ``SUPPORT_PARENT_PID``: the child exits when that process goes away, so a killed
  test run never leaves servers behind.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any


def bind_loopback(backlog: int = 2048) -> socket.socket:
    """Bind 127.0.0.1 on a free port chosen by the kernel (no race with other runs)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    # A large backlog: 50 clients connecting at once must not hit SYN retransmits.
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def announce_port(port: int) -> None:
    """Write the port atomically, so the parent never reads a half-written file."""
    target = Path(os.environ["SUPPORT_PORT_FILE"])
    tmp = target.with_suffix(".tmp")
    tmp.write_text(f"{port}\n")
    tmp.replace(target)


def exit_with_parent() -> None:
    """Exit as soon as the parent test process is gone (re-parented to init)."""
    parent = int(os.environ.get("SUPPORT_PARENT_PID", "0"))
    if not parent:
        return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        if os.getpgrp() == os.getpid():
            # We lead the group the parent created: take forked workers down too.
            os.killpg(os.getpid(), signal.SIGKILL)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def serve_asgi(app: Any, sock: socket.socket) -> None:
    """Serve an ASGI app with uvicorn on an already bound socket, until SIGTERM."""
    import uvicorn

    config = uvicorn.Config(
        app,
        lifespan="off",  # neither Django nor the echo app needs startup hooks
        log_level="warning",
        access_log=False,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=2,
    )
    uvicorn.Server(config).run(sockets=[sock])
