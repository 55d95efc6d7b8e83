"""The token fetch as the connections table grows: 1,000, 100,000 and 1,000,000 stored
connections, and the worker's memory at each.

PostgreSQL (a scratch database, dropped after), one worker, the worker's token reuse off
(every request reads the database), wrk at concurrency 32 for 5 s per size. One real
connection is made through the store; the table is then grown in place with SQL copies
of its row under new ids, vacuumed and analysed, and a fresh server is started for each
size, so each memory figure is that worker's own after serving the load. Goal: the p50
at 100,000 and 1,000,000 connections within 1.2x the p50 at 1,000 (a fetch must not
cost more as the table grows). The worker's resident memory (VmRSS) is reported.

    .venv/bin/python -m bench.growth_bench
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

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
from bench.memory_bench import rss_mb, worker_pids
from tests.support.postgres import create_database, drop_database, postgres_server

SIZES = (1_000, 100_000, 1_000_000)
CONCURRENT = 8000  # only for the Python generator, when wrk is missing
CONCURRENCY = 32
SECONDS = 5.0
GOAL = 1.2
MACHINE: dict[str, Any] = {}  # merged into results.json's "machine"


def _psycopg_url(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://")


def _grow(url: str, connection_id: str, size: int) -> None:
    """Copies of ``connection_id``'s row under new ids until the table holds ``size``."""
    with psycopg.connect(_psycopg_url(url), autocommit=True) as db:
        # Every column but the id copied as it is, read from the table itself so that a
        # column added by a later migration is filled too.
        columns = [
            name
            for (name,) in db.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND table_name = 'connections'"
                " ORDER BY ordinal_position"
            ).fetchall()
            if name != "id"
        ]
        have = db.execute("SELECT count(*) FROM connections").fetchone()
        missing = size - (have[0] if have else 0)
        if missing > 0:
            # Column names from the catalog, never from input: safe to splice in.
            listed = ", ".join(f'"{name}"' for name in columns)
            db.execute(
                f"INSERT INTO connections (id, {listed})"
                f" SELECT gen_random_uuid()::text, {listed}"
                " FROM connections, generate_series(1, %s)"
                " WHERE connections.id = %s",
                (missing, connection_id),
            )
        stored = db.execute("SELECT count(*) FROM connections").fetchone()
        if not stored or stored[0] != size:
            raise RuntimeError(f"the connections table holds {stored}, not {size:,} rows")
        # As a table in service is: vacuumed (else autovacuum would start on a million
        # new rows in the middle of the measurement), its statistics current.
        db.execute("VACUUM ANALYZE connections")


def _measure(
    workdir: Path, key: str, api_key: str, connection_id: str, url: str
) -> tuple[dict[str, Any], float]:
    """The token fetch's figures on a fresh one-worker server, and that worker's RSS (MB)
    after serving them."""
    port = free_port()
    env = server_env(workdir, key, database_url=url, token_reuse_seconds="0")
    server = start_server(env, workdir, port, workers=1)
    try:
        figures = load(
            f"http://127.0.0.1:{port}/api/v1/connections/{connection_id}/token",
            requests=CONCURRENT,
            concurrency=CONCURRENCY,
            headers={"Authorization": f"Bearer {api_key}"},
            seconds=SECONDS,
        )
        (worker,) = worker_pids(server.pid, 1)
        return figures, rss_mb(worker)
    finally:
        stop(server)


def measure(sizes: tuple[int, ...] = SIZES) -> dict[int, tuple[dict[str, Any], float]]:
    found: dict[int, tuple[dict[str, Any], float]] = {}
    with postgres_server() as admin_url, tempfile.TemporaryDirectory() as tmp:
        MACHINE["postgres"] = postgres_version(admin_url)
        workdir = Path(tmp)
        url = create_database(admin_url)
        try:
            key = encode_key(new_key())
            api_key, connection_id = prepare_connection(
                workdir,
                key,
                TOKEN_PROFILE,
                database_url=url,
            )
            for size in sizes:
                began = time.monotonic()
                _grow(url, connection_id, size)
                print(
                    f"growth_bench: {size:,} connections seeded in"
                    f" {time.monotonic() - began:.1f} s",
                    file=sys.stderr,
                )
                figures, rss = _measure(workdir, key, api_key, connection_id, url)
                found[size] = figures, rss
                print(
                    f"growth_bench: {size:,} connections: p50 {figures['p50'] * 1000:.1f} ms,"
                    f" {figures['rps']:,.0f} req/s, worker RSS {rss:.1f} MB",
                    file=sys.stderr,
                )
        finally:
            drop_database(admin_url, url)
    return found


def run(sizes: tuple[int, ...] = SIZES) -> list[Row]:
    found = measure(sizes)
    first = sizes[0]
    base_p50 = found[first][0]["p50"] * 1000
    base_rss = found[first][1]
    named = f"{first:,} stored connections"
    rows: list[Row] = []
    for size in sizes:
        p50 = found[size][0]["p50"] * 1000
        rows.append(
            Row(
                f"token p50 (reuse off), {size:,} stored connections",
                p50,
                base_p50,
                "ms",
                # The baseline against itself is no goal met.
                f"<= {GOAL}x {first:,}" if size != first else "(reported)",
                p50 <= GOAL * base_p50,
                named,
            )
        )
    for size in sizes:
        rows.append(
            Row(
                f"worker memory (RSS), {size:,} stored connections",
                found[size][1],
                base_rss,
                "MB",
                "(reported)",
                True,
                named,
            )
        )
    return rows


if __name__ == "__main__":
    from bench.__main__ import print_table

    print_table(run())
