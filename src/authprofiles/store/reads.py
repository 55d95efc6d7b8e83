"""The hot path's reads: a connection and its profile, as cheaply as correctness allows.

A token request reads the connection row (its token may have changed in another
worker a moment ago, so it is always read) and only the version columns of the
profile. The decoded profile is cached per process under the values that change
whenever the profile does, so a stale profile is never served; the cache holds
nothing another worker would need.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Engine, Select, bindparam, select
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect

from authprofiles.core.connections import Connection
from authprofiles.core.errors import NotFound
from authprofiles.core.profiles import Profile
from authprofiles.store.connections import ConnectionStore
from authprofiles.store.db import AsyncReads
from authprofiles.store.models import ConnectionRow, ProfileRow
from authprofiles.store.profiles import ProfileStore

_connections = cast(Any, ConnectionRow.__table__)
_profiles = cast(Any, ProfileRow.__table__)
_CONNECTION_WITH_PROFILE_VERSION = select(
    _connections,
    _profiles.c.updated_at.label("profile_updated_at"),
    _profiles.c.failing_reason.label("profile_failing_reason"),
).join(_profiles, _profiles.c.id == _connections.c.profile_id)

ProfileKey = tuple[str, datetime, str | None]


class CredentialReader:
    def __init__(
        self,
        engine: Engine,
        connections: ConnectionStore,
        profiles: ProfileStore,
        size: int = 1024,
        *,
        async_reads: AsyncReads | None = None,
    ) -> None:
        #: Reads on the event loop, for :meth:`read_async` (PostgreSQL only).
        self.async_reads = async_reads
        # No BEGIN on SQLite: each statement reads a consistent snapshot on its own.
        self.engine = engine.execution_options(sqlite_begin="NONE")
        self.connections = connections
        self.profiles = profiles
        self.size = size
        self._cache: OrderedDict[ProfileKey, Profile] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, workspace_id: str | None, connection_id: str) -> tuple[Connection, Profile]:
        with self.engine.connect() as db:
            row = self._found(
                db.execute(_by_id(connection_id)).one_or_none(), workspace_id, connection_id
            )
            profile = self._remembered(row)
            if profile is None:
                profile = self._remember(row, db.execute(_profile(row.profile_id)).one())
        return self.connections.to_domain(cast(ConnectionRow, row), strict=True), profile

    async def read_async(
        self, workspace_id: str | None, connection_id: str
    ) -> tuple[Connection, Profile] | None:
        """As :meth:`read`, waiting on the event loop (``Database.async_reads``) instead of
        in a thread; None where there is no such reader (SQLite)."""
        reads = self.async_reads
        if reads is None:
            return None
        row = self._found(
            await reads.one(_BY_ID_SQL, {"connection_id": connection_id}),
            workspace_id,
            connection_id,
        )
        row = _in_utc(row)
        profile = self._remembered(row)
        if profile is None:
            profile_row = await reads.one(_PROFILE_SQL, {"profile_id": row.profile_id})
            profile = self._remember(row, _in_utc(profile_row))
        return self.connections.to_domain(cast(ConnectionRow, row), strict=True), profile

    @staticmethod
    def _found(row: Any | None, workspace_id: str | None, connection_id: str) -> Any:
        if row is None or (workspace_id is not None and row.workspace_id != workspace_id):
            raise NotFound(f"no connection with id {connection_id}")
        return row

    def _remembered(self, row: Any) -> Profile | None:
        key = _profile_key(row)
        with self._lock:
            profile = self._cache.get(key)
            if profile is not None:
                self._cache.move_to_end(key)
        return profile

    def _remember(self, row: Any, profile_row: Any) -> Profile:
        key = _profile_key(row)
        profile = self.profiles.to_domain(cast(ProfileRow, profile_row), strict=True)
        with self._lock:
            self._cache[key] = profile
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return profile


def _profile_key(row: Any) -> ProfileKey:
    """What changes whenever the profile does: a decoded profile is remembered under it."""
    return (row.profile_id, row.profile_updated_at, row.profile_failing_reason)


def _by_id(connection_id: str) -> Select[Any]:
    return _CONNECTION_WITH_PROFILE_VERSION.where(_connections.c.id == connection_id)


def _profile(profile_id: str) -> Select[Any]:
    return select(_profiles).where(_profiles.c.id == profile_id)


def _psycopg_sql(statement: Select[Any]) -> str:
    return str(statement.compile(dialect=psycopg_dialect()))  # type: ignore[no-untyped-call]


#: The same reads as SQL for psycopg, compiled once (``AsyncReads`` runs them).
_BY_ID_SQL = _psycopg_sql(
    _CONNECTION_WITH_PROFILE_VERSION.where(_connections.c.id == bindparam("connection_id"))
)
_PROFILE_SQL = _psycopg_sql(select(_profiles).where(_profiles.c.id == bindparam("profile_id")))


def _in_utc(row: Any) -> Any:
    """A row read by psycopg alone with its datetimes in UTC, as ``UTCDateTime`` gives
    them (psycopg gives them in the session's time zone)."""
    moved = {
        name: value.astimezone(UTC)
        for name, value in row._asdict().items()
        if isinstance(value, datetime) and value.tzinfo is not None
    }
    return row._replace(**moved) if moved else row
