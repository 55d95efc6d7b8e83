"""A PostgreSQL server for the suite: the local one if it answers, else one we start.

Under CI these tests never skip. When nothing answers on 127.0.0.1:5432 we start a
server from the installed binaries: as root through Debian's pg_ctlcluster (postgres
refuses to run as root), otherwise with pytest-postgresql's executor in a temp dir.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

LOCAL = "postgresql://postgres@127.0.0.1:5432/test"


def _answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def _start_cluster_as_root() -> bool:
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions or os.geteuid() != 0 or not shutil.which("pg_ctlcluster"):
        return False
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"],
        check=False,
        capture_output=True,
    )
    for _ in range(50):
        if _answers(LOCAL):
            return True
        time.sleep(0.2)
    return False


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield an admin URL (database ``postgres`` level rights) of a running server."""
    if _answers(LOCAL) or _start_cluster_as_root():
        yield LOCAL
        return
    from pytest_postgresql.executors.proc import PostgreSQLExecutor

    pg_ctl = (
        shutil.which("pg_ctl")
        or (sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")) or [None])[-1]
    )
    if pg_ctl is None:
        raise RuntimeError("no PostgreSQL answers on 127.0.0.1:5432 and no pg_ctl is installed")
    workdir = tempfile.mkdtemp(prefix="authprofiles-pg-")
    executor = PostgreSQLExecutor(
        executable=pg_ctl,
        host="127.0.0.1",
        port=55432,
        datadir=os.path.join(workdir, "data"),
        unixsocketdir=workdir,
        logfile=os.path.join(workdir, "log"),
        startparams="-w",
        dbname="test",
        user="postgres",
        password="",
        options="",
        postgres_options="",
    )
    executor.start()
    try:
        yield "postgresql://postgres@127.0.0.1:55432/postgres"
    finally:
        executor.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def create_database(admin_url: str, template: str | None = None) -> str:
    """A fresh database, empty or a copy of ``template`` (a database nobody is connected
    to); returns its SQLAlchemy URL."""
    name = f"ap_test_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{copy}')
    base = admin_url.rsplit("/", 1)[0]
    return f"{base.replace('postgresql://', 'postgresql+psycopg://')}/{name}"


@contextmanager
def migrated_template(admin_url: str) -> Iterator[str]:
    """A database with every migration applied, to copy: copying it (a file copy in the
    server) is far cheaper than migrating each test's database again. Yields its name."""
    from authprofiles.store.db import Database

    url = create_database(admin_url)
    try:
        database = Database(url)
        try:
            database.migrate()
        finally:
            database.dispose()  # a template must have no connection open while copied
        yield url.rsplit("/", 1)[1]
    finally:
        drop_database(admin_url, url)


def drop_database(admin_url: str, sqlalchemy_url: str) -> None:
    name = sqlalchemy_url.rsplit("/", 1)[1]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
