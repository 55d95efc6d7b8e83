"""The token fetch for a valid token, against ``/healthz`` on the same server and workers.

Requests/s and p50/p99 at concurrency 32, the load generator (wrk) in its own process,
with the worker's token reuse on (the default, 1 s) and off (every request reads the
database): on SQLite with one worker and on PostgreSQL (a scratch database, dropped
after) with two. Goals (issue 13): reuse on at least 0.8x the bare endpoint's
throughput; reuse off at least 0.33x and p50 at most 3x its p50.

    .venv/bin/python -m bench.token_bench
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from authprofiles.store.cipher import encode_key, new_key
from bench.common import (
    TOKEN_PROFILE,
    Row,
    free_port,
    load,
    postgres_version,
    prepare_connection,
    server_env,
    start_server,
    stop,
)
from tests.support.postgres import create_database, drop_database, postgres_server

CONCURRENT = 8000  # only for the Python generator, when wrk is missing
CONCURRENCY = 32
SECONDS = 5.0
BARE = "/healthz, same server"
MACHINE: dict[str, Any] = {}  # merged into results.json's "machine"


def _measure(
    workdir: Path,
    key: str,
    api_key: str,
    connection_id: str,
    *,
    reuse: str,
    workers: int,
    database_url: str | None,
) -> dict:
    port = free_port()
    env = server_env(workdir, key, database_url=database_url, token_reuse_seconds=reuse)
    server = start_server(env, workdir, port, workers=workers)
    try:
        base = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {api_key}"}
        options: dict[str, Any] = {
            "requests": CONCURRENT,
            "concurrency": CONCURRENCY,
            "seconds": SECONDS,
        }
        return {
            "bare": load(f"{base}/healthz", **options),
            "token": load(
                f"{base}/api/v1/connections/{connection_id}/token", headers=auth, **options
            ),
        }
    finally:
        stop(server)


def _rows(figures: dict, label: str, *, reuse: bool) -> list[Row]:
    token, bare = figures["token"], figures["bare"]
    rps_goal = 0.8 if reuse else 0.33
    p50, bare_p50 = token["p50"] * 1000, bare["p50"] * 1000
    rows = [
        Row(
            f"token req/s at {CONCURRENCY}, {label}",
            token["rps"],
            bare["rps"],
            "req/s",
            f">= {rps_goal}x bare",
            token["rps"] >= rps_goal * bare["rps"],
            BARE,
        ),
        Row(
            f"token p50 at {CONCURRENCY}, {label}",
            p50,
            bare_p50,
            "ms",
            "(reported)" if reuse else "<= 3x bare",
            reuse or p50 <= 3 * bare_p50,
            BARE,
        ),
        Row(
            f"token p99 at {CONCURRENCY}, {label}",
            token["p99"] * 1000,
            bare["p99"] * 1000,
            "ms",
            "(reported)",
            True,
            BARE,
        ),
    ]
    return rows


def _suite(database: str, workers: int, database_url: str | None) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="authprofiles-bench-") as tmp:
        workdir = Path(tmp)
        key = encode_key(new_key())
        api_key, connection_id = prepare_connection(
            workdir,
            key,
            TOKEN_PROFILE,
            database_url=database_url,
        )
        rows: list[Row] = []
        for reuse in (True, False):
            figures = _measure(
                workdir,
                key,
                api_key,
                connection_id,
                reuse="1" if reuse else "0",
                workers=workers,
                database_url=database_url,
            )
            label = f"{database}, {workers} worker(s), reuse {'on (1 s)' if reuse else 'off'}"
            rows += _rows(figures, label, reuse=reuse)
    return rows


def run() -> list[Row]:
    rows = _suite("SQLite", 1, None)
    with postgres_server() as admin_url:
        MACHINE["postgres"] = postgres_version(admin_url)
        url = create_database(admin_url)
        try:
            rows += _suite("PostgreSQL", 2, url)
        finally:
            drop_database(admin_url, url)
    return rows


if __name__ == "__main__":
    from bench.__main__ import print_table

    print_table(run())
