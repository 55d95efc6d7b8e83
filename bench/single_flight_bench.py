"""Single flight: many callers on one expired token, across several workers.

On PostgreSQL (a scratch database, dropped after), ``authprofiles serve --workers 4``, a
client-credentials connection whose token has expired, at a fast local token endpoint
(bench/token_endpoint.py, in its own process). First one caller fetches the token of
another expired connection alone (the baseline: one refresh, nobody waiting); then 500
callers, in their own process, ask for the same expired token at once. Counted: the
refreshes that reached the token endpoint (goal: 1) and the slowest caller's wait (goal:
at most 3x the lone caller's, same run).

    .venv/bin/python -m bench.single_flight_bench
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from authprofiles.store.cipher import encode_key, new_key
from bench.common import (
    ROOT,
    Row,
    free_port,
    postgres_version,
    prepare_connections,
    server_env,
    start_server,
    start_token_endpoint,
    stop,
)
from tests.support.postgres import create_database, drop_database, postgres_server

CALLERS = 500
WORKERS = 4
MACHINE: dict[str, str] = {}  # merged into results.json's "machine"


async def _burst(url: str, api_key: str, callers: int) -> dict:
    """``callers`` requests for ``url`` at once, each on its own open connection.

    Raw HTTP/1.1 over asyncio streams: an httpx client with 500 connections is itself
    the bottleneck (about 5.7 s for 500 requests to an endpoint that does nothing)."""
    parsed = urlsplit(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    request = (
        f"GET {parsed.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {api_key}\r\n\r\n"
    ).encode()
    # Open every connection first (spread over the workers by the kernel), so the burst
    # measures waiting, not connection setup.
    streams = await asyncio.gather(
        *(asyncio.open_connection(host, port, limit=1 << 20) for _ in range(callers))
    )
    go = asyncio.Event()

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[float, int]:
        await go.wait()
        began = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        waited = time.perf_counter() - began
        writer.close()
        return waited, status

    tasks = [asyncio.create_task(one(r, w)) for r, w in streams]
    await asyncio.sleep(0.2)
    go.set()
    results = await asyncio.gather(*tasks)
    waits = sorted(w for w, _ in results)
    statuses: dict[int, int] = {}
    for _, status in results:
        statuses[status] = statuses.get(status, 0) + 1
    return {
        "waits": waits,
        "failures": sum(1 for _, status in results if status != 200),
        "statuses": statuses,
    }


def _run_burst(url: str, api_key: str, callers: int) -> dict:
    """The burst in its own process (it must not share the server's CPU time slices)."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.single_flight_bench", "--burst", url, api_key, str(callers)],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=300,
    ).stdout
    result: dict = json.loads(out)
    return result


def _issued(endpoint: str) -> int:
    return int(httpx.get(f"{endpoint}/count", timeout=10).json()["issued"])


def measure() -> dict[str, Any]:
    with postgres_server() as admin_url, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        MACHINE["postgres"] = postgres_version(admin_url)
        url = create_database(admin_url)
        key = encode_key(new_key())
        endpoint_port = free_port()
        endpoint_url = f"http://127.0.0.1:{endpoint_port}"
        endpoint = start_token_endpoint(endpoint_port)
        server = None
        try:
            # The server first (it migrates), the expired connections after: so no
            # background refresher pass at start renews them before the callers come.
            port = free_port()
            env = server_env(
                workdir,
                key,
                database_url=url,
                token_reuse_seconds="0",
                background_refresh_interval_seconds="3600",
            )
            from authprofiles.store.db import Database

            database = Database(url)
            try:
                database.migrate()
            finally:
                database.dispose()
            server = start_server(env, workdir, port, workers=WORKERS)
            api_key, (warm_id, alone_id, storm_id) = prepare_connections(
                workdir,
                key,
                {
                    "name": "single-flight",
                    "token_url": f"{endpoint_url}/token",
                },
                database_url=url,
                count=3,
                expires_in=timedelta(minutes=-5),
            )
            base = f"http://127.0.0.1:{port}/api/v1/connections"
            auth = {"Authorization": f"Bearer {api_key}"}
            with httpx.Client(trust_env=False, timeout=60) as client:
                # Warm the worker this client reaches (its pools, its client to the
                # endpoint) with a refresh of another connection, then a few reads.
                for _ in range(5):
                    client.get(f"{base}/{warm_id}/token", headers=auth).raise_for_status()
                before = _issued(endpoint_url)
                began = time.perf_counter()
                alone = client.get(f"{base}/{alone_id}/token", headers=auth)
                alone_wait = time.perf_counter() - began
            if alone.status_code != 200:
                raise RuntimeError(f"the lone caller got HTTP {alone.status_code}: {alone.text}")
            alone_refreshes = _issued(endpoint_url) - before
            before = _issued(endpoint_url)
            burst = _run_burst(f"{base}/{storm_id}/token", api_key, CALLERS)
            refreshes = _issued(endpoint_url) - before
            # The same burst on a token that is valid (no refresh): what 500 callers at
            # once cost without any waiting on a refresh.
            valid = _run_burst(f"{base}/{warm_id}/token", api_key, CALLERS)
            # A caller answered other than 200 is a finding, not a failure to run.
            answers = f"expired token {burst['statuses']}, valid token {valid['statuses']}"
        finally:
            stop(server)
            stop(endpoint)
            drop_database(admin_url, url)
    waits = burst["waits"]
    return {
        "alone_wait": alone_wait,
        "alone_refreshes": float(alone_refreshes),
        "refreshes": float(refreshes),
        "slowest_wait": waits[-1],
        "median_wait": waits[len(waits) // 2],
        "valid_slowest_wait": valid["waits"][-1],
        "failures": float(burst["failures"] + valid["failures"]),
        "answers": answers,
    }


def run() -> list[Row]:
    figures = measure()
    label = f"{CALLERS} callers, {WORKERS} workers, PostgreSQL"
    return [
        Row(
            f"single flight: refreshes at the IdP, {label}",
            figures["refreshes"],
            figures["alone_refreshes"],
            "refreshes",
            "1",
            figures["refreshes"] == 1,
            "one caller alone",
        ),
        Row(
            f"single flight: slowest caller's wait, {label}",
            figures["slowest_wait"] * 1000,
            figures["alone_wait"] * 1000,
            "ms",
            "<= 3x alone",
            figures["slowest_wait"] <= 3 * figures["alone_wait"],
            "one caller refreshing alone",
        ),
        Row(
            f"single flight: median caller's wait, {label}",
            figures["median_wait"] * 1000,
            figures["alone_wait"] * 1000,
            "ms",
            "(reported)",
            True,
            "one caller refreshing alone",
        ),
        Row(
            f"single flight: slowest wait vs a valid token, {label}",
            figures["slowest_wait"] * 1000,
            figures["valid_slowest_wait"] * 1000,
            "ms",
            "(reported)",
            True,
            f"{CALLERS} callers on a valid token",
        ),
        Row(
            "single flight: callers not answered 200"
            + (f" ({figures['answers']})" if figures["failures"] else ""),
            figures["failures"],
            0.0,
            "callers",
            "0",
            figures["failures"] == 0,
            "none",
        ),
    ]


if __name__ == "__main__":
    if sys.argv[1:2] == ["--burst"]:
        target, key_arg, count = sys.argv[2], sys.argv[3], int(sys.argv[4])
        json.dump(asyncio.run(_burst(target, key_arg, count)), sys.stdout)
        sys.exit(0)
    from bench.__main__ import print_table

    print_table(run())
