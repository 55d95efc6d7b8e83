"""Helpers for the benchmarks: servers in their own processes, the load generator, stats."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from authprofiles.composition import Services
from authprofiles.core.callers import Principal, Role
from authprofiles.core.connections import TokenSet
from authprofiles.settings import Settings
from authprofiles.store.models import DEFAULT_WORKSPACE_ID
from tests.support.seed import add_connection, seed_connection

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Row:
    """One line of the results table."""

    name: str
    value: float
    baseline: float
    unit: str
    goal: str
    passed: bool
    # What the baseline is ("/healthz, same server"): results.json's "baseline".
    baseline_name: str = ""

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else float("nan")

    @property
    def judged(self) -> bool:
        """False for a figure that is only reported (no goal)."""
        return self.goal not in ("", "(reported)")

    def as_json(self) -> dict[str, Any]:
        ratio = self.ratio
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "baseline": self.baseline_name or None,
            "baseline_value": self.baseline,
            "ratio": None if ratio != ratio else ratio,  # NaN is not JSON
            "goal": self.goal if self.judged else None,
            "met": self.passed if self.judged else None,
        }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_process(
    args: list[str], health_url: str, *, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.Popen[bytes]:
    """``python <args>`` in its own process, returned once ``health_url`` answers 200."""
    # What it says, shown if it does not start; open as long as the process runs.
    log = tempfile.TemporaryFile()  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, *args],
        env={**os.environ, **(env or {})},
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(health_url, timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    process.wait()
    log.seek(0)
    said = log.read().decode(errors="replace")[-3000:]
    raise RuntimeError(f"python {' '.join(args)} did not start:\n{said}")


def stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


def start_token_endpoint(port: int) -> subprocess.Popen[bytes]:
    """The fast local token endpoint (``bench/token_endpoint.py``) on ``port``."""
    return start_process(
        [
            "-m",
            "uvicorn",
            "bench.token_endpoint:app",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        f"http://127.0.0.1:{port}/healthz",
        cwd=ROOT,
    )


#: The profile the token suites fetch through: client credentials with a header field.
TOKEN_PROFILE: dict[str, Any] = {
    "name": "bench",
    "authorization_fields": [{"type": "header", "key": "X-Tenant", "value": "t1"}],
}


def start_server(
    env: dict[str, str], cwd: Path, port: int, *, workers: int = 1
) -> subprocess.Popen[bytes]:
    """``authprofiles serve --workers N`` on ``port``, as an operator runs it."""
    return start_process(
        ["-m", "authprofiles.cli.main", "serve", "--port", str(port), "--workers", str(workers)],
        f"http://127.0.0.1:{port}/healthz",
        env=env,
        cwd=cwd,
    )


def server_env(
    workdir: Path, key: str, *, database_url: str | None = None, **settings: str
) -> dict[str, str]:
    """The server's environment for the database ``prepare_connection`` made (SQLite in
    ``workdir`` unless ``database_url`` names another)."""
    env = {
        "AUTHPROFILES_DATABASE_URL": database_url or f"sqlite:///{workdir / 'bench.db'}",
        "AUTHPROFILES_MASTER_KEY": key,
        "AUTHPROFILES_LOG_LEVEL": "warning",
    }
    return env | {f"AUTHPROFILES_{name.upper()}": value for name, value in settings.items()}


def prepare_connection(
    workdir: Path, key: str, profile: dict[str, Any], *, database_url: str | None = None
) -> tuple[str, str]:
    """A database in ``workdir`` with ``profile`` (client credentials against an IdP that
    is never called) and a connection whose token is valid for a day: (developer API key,
    connection id). The key is a real developer's (a user with the developer role, invited
    to the profile through a team), so every call passes the whole access policy."""
    api_key, ids = prepare_connections(workdir, key, profile, database_url=database_url)
    return api_key, ids[0]


def prepare_connections(
    workdir: Path,
    key: str,
    profile: dict[str, Any],
    *,
    database_url: str | None = None,
    count: int = 1,
    expires_in: timedelta = timedelta(days=1),
) -> tuple[str, list[str]]:
    """As ``prepare_connection``, with ``count`` connections of the one profile whose
    tokens expire ``expires_in`` from now (negative: already expired)."""
    url = server_env(workdir, key, database_url=database_url)["AUTHPROFILES_DATABASE_URL"]
    services = Services(Settings(database_url=url, master_key=key))
    try:
        services.db.migrate()
        services.people.create_user(email="admin@bench.invalid", role="admin")
        developer = services.people.create_user(email="dev@bench.invalid", role="developer")
        api_key = services.api_keys.create(
            name="bench", role="developer", workspace_id=DEFAULT_WORKSPACE_ID, user_id=developer.id
        ).key
        stored, connection = seed_connection(
            services,
            {
                "auth_type": "oauth2_client_credentials",
                "identity_provider": "Bench",
                "client_id": "bench-client",
                "client_secret": "bench-secret",
                "token_url": "https://idp.invalid/token",
                **profile,
            },
            TokenSet(
                access_token="bench-access-token",
                token_type="Bearer",
                refresh_token="bench-refresh-token",
                expires_at=datetime.now(UTC) + expires_in,
            ),
        )
        ids = [connection.id]
        for _ in range(count - 1):
            with services.db.session() as session:
                more = add_connection(
                    services.connection_store,
                    session,
                    stored.id,
                    TokenSet(
                        access_token="bench-access-token",
                        token_type="Bearer",
                        refresh_token="bench-refresh-token",
                        expires_at=datetime.now(UTC) + expires_in,
                    ),
                )
            ids.append(more.id)
        admin = Principal(workspace_id=DEFAULT_WORKSPACE_ID, role=Role.ADMIN, name="bench")
        team = services.people.create_team(admin, name="bench", members=[developer.id])
        services.people.set_profile_access(admin, stored.id, users=[], teams=[team.id])
    finally:
        services.close()
    return api_key, ids


def load(
    url: str,
    *,
    requests: int,
    concurrency: int,
    headers: dict[str, str] | None = None,
    seconds: float = 5.0,
    warm_up: bool = True,
) -> dict:
    """Load ``url`` from another process: {"p50", "p99" (seconds), "rps", "requests"}.

    wrk (C, event-driven) when installed, so the generator is not what is measured; `make
    bench` installs it. Otherwise the Python generator in bench/loadgen.py (`requests`
    requests) stands in, which saturates before a fast server does: the table says which.
    wrk first warms up for a second (pools, caches) unless ``warm_up`` is False (a caller
    alternating short runs on a server already warm).
    """
    if shutil.which("wrk"):
        return _wrk(
            url, concurrency=concurrency, headers=headers or {}, seconds=seconds, warm_up=warm_up
        )
    command = [
        sys.executable,
        "-m",
        "bench.loadgen",
        url,
        "--requests",
        str(requests),
        "--concurrency",
        str(concurrency),
    ]
    for name, value in (headers or {}).items():
        command += ["--header", f"{name}: {value}"]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, check=True).stdout
    result: dict = json.loads(out)
    if result["failures"]:
        raise RuntimeError(f"{url}: {result['failures']} answers were not 200")
    latencies = result["latencies"]
    return {
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "rps": result["rps"],
        "requests": len(latencies),
        "generator": "python",
    }


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def _wrk_seconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _wrk(
    url: str, *, concurrency: int, headers: dict[str, str], seconds: float, warm_up: bool = True
) -> dict:
    def command(duration: int) -> list[str]:
        line = ["wrk", "-t1", f"-c{concurrency}", f"-d{duration}s", "--latency"]
        for name, value in headers.items():
            line += ["-H", f"{name}: {value}"]
        return [*line, url]

    if warm_up:
        subprocess.run(command(1), capture_output=True, check=True)  # pools, caches
    out = subprocess.run(
        command(max(1, round(seconds))), capture_output=True, check=True, text=True
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"{url}: some answers were not 2xx:\n{out}")
    found = dict(re.findall(r"^\s+(50|99)\.?0*%\s+(\S+)$", out, re.M))
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"^\s*(\d+) requests in ", out, re.M)
    if rate is None or count is None or set(found) != {"50", "99"}:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    return {
        "p50": _wrk_seconds(found["50"]),
        "p99": _wrk_seconds(found["99"]),
        "rps": float(rate.group(1)),
        "requests": int(count.group(1)),
        "generator": "wrk",
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return statistics.quantiles(ordered, n=100, method="inclusive")[int(q) - 1]


def machine() -> dict[str, Any]:
    """What the figures were measured on (results.json's "machine")."""
    import platform

    import psutil

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "python": platform.python_version(),
        "os": platform.platform(),
    }


def postgres_version(admin_url: str) -> str:
    import psycopg

    with psycopg.connect(admin_url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"
