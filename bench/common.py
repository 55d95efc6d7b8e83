"""Helpers for the benchmarks: servers in their own processes, the load generator, stats."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
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
from tests.support.seed import seed_connection

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

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_process(
    args: list[str], health_url: str, *, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.Popen[bytes]:
    """``python <args>`` in its own process, returned once ``health_url`` answers 200."""
    process = subprocess.Popen(
        [sys.executable, *args],
        env={**os.environ, **(env or {})},
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(health_url, timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"python {' '.join(args)} did not start")


def stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


def start_server(env: dict[str, str], cwd: Path, port: int) -> subprocess.Popen[bytes]:
    """``authprofiles serve`` on ``port``, as an operator runs it."""
    return start_process(
        ["-m", "authprofiles.cli.main", "serve", "--port", str(port)],
        f"http://127.0.0.1:{port}/healthz",
        env=env,
        cwd=cwd,
    )


def server_env(workdir: Path, key: str, **settings: str) -> dict[str, str]:
    """The server's environment for the database ``prepare_connection`` made."""
    env = {
        "AUTHPROFILES_DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}",
        "AUTHPROFILES_MASTER_KEY": key,
        "AUTHPROFILES_LOG_LEVEL": "warning",
    }
    return env | {f"AUTHPROFILES_{name.upper()}": value for name, value in settings.items()}


def prepare_connection(workdir: Path, key: str, profile: dict[str, Any]) -> tuple[str, str]:
    """A database in ``workdir`` with ``profile`` (client credentials against an IdP that
    is never called) and a connection whose token is valid for a day: (developer API key,
    connection id). The key is a real developer's (a user with the developer role, invited
    to the profile through a team), so every call passes the whole access policy."""
    services = Services(
        Settings(database_url=server_env(workdir, key)["AUTHPROFILES_DATABASE_URL"], master_key=key)
    )
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
                expires_at=datetime.now(UTC) + timedelta(days=1),
            ),
        )
        admin = Principal(workspace_id=DEFAULT_WORKSPACE_ID, role=Role.ADMIN, name="bench")
        team = services.people.create_team(admin, name="bench", members=[developer.id])
        services.people.set_profile_access(admin, stored.id, users=[], teams=[team.id])
    finally:
        services.close()
    return api_key, connection.id


def load(
    url: str,
    *,
    requests: int,
    concurrency: int,
    headers: dict[str, str] | None = None,
    seconds: float = 5.0,
) -> dict:
    """Load ``url`` from another process: {"p50", "p99" (seconds), "rps"}.

    wrk (C, event-driven) when installed, so the generator is not what is measured; `make
    bench` installs it. Otherwise the Python generator in bench/loadgen.py (`requests`
    requests) stands in, which saturates before a fast server does: the table says which.
    """
    if shutil.which("wrk"):
        return _wrk(url, concurrency=concurrency, headers=headers or {}, seconds=seconds)
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
        "generator": "python",
    }


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def _wrk_seconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _wrk(url: str, *, concurrency: int, headers: dict[str, str], seconds: float) -> dict:
    def command(duration: int) -> list[str]:
        line = ["wrk", "-t1", f"-c{concurrency}", f"-d{duration}s", "--latency"]
        for name, value in headers.items():
            line += ["-H", f"{name}: {value}"]
        return [*line, url]

    subprocess.run(command(1), capture_output=True, check=True)  # warm up: pools, caches
    out = subprocess.run(
        command(max(1, round(seconds))), capture_output=True, check=True, text=True
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"{url}: some answers were not 2xx:\n{out}")
    found = dict(re.findall(r"^\s+(50|99)\.?0*%\s+(\S+)$", out, re.M))
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rate is None or set(found) != {"50", "99"}:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    return {
        "p50": _wrk_seconds(found["50"]),
        "p99": _wrk_seconds(found["99"]),
        "rps": float(rate.group(1)),
        "generator": "wrk",
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return statistics.quantiles(ordered, n=100, method="inclusive")[int(q) - 1]
