"""One keyset page of rows, oldest first: what every list of the API reads.

The key is ``(created_at, id)``: a row added or removed meanwhile neither repeats an item
nor skips one, and the thousandth page costs what the first does (no OFFSET).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, select, tuple_

from authprofiles.store.db import UnitOfWork

RowT = TypeVar("RowT")


def oldest_first(
    session: UnitOfWork,
    model: type[RowT],
    *where: ColumnElement[bool],
    after: tuple[datetime, str] | None = None,
    limit: int | None = None,
) -> list[RowT]:
    """Rows of ``model`` matching ``where``, oldest first (then by id): at most ``limit``
    after the ``(created_at, id)`` key ``after``."""
    columns: Any = model  # a mapped class with created_at and id (checked by the query)
    statement = select(model).where(*where)
    if after is not None:
        statement = statement.where(tuple_(columns.created_at, columns.id) > after)
    statement = statement.order_by(columns.created_at, columns.id)
    if limit is not None:
        statement = statement.limit(limit)
    return list(session.scalars(statement))


__all__ = ["oldest_first"]
