"""Each worker's memory at rest and after ten minutes of mixed load.

PostgreSQL (a scratch database, dropped after), `authprofiles serve --workers 2` with its
default settings, 200 connections of one profile whose API is the echo upstream. At
rest: the workers' resident memory (VmRSS) once each kind of request below has been
served a few times and the server has idled for a few seconds. Then a mixed load at
concurrency 16 in all, three wrk processes beside the server: token fetches spread over
the 200 connections (8), proxied calls through them (4), and management reads (the
profile and connection lists, a profile, a connection: 4), for
``AUTHPROFILES_BENCH_MIXED_SECONDS`` (600 unless set); then, after a 2 s settle, the
workers' memory again. Goal: the larger worker grows by less than 50 MB (a leak of even
a few hundred bytes a request shows over hundreds of thousands of requests); the
figures at rest and the load's rate are reported.

    AUTHPROFILES_BENCH_MIXED_SECONDS=30 .venv/bin/python -m bench.memory_bench
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from authprofiles.store.cipher import encode_key, new_key
from bench.common import (
    Row,
    free_port,
    postgres_version,
    prepare_connections,
    server_env,
    start_server,
    stop,
)
from tests.support.echo import EchoServer, start_echo
from tests.support.postgres import create_database, drop_database, postgres_server

CONNECTIONS = 200
WORKERS = 2
MIXED_SECONDS = float(os.environ.get("AUTHPROFILES_BENCH_MIXED_SECONDS", "600"))
#: wrk connections per kind of request: 16 in all, so the two cores this may run on are
#: busy but the server is not buried under a queue.
CONCURRENCY = {"token": 8, "proxy": 4, "management": 4}
REST_SECONDS = 3.0
SETTLE_SECONDS = 2.0
GROWTH_GOAL_MB = 50.0
MACHINE: dict[str, Any] = {}  # merged into results.json's "machine"

# Each request a path picked at random from a file, one a line; the headers are wrk's -H.
_RANDOM_PATHS = """
local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS")) do paths[#paths + 1] = line end
math.randomseed(os.time())
request = function()
  return wrk.format(nil, paths[math.random(#paths)])
end
"""


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB (VmRSS, Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no VmRSS for process {pid}")


def worker_pids(serve_pid: int, workers: int) -> list[int]:
    """The processes of `authprofiles serve` (pid ``serve_pid``) that serve requests.

    With one worker uvicorn serves in the serve process itself; with more it spawns them
    as children and only supervises (multiprocessing may add a helper, not a worker).
    """
    if workers == 1:
        return [serve_pid]
    found = [
        child.pid
        for child in psutil.Process(serve_pid).children()
        if not any("resource_tracker" in part for part in child.cmdline())
    ]
    if len(found) != workers:
        raise RuntimeError(f"expected {workers} workers under {serve_pid}, found {found}")
    return found


def _paths(connection_ids: list[str]) -> dict[str, list[str]]:
    api = "/api/v1"
    return {
        "token": [f"{api}/connections/{c}/token" for c in connection_ids],
        "proxy": [f"{api}/proxy/{c}/bench/items?page=2" for c in connection_ids],
        "management": [
            f"{api}/profiles",
            f"{api}/connections",
            f"{api}/connections?limit=200",
            *(f"{api}/connections/{c}" for c in connection_ids[:20]),
        ],
    }


def _warm(base: str, api_key: str, paths: dict[str, list[str]]) -> None:
    """A few requests of each kind, each on a new connection, so that both workers (the
    kernel hands connections to either) have loaded what they serve with."""
    auth = {"Authorization": f"Bearer {api_key}"}
    for kind, listed in paths.items():
        for path in listed[:10]:
            response = httpx.get(f"{base}{path}", headers=auth, timeout=30)
            if response.status_code != 200:
                raise RuntimeError(f"{kind} {path}: HTTP {response.status_code}")


def _mixed_load(base: str, api_key: str, paths: dict[str, list[str]], workdir: Path) -> int:
    """Every kind of request at once for MIXED_SECONDS, a wrk process each: the number
    of requests answered."""
    if not shutil.which("wrk"):
        raise RuntimeError("the memory benchmark needs wrk (`make bench` installs it)")
    script = workdir / "random_paths.lua"
    script.write_text(_RANDOM_PATHS)
    running: dict[str, subprocess.Popen[str]] = {}
    try:
        for kind, listed in paths.items():
            listing = workdir / f"{kind}.paths"
            listing.write_text("\n".join(listed) + "\n")
            running[kind] = subprocess.Popen(
                [
                    "wrk",
                    "-t1",
                    f"-c{CONCURRENCY[kind]}",
                    f"-d{max(1, round(MIXED_SECONDS))}s",
                    "--timeout",
                    "10s",
                    "-H",
                    f"Authorization: Bearer {api_key}",
                    "-s",
                    str(script),
                    base,
                ],
                env={**os.environ, "BENCH_PATHS": str(listing)},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        said = {kind: process.communicate()[0] for kind, process in running.items()}
    finally:
        for process in running.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    total = 0
    for kind, out in said.items():
        done = re.search(r"(\d+) requests in", out)
        if running[kind].returncode != 0 or done is None:
            raise RuntimeError(f"wrk ({kind}) failed:\n{out}")
        if "Non-2xx" in out or "Socket errors" in out:
            raise RuntimeError(f"{kind}: some requests failed:\n{out}")
        print(f"memory_bench: {kind}: {done.group(1)} requests", file=sys.stderr)
        total += int(done.group(1))
    return total


def measure() -> dict[str, Any]:
    with postgres_server() as admin_url, tempfile.TemporaryDirectory() as tmp:
        MACHINE["postgres"] = postgres_version(admin_url)
        workdir = Path(tmp)
        url = create_database(admin_url)
        echo: EchoServer | None = None
        server = None
        try:
            echo = start_echo(workdir)
            key = encode_key(new_key())
            api_key, connection_ids = prepare_connections(
                workdir,
                key,
                {
                    "name": "bench-memory",
                    "api_base_url": echo.url,
                    "authorization_fields": [{"type": "header", "key": "X-Tenant", "value": "t1"}],
                },
                database_url=url,
                count=CONNECTIONS,
            )
            port = free_port()
            server = start_server(
                server_env(workdir, key, database_url=url), workdir, port, workers=WORKERS
            )
            base = f"http://127.0.0.1:{port}"
            workers = worker_pids(server.pid, WORKERS)
            paths = _paths(connection_ids)
            _warm(base, api_key, paths)
            time.sleep(REST_SECONDS)
            at_rest = [rss_mb(pid) for pid in workers]
            began = time.monotonic()
            requests = _mixed_load(base, api_key, paths, workdir)
            elapsed = time.monotonic() - began
            time.sleep(SETTLE_SECONDS)
            after = [rss_mb(pid) for pid in workers]
        finally:
            stop(server)
            if echo is not None:
                echo.stop()
            drop_database(admin_url, url)
    print(
        f"memory_bench: {requests:,} requests in {elapsed:.0f} s; workers' RSS at rest"
        f" {', '.join(f'{m:.1f}' for m in at_rest)} MB, after"
        f" {', '.join(f'{m:.1f}' for m in after)} MB",
        file=sys.stderr,
    )
    return {
        "at_rest": at_rest,
        "after": after,
        "requests": requests,
        "rps": requests / elapsed,
    }


def run() -> list[Row]:
    figures = measure()
    rest, after = max(figures["at_rest"]), max(figures["after"])
    # The largest growth of one worker, not the difference of the maxima: the worker that
    # was largest at rest need not be the one that grew.
    growth = max(a - r for r, a in zip(figures["at_rest"], figures["after"], strict=True))
    minutes = f"{MIXED_SECONDS / 60:g} min"
    at_rest_name = "worker memory at rest (max of 2 workers)"
    return [
        Row(at_rest_name, rest, rest, "MB", "(reported)", True, "itself"),
        Row(
            f"worker memory after {minutes} mixed load (max of 2 workers)",
            after,
            rest,
            "MB",
            f"growth < {GROWTH_GOAL_MB:.0f} MB",
            growth < GROWTH_GOAL_MB,
            "at rest",
        ),
        Row(
            f"mixed load requests/s ({minutes}, c{sum(CONCURRENCY.values())})",
            figures["rps"],
            figures["rps"],
            "req/s",
            "(reported)",
            True,
            "itself",
        ),
    ]


if __name__ == "__main__":
    from bench.__main__ import print_table

    print_table(run())
