"""The background refresher: renewals per second on PostgreSQL with two workers, against a
fast local token endpoint, beside the rate that endpoint answers when driven directly
(wrk, in its own process) in the same run.

N connections, each holding a refresh token and all due for renewal, are written
straight into a fresh PostgreSQL database; then `authprofiles serve --workers 2` starts
and renews them. The rate is measured over a window while the storm is under way (after
the first renewals, before the last), so neither the start of the workers nor the tail
counts. Goals (issue 13): at least half the endpoint's own rate, and at least 300 a
second. The endpoint's share of the time is its rate's inverse over the renewal rate's:
how much of each renewal the identity provider itself could account for.

    python -m bench.refresher_bench [--connections N] [--window SECONDS]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, select

from authprofiles.composition import Services
from authprofiles.core.connections import ConnectionStatus, TokenSet
from authprofiles.settings import Settings
from authprofiles.store.cipher import encode_key, new_key
from authprofiles.store.models import DEFAULT_WORKSPACE_ID, ConnectionRow
from bench.common import Row, free_port, start_process, start_token_endpoint, stop
from tests.support.postgres import create_database, drop_database, postgres_server
from tests.support.seed import add_profile

CONNECTIONS = 100_000
#: How long the rate is measured, once the storm is under way.
WINDOW_SECONDS = 20.0
ENDPOINT_CONCURRENCY = 16
CHUNK = 5000


def _seed(url: str, key: str, token_url: str, count: int) -> None:
    """``count`` active authorization-code connections, each with its own refresh token,
    all due for renewal now (their tokens expire in two minutes), written in chunks."""
    services = Services(Settings(database_url=url, master_key=key))
    store = services.connection_store
    try:
        services.db.migrate()
        with services.db.session() as session:
            profile = add_profile(
                services.profile_store,
                session,
                {
                    "name": "refresher-bench",
                    "auth_type": "oauth2_authorization_code",
                    "identity_provider": "Bench",
                    "client_id": "bench-client",
                    "client_secret": "bench-secret",
                    "authorization_url": token_url.replace("/token", "/authorize"),
                    "token_url": token_url,
                    "tenancy": False,
                },
            )
        now = datetime.now(UTC)
        expires = now + timedelta(minutes=2)
        for start in range(0, count, CHUNK):
            rows = []
            for i in range(start, min(start + CHUNK, count)):
                row = ConnectionRow(
                    id=str(uuid.uuid4()),
                    workspace_id=DEFAULT_WORKSPACE_ID,
                    profile_id=profile.id,
                    owner=f"user-{i}",
                    status=ConnectionStatus.ACTIVE.value,
                    version=0,
                    created_at=now,
                    updated_at=now,
                )
                store.store_tokens(
                    row, TokenSet("access", "Bearer", f"refresh-{i}", expires), requested=()
                )
                if hasattr(row, "next_refresh_at"):  # absent before the leased refresher
                    row.next_refresh_at = now
                rows.append(row)
            with services.db.session() as session:
                session.add_all(rows)
        # As a table in service is: vacuumed, its statistics current.
        with services.db.engine.connect() as db:
            db.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "VACUUM ANALYZE connections"
            )
    finally:
        services.close()


def _renewed(url: str, key: str) -> int:
    services = Services(Settings(database_url=url, master_key=key))
    try:
        with services.db.read() as session:
            found = session.scalar(
                select(func.count()).select_from(ConnectionRow).where(ConnectionRow.version > 1)
            )
        return int(found or 0)
    finally:
        services.close()


def _cpu_seconds(pids: set[int]) -> float:
    """User and system CPU time of these processes so far (Linux ``/proc``; 0 elsewhere)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.0


def _process_tree(root: int) -> set[int]:
    """``root`` and its descendants (the workers `serve --workers N` forks)."""
    found, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            if child not in found:
                found.add(child)
                frontier.append(child)
    return found


def _direct_rate(token_url: str, workdir: Path) -> float:
    """Refresh requests a second the endpoint answers to wrk (or, without wrk, to httpx
    from threads of this process: a lower figure)."""
    body = "grant_type=refresh_token&refresh_token=bench-refresh"
    if shutil.which("wrk"):
        script = workdir / "refresh.lua"
        script.write_text(
            'wrk.method = "POST"\n'
            f'wrk.body = "{body}"\n'
            'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
            'wrk.headers["Authorization"] = "Basic YmVuY2gtY2xpZW50OmJlbmNoLXNlY3JldA=="\n'
        )
        command = ["wrk", "-t1", f"-c{ENDPOINT_CONCURRENCY}", "-d5s", "-s", str(script)]
        out = subprocess.run(
            [*command, token_url], capture_output=True, text=True, check=True
        ).stdout
        return float(out.split("Requests/sec:")[1].split()[0])
    from concurrent.futures import ThreadPoolExecutor

    with httpx.Client() as http, ThreadPoolExecutor(ENDPOINT_CONCURRENCY) as pool:
        started = time.monotonic()
        list(pool.map(lambda _: http.post(token_url, content=body), range(3000)))
        return 3000 / (time.monotonic() - started)


def measure(
    connections: int = CONNECTIONS, workers: int = 2, window: float = WINDOW_SECONDS
) -> dict[str, float]:
    with postgres_server() as admin_url, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        url = create_database(admin_url)
        key = encode_key(new_key())
        endpoint_port = free_port()
        endpoint = start_token_endpoint(endpoint_port)
        server = None
        try:
            token_url = f"http://127.0.0.1:{endpoint_port}/token"
            direct = _direct_rate(token_url, workdir)
            started = time.monotonic()
            _seed(url, key, token_url, connections)
            seeded = time.monotonic() - started
            port = free_port()
            server = start_process(
                [
                    "-m",
                    "authprofiles.cli.main",
                    "serve",
                    "--port",
                    str(port),
                    "--workers",
                    str(workers),
                ],
                f"http://127.0.0.1:{port}/healthz",
                env={
                    "AUTHPROFILES_DATABASE_URL": url,
                    "AUTHPROFILES_MASTER_KEY": key,
                    "AUTHPROFILES_BACKGROUND_REFRESH_INTERVAL_SECONDS": "1",
                    "AUTHPROFILES_LOG_LEVEL": "warning",
                },
                cwd=workdir,
            )
            # Under way: past the first renewals of both workers, far from the last.
            warm, last = max(connections // 50, 200), connections * 9 // 10
            deadline = time.monotonic() + 600
            while (first := _renewed(url, key)) < warm:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the refresher renewed {first} in 10 minutes")
                time.sleep(0.05)
            workers_pids = _process_tree(server.pid)
            cpu_before = _cpu_seconds(workers_pids)
            began = time.monotonic()
            done = first
            while time.monotonic() - began < window and done < last:
                time.sleep(0.25)
                done = _renewed(url, key)
            rate = (done - first) / (time.monotonic() - began)
            worker_cpu = (_cpu_seconds(workers_pids) - cpu_before) / max(done - first, 1)
            issued = httpx.get(f"http://127.0.0.1:{endpoint_port}/count").json()["issued"]
        finally:
            stop(server)
            stop(endpoint)
            drop_database(admin_url, url)
    return {
        "renewals_per_second": rate,
        "endpoint_per_second": direct,
        "idp_share": rate / direct,
        "worker_cpu_ms_per_renewal": 1000 * worker_cpu,
        "seeded_seconds": seeded,
        "endpoint_calls": float(issued),
    }


def run(connections: int = CONNECTIONS) -> list[Row]:
    figures = measure(connections)
    rate, direct = figures["renewals_per_second"], figures["endpoint_per_second"]
    return [
        Row(
            f"refresher renewals/s, {connections:,} due, PostgreSQL, 2 workers",
            rate,
            direct,
            "/s",
            ">= 0.5x endpoint and >= 300/s",
            rate >= 0.5 * direct and rate >= 300,
            baseline_name=f"token endpoint alone (wrk, c{ENDPOINT_CONCURRENCY})",
        ),
        Row(
            "refresher: the IdP's share of a renewal's time",
            100 * figures["idp_share"],
            100.0,
            "%",
            "(reported)",
            True,
            baseline_name="the whole renewal",
        ),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=CONNECTIONS)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--window", type=float, default=WINDOW_SECONDS)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    options = parser.parse_args()
    if options.json:
        print(json.dumps(measure(options.connections, options.workers, options.window)))
        sys.exit(0)
    from bench.__main__ import print_table

    print_table(run(options.connections))
