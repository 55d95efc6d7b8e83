"""Engines, sessions and migrations for SQLite (the default) and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from importlib import resources
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

import psycopg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from psycopg.rows import namedtuple_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from authprofiles.core.errors import Unavailable

#: A unit of work, as :meth:`Database.session` and :meth:`Database.read` give it: the
#: name the layers above use, so they need not name the database library.
UnitOfWork = Session


class ConstraintViolated(Exception):
    """A write broke a constraint of the schema (a unique name taken meanwhile)."""


class DatabaseBusy(Unavailable):
    retry_after = 1


def normalise_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3, the driver we ship."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        _create_private_file(parsed.database)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            # As many as threads may read at once (anyio's 40): a connection opened and
            # closed per request beyond the pool (SQLAlchemy's default keeps 5) cost the
            # token route a quarter of its throughput with reuse off.
            **{"pool_size": 40, "max_overflow": 40, **kwargs},
        )
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    if parsed.get_driver_name() == "psycopg":
        kwargs["connect_args"] = {**_POOLER_SAFE_PSYCOPG, **kwargs.get("connect_args", {})}
    return create_engine(url, **kwargs)


#: psycopg 3 turns a statement it ran five times on one connection into a server-side
#: prepared statement. Behind PgBouncer in transaction pooling mode each transaction may
#: run on another server connection: the statement is then missing there ("prepared
#: statement "_pg3_0" does not exist") or another client's of the same name is
#: ("... already exists"). Never preparing costs nothing measurable here: a read ends in
#: ROLLBACK, which makes psycopg forget its counts, so the token route's read was never
#: prepared anyway; a short write transaction measured the same within noise.
_POOLER_SAFE_PSYCOPG: dict[str, Any] = {"prepare_threshold": None}


def _create_private_file(database: str | None) -> None:
    """A new SQLite file is readable by its owner only: it holds ciphertexts and key hashes."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN and cannot take a write lock up
    # front; take over so a locking transaction can say BEGIN IMMEDIATE (the SQLite
    # equivalent of SELECT ... FOR UPDATE: one writer at a time, across processes).
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        if mode != "NONE":  # "NONE": plain reads in autocommit, no transaction to open
            connection.exec_driver_sql(f"BEGIN {mode}")


class Database:
    """One engine and the session factories built on it.

    Write transactions are short and never span a network call. On SQLite each one
    takes the database's write lock at its first statement (``BEGIN IMMEDIATE``): a
    transaction that starts as a reader and later writes cannot wait for the lock (SQLite
    answers "database is locked" at once when another writer committed since its
    snapshot), which made concurrent creates and edits fail. Writers of one process also
    queue on a process lock, so they take turns in order instead of sleeping in SQLite's
    busy handler; writers of other processes wait in that handler (``busy_timeout``).
    """

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url, **engine_kwargs)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # A transaction that holds the write lock from its first statement (SQLite); on
        # PostgreSQL the same session takes row locks with SELECT ... FOR UPDATE.
        self._writing = sessionmaker(
            self.engine.execution_options(sqlite_begin="IMMEDIATE"), expire_on_commit=False
        )
        # Reentrant: a write that calls code opening another write in the same thread
        # fails on SQLite's own lock with a clear error, rather than hanging here.
        self._writer = threading.RLock() if self.is_sqlite else None
        self._async_reads = None if self.is_sqlite else AsyncReads(self.url)

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work that may write: commits on success, rolls back on any error."""
        try:
            with self._writer or nullcontext(), self._writing() as session, session.begin():
                yield session
        except OperationalError as exc:
            # SQLite, after the busy timeout: another process held the write lock that
            # long. Nothing was written; the caller may try again.
            if self._writer is not None and ("locked" in str(exc.orig) or "busy" in str(exc.orig)):
                raise DatabaseBusy(
                    "the database stayed busy with other writers; nothing was saved, "
                    "try again in a moment"
                ) from None
            raise
        except IntegrityError as exc:
            # A constraint decided (a unique name two writers raced for): the callers
            # above the store name no database library, so they see this instead.
            raise ConstraintViolated(str(exc.orig)) from exc

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only unit: closing ends the transaction but leaves loaded rows usable."""
        with self.sessions() as session:
            yield session

    def migrate(self) -> None:
        with self.engine.begin() as connection:
            if not self.is_sqlite:
                # Several hosts starting at once take turns: the second finds the schema
                # at head and has nothing to do (without this, both create the same table
                # and one fails). The lock is the transaction's, not the session's, so it
                # holds through PgBouncer in transaction mode, and ends with the commit.
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
            config = alembic_config(self.url)
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def is_migrated(self) -> bool:
        with self.engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_heads()
        head = ScriptDirectory.from_config(alembic_config(self.url)).get_heads()
        return set(current) == set(head)

    @property
    def async_reads(self) -> AsyncReads | None:
        """On PostgreSQL, the token hot path's reads waiting on the event loop (see
        :class:`AsyncReads`); None on SQLite, whose reads stay in the thread pool."""
        return self._async_reads

    def dispose(self) -> None:
        self.engine.dispose()
        # Pools no lifespan closed: their loops may be gone, so their connections are
        # dropped, not closed through them (each closes its socket when collected).
        if self._async_reads is not None:
            self._async_reads.forget()


#: Connections in each of a worker's async read pools on PostgreSQL (see AsyncReads).
ASYNC_READ_POOL_SIZE = 4


class AsyncReads:
    """Single-statement reads on PostgreSQL that wait on the event loop: psycopg's async
    mode and its own pool, one pool per event loop (a connection belongs to the loop that
    opened it).

    For the token hot path, which reads one row per request. In a pool thread, 32
    threads contending for the GIL made a read of well under a millisecond take 70-90
    ms at the median; through SQLAlchemy's async engine the read cost about 0.7 ms of
    CPU (its greenlet hops and result processing), against about 0.16 ms for the
    statement run by psycopg alone. So the statement is compiled by SQLAlchemy once and
    run here. Reads run in autocommit (a lone SELECT needs no BEGIN and ROLLBACK), are
    not preceded by a ping (a read that finds its connection gone is tried once more),
    and the pool keeps its few connections open: a worker's loop runs one statement's
    Python at a time, so more connections would only wait. No statement is prepared on
    the server, as everywhere (PgBouncer in transaction mode).
    """

    def __init__(self, url: str) -> None:
        self._conninfo = (
            make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        )
        self._pools: WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncConnectionPool[Any]] = (
            WeakKeyDictionary()
        )

    async def one(self, statement: str, params: dict[str, Any]) -> Any | None:
        """The first row of ``statement`` (compiled for psycopg) as a named tuple, or None."""
        try:
            return await self._one(statement, params)
        except psycopg.OperationalError:
            # The connection was closed under the pool (a database restart, an idle
            # timeout), and so likely were the others: the pool checks those it holds,
            # replacing any found broken, and the read is tried once more.
            await (await self._pool()).check()
            return await self._one(statement, params)

    async def _one(self, statement: str, params: dict[str, Any]) -> Any | None:
        pool = await self._pool()
        async with pool.connection() as connection:
            cursor = connection.cursor(row_factory=namedtuple_row)
            await cursor.execute(statement, params)
            return await cursor.fetchone()

    async def _pool(self) -> AsyncConnectionPool[Any]:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            pool = self._pools[loop] = AsyncConnectionPool(
                self._conninfo,
                min_size=ASYNC_READ_POOL_SIZE,
                max_size=ASYNC_READ_POOL_SIZE,
                kwargs={"autocommit": True, **_POOLER_SAFE_PSYCOPG},
                open=False,
            )
            await pool.open()
        return pool

    async def close(self) -> None:
        """Close the running loop's pool (the app's lifespan, at shutdown)."""
        pool = self._pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.close()

    def forget(self) -> None:
        self._pools = WeakKeyDictionary()


#: The advisory lock key that migrations of this schema take (any constant; this one
#: spells "authprof" in ASCII).
_MIGRATION_LOCK = 0x61757468_70726F66


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("authprofiles.store") / "migrations")
    )
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config
