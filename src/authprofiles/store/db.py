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

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
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
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
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
        self._async_readers: WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncEngine] = (
            WeakKeyDictionary()
        )

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

    def async_reader(self) -> AsyncEngine | None:
        """On PostgreSQL, an async engine for the token hot path's reads, one per event
        loop (a pool's connections belong to the loop that opened them): the read waits
        on the loop, not in a pool thread, where 32 threads contending for the GIL made a
        read of well under a millisecond take 70-90 ms at the median.

        Its statements run in autocommit (a lone SELECT needs no BEGIN and ROLLBACK, two
        more round trips), connections are not pinged at checkout (a third; a read that
        finds its connection gone is tried once more on a new one), and the pool keeps its
        few connections open: a worker's loop runs one statement's Python at a time, so
        more would only wait. None on SQLite, whose reads stay in the thread pool (its
        async driver keeps a thread per connection anyway)."""
        if self.is_sqlite:
            return None
        loop = asyncio.get_running_loop()
        engine = self._async_readers.get(loop)
        if engine is None:
            engine = self._async_readers[loop] = _async_reader_engine(self.url)
        return engine

    async def close_async_reader(self) -> None:
        """Close the running loop's async reader (the app's lifespan, at shutdown)."""
        engine = self._async_readers.pop(asyncio.get_running_loop(), None)
        if engine is not None:
            await engine.dispose()

    def dispose(self) -> None:
        self.engine.dispose()
        # Those no lifespan closed: their loops may be gone, so their connections are
        # dropped, not closed through them (each closes its socket when collected).
        readers, self._async_readers = list(self._async_readers.values()), WeakKeyDictionary()
        for reader in readers:
            reader.sync_engine.dispose(close=False)


#: Connections in a worker's async reader pool on PostgreSQL (see ``async_reader``).
ASYNC_READER_POOL_SIZE = 4


def _async_reader_engine(url: str) -> AsyncEngine:
    return create_async_engine(
        url,
        pool_size=ASYNC_READER_POOL_SIZE,
        max_overflow=0,
        pool_pre_ping=False,
        isolation_level="AUTOCOMMIT",
        connect_args=dict(_POOLER_SAFE_PSYCOPG),
    )


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
