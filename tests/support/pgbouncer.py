"""PgBouncer in transaction pooling mode in front of the suite's PostgreSQL.

Debian's ``pgbouncer`` binary, started per test with its config in the test's directory
and a pool of two server connections, so that the transactions of different clients
really take turns on shared server connections: anything that leaned on one server
connection across transactions (a prepared statement, a ``SET``, a session's advisory
lock) breaks here as it would in production.

The listening socket is ours: bound to a free loopback port, then handed to pgbouncer
by systemd's socket-activation protocol (``LISTEN_FDS``; Debian builds it with systemd
support). Nothing can take the port between our choosing it and pgbouncer binding it,
and a client may connect at once: the kernel queues it until pgbouncer accepts.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.support._proc import log_tail


class PgBouncerStartError(RuntimeError):
    """pgbouncer is missing, exited, or refused a connection; the message has its log."""


@dataclass(frozen=True)
class PgBouncer:
    """A running pgbouncer: ``url_of`` names a database of the upstream server through it."""

    port: int
    log_path: Path

    def url_of(self, url: str) -> str:
        """The same database and user as ``url`` (a URL of the upstream server), reached
        through this pgbouncer."""
        return make_url(url).set(host="127.0.0.1", port=self.port).render_as_string(False)

    def log_tail(self, limit: int = 6000) -> str:
        return log_tail(self.log_path, limit)


def pgbouncer_binary() -> str:
    found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/sbin")
    if found is None:
        # Never a skip: CI installs it (.ci/run), and a test that did not run proves nothing.
        raise PgBouncerStartError(
            "pgbouncer is not installed (Debian: apt-get install pgbouncer); "
            "tests/integration/test_pgbouncer.py runs the app through it"
        )
    return found


def _quoted(value: str) -> str:
    """A value in pgbouncer's auth_file: in double quotes, a quote doubled."""
    return '"' + value.replace('"', '""') + '"'


def _config(upstream_url: str, workdir: Path, pool_size: int) -> Path:
    upstream = make_url(upstream_url)
    user = upstream.username or "postgres"
    password = upstream.password or ""
    server = f"host={upstream.host or '127.0.0.1'} port={upstream.port or 5432}"
    if password:
        server += f" password={password}"
    auth_file = workdir / "userlist.txt"
    auth_file.write_text(f"{_quoted(user)} {_quoted(str(password))}\n")
    lines = [
        "[databases]",
        # Any database name goes to the database of that name upstream.
        f"* = {server}",
        "[pgbouncer]",
        # Ignored in favour of the socket we pass (see the module's docstring), but required.
        "listen_addr = 127.0.0.1",
        "listen_port = 6432",
        "unix_socket_dir =",
        "auth_type = trust",
        f"auth_file = {auth_file}",
        "pool_mode = transaction",
        f"default_pool_size = {pool_size}",
        "min_pool_size = 0",
        "reserve_pool_size = 0",
        "max_client_conn = 1000",
        "log_connections = 0",
        "log_disconnections = 0",
        "stats_period = 3600",
    ]
    if os.geteuid() == 0:
        # pgbouncer refuses to run as root; it reads its files first, then becomes this user.
        lines.append("user = nobody")
    config = workdir / "pgbouncer.ini"
    config.write_text("\n".join(lines) + "\n")
    return config


#: Run in the child: sd_listen_fds() takes the sockets from fd 3 on, and only when
#: LISTEN_PID is its own pid, which exec keeps.
_HAND_OVER = """
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
os.execv(sys.argv[2], sys.argv[2:])
"""


@contextmanager
def running_pgbouncer(
    upstream_url: str, workdir: Path, *, pool_size: int = 2
) -> Iterator[PgBouncer]:
    """pgbouncer in transaction pooling mode in front of the server of ``upstream_url``
    (its user and password are used upstream; clients are trusted), with at most
    ``pool_size`` server connections for each database, stopped on exit."""
    binary = pgbouncer_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    config = _config(upstream_url, workdir, pool_size)
    log_path = workdir / "pgbouncer.log"
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(512)
    port = int(listener.getsockname()[1])
    fd = listener.fileno()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", _HAND_OVER, str(fd), binary, str(config)],
            pass_fds=(fd,),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    listener.close()
    bouncer = PgBouncer(port=port, log_path=log_path)
    try:
        _check_answers(bouncer, upstream_url, process)
        yield bouncer
    finally:
        _stop(process)


def _check_answers(bouncer: PgBouncer, upstream_url: str, process: subprocess.Popen[bytes]) -> None:
    """One query through it: waits for pgbouncer to accept (the kernel holds the
    connection until then) and proves the way upstream works."""
    import psycopg

    url = make_url(bouncer.url_of(upstream_url)).set(drivername="postgresql")
    try:
        with psycopg.connect(
            url.render_as_string(False), connect_timeout=30, prepare_threshold=None
        ) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        _stop(process)
        raise PgBouncerStartError(
            f"pgbouncer did not answer ({exc}); exit code {process.poll()}. "
            f"Log tail:\n{bouncer.log_tail()}"
        ) from exc


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)  # pgbouncer: "fast exit"
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture
def pgbouncer(postgres_admin_url: str, tmp_path: Path) -> Iterator[PgBouncer]:
    """PgBouncer in transaction pooling mode, two server connections a database, in front
    of the suite's PostgreSQL: ``pgbouncer.url_of(url)`` reaches a database through it."""
    with running_pgbouncer(postgres_admin_url, tmp_path / "pgbouncer") as bouncer:
        yield bouncer
