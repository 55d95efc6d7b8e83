"""What several console pages show alike: a moment in time, a connection, a page of a
list (``?limit=`` and ``?cursor=``, as the API pages its lists), and the page of a
profile that is not there."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import Response

from authprofiles.api.paging import PageRequest, encode_cursor
from authprofiles.core.connections import Connection, ConnectionStatus
from authprofiles.core.errors import ValidationFailed
from authprofiles.web.console.base import ConsolePage

T = TypeVar("T")

# -- a moment, and a connection -------------------------------------------------------------


@dataclass(frozen=True)
class Moment:
    """A time as people read it, with the ISO 8601 value for ``<time datetime>``."""

    at: datetime
    iso: str
    text: str
    relative: str
    past: bool

    @classmethod
    def of(cls, when: datetime | None, now: datetime | None = None) -> Moment | None:
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        when = when.astimezone(UTC)
        now = now or datetime.now(UTC)
        text = f"{when:%d %b %Y, %H:%M} UTC".lstrip("0")
        return cls(
            at=when,
            iso=when.isoformat(timespec="seconds"),
            text=text,
            relative=_relative(when, now),
            past=when <= now,
        )


def _relative(when: datetime, now: datetime) -> str:
    seconds = int((when - now).total_seconds())
    ahead = seconds >= 0
    seconds = abs(seconds)
    if seconds < 60:
        return "in under a minute" if ahead else "just now"
    for size, unit in ((86_400, "day"), (3_600, "hour"), (60, "minute")):
        if seconds >= size:
            count = seconds // size
            words = f"{count} {unit}{'' if count == 1 else 's'}"
            return f"in {words}" if ahead else f"{words} ago"
    return ""  # pragma: no cover - the loop always answers


@dataclass(frozen=True)
class ConnectionView:
    """What the console shows of a connection: what ``GET /connections/{id}`` shows,
    never a token."""

    id: str
    owner: str
    tenant: str | None
    status: ConnectionStatus
    expires_at: Moment | None
    refreshed_at: Moment | None
    created_at: Moment | None
    last_error: str | None
    last_error_at: Moment | None
    has_refresh_token: bool
    scopes: tuple[str, ...] | None

    @classmethod
    def of(cls, connection: Connection, now: datetime) -> ConnectionView:
        tokens = connection.tokens
        return cls(
            id=connection.id,
            owner=connection.owner,
            tenant=connection.tenant,
            status=connection.status,
            expires_at=Moment.of(tokens.expires_at if tokens else None, now),
            refreshed_at=Moment.of(connection.refreshed_at, now),
            created_at=Moment.of(connection.created_at, now),
            last_error=connection.last_error,
            last_error_at=Moment.of(connection.last_error_at, now),
            has_refresh_token=bool(tokens and tokens.refresh_token),
            scopes=tokens.scopes if tokens else None,
        )

    @property
    def status_label(self) -> str:
        if self.status is ConnectionStatus.ACTIVE:
            return "Active, refresh failing" if self.last_error else "Active"
        if self.status is ConnectionStatus.PENDING:
            return "Waiting for authorization"
        return "Needs re-authorization"

    @property
    def status_kind(self) -> str:
        """The badge's class: the label says the same in words (not colour alone)."""
        if self.status is ConnectionStatus.ACTIVE:
            return "warning" if self.last_error else "success"
        if self.status is ConnectionStatus.PENDING:
            return "info"
        return "danger"

    @property
    def may_reconnect(self) -> bool:
        return self.status is not ConnectionStatus.ACTIVE


# -- a page of a list -----------------------------------------------------------------------

#: Rows per page of a list, unless ``?limit=`` says otherwise (up to the most).
PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


@dataclass(frozen=True)
class Paging:
    """``?limit=`` and ``?cursor=`` of a list page. Items are fetched one more than
    shown (:attr:`fetch`), to tell whether there is a next page."""

    limit: int
    cursor: str | None
    #: The ``(created_at, id)`` key the cursor holds (None: the first page, or a list
    #: in another order: see ``after_key``).
    after: tuple[datetime, str] | None
    #: The cursor's key as it is: ``(sort value, id)``, e.g. ``(name, id)``.
    after_key: tuple[str, str] | None = None

    @classmethod
    def of(cls, request: Request, *, by_creation: bool = True) -> Paging:
        """A cursor this console did not make is taken as the first page. A list in
        creation order reads the cursor's ``(created_at, id)`` (``after``); another
        (``by_creation=False``, e.g. by name) its ``(value, id)`` (``after_key``)."""
        raw = request.query_params.get("limit", "")
        limit = int(raw) if raw.isdigit() else PAGE_SIZE
        limit = max(1, min(limit, MAX_PAGE_SIZE))
        cursor = request.query_params.get("cursor") or None
        after = None
        after_key = None
        if cursor is not None:
            asked = PageRequest(limit=limit, cursor=cursor)
            try:
                after_key = asked.after()
                if by_creation:
                    after = asked.after_created()
            except ValidationFailed:
                cursor, after_key = None, None
        return cls(limit=limit, cursor=cursor, after=after, after_key=after_key)

    @property
    def fetch(self) -> int:
        return self.limit + 1

    @property
    def params(self) -> dict[str, str]:
        """The query that keeps this limit on the other pages (none for the default)."""
        return {"limit": str(self.limit)} if self.limit != PAGE_SIZE else {}

    def split(self, items: Sequence[T]) -> tuple[list[T], bool]:
        """The page's items (of :attr:`fetch`), and whether there is more."""
        return list(items[: self.limit]), len(items) > self.limit

    def links(
        self,
        path: str,
        shown: Sequence[T],
        more: bool,
        key: Callable[[T], list[str]],
        params: Mapping[str, str] | None = None,
    ) -> dict[str, str | None]:
        """The pager's ``next_url`` (after the last item shown, whose cursor ``key`` is
        ``api.paging``'s) and ``first_url``, keeping ``params`` and the limit."""
        query = {**(params or {}), **self.params}
        next_url = (
            page_url(path, query, cursor=encode_cursor(key(shown[-1]))) if more and shown else None
        )
        return {
            "next_url": next_url,
            "first_url": page_url(path, query) if self.cursor else None,
        }


def page_url(path: str, params: Mapping[str, str], **more: str) -> str:
    """``path`` with the query of ``params`` and ``more`` that are not blank."""
    query = {key: value for key, value in {**params, **more}.items() if value}
    return path + ("?" + urlencode(query) if query else "")


# -- a profile that is not there ------------------------------------------------------------


def missing_profile(page: ConsolePage) -> Response:
    """The 404 page of a profile this workspace does not have (any more)."""
    return page.render(
        "profiles_missing.html",
        active="profiles",
        status_code=404,
        title="No such authorization profile",
    )


__all__ = [
    "MAX_PAGE_SIZE",
    "PAGE_SIZE",
    "ConnectionView",
    "Moment",
    "Paging",
    "missing_profile",
    "page_url",
]
