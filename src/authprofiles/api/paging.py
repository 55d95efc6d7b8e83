"""Cursor paging, the same on every list: ``limit`` and an opaque ``cursor`` in, a JSON
array out, and the next page's URL in ``Link: <...>; rel="next"`` (RFC 8288) while there
is more.

A cursor is the sort key of the last item shown (base64url of a JSON array). Lists page by
a key, never by an offset: a row added or removed meanwhile neither repeats an item nor
skips one, and the thousandth page costs what the first does.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import Depends, Query, Request, Response

from authprofiles.core.errors import FieldError, ValidationFailed

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
#: Far above any key this service writes; a longer cursor was not made here.
MAX_CURSOR_LENGTH = 2048

#: How the ``Link`` header is described in the OpenAPI schema of every list.
LINK_HEADER: dict[str, Any] = {
    "Link": {
        "description": 'The next page, `<URL>; rel="next"` (RFC 8288), while there is one',
        "schema": {"type": "string"},
    }
}

T = TypeVar("T")


def page_responses(description: str) -> dict[int | str, dict[str, Any]]:
    """For a list route's ``responses``: its 200, a page, with the ``Link`` header."""
    return {200: {"description": description, "headers": LINK_HEADER}}


class _Created(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...


def by_creation(item: _Created) -> list[str]:
    """The cursor key of a list oldest first: ``created_at``, then ``id``."""
    return [item.created_at.isoformat(), item.id]


@dataclass(frozen=True)
class PageRequest:
    limit: int
    cursor: str | None

    @property
    def fetch(self) -> int:
        """How many items to fetch: one more than shown, to tell whether there is more."""
        return self.limit + 1

    def after(self) -> tuple[str, str] | None:
        """The key the cursor holds (a sort value and an id), or None on the first page."""
        if self.cursor is None:
            return None
        try:
            key = json.loads(base64.urlsafe_b64decode(self.cursor.encode("ascii") + b"=="))
        except (ValueError, UnicodeError, binascii.Error):
            key = None
        if not (isinstance(key, list) and len(key) == 2 and all(isinstance(k, str) for k in key)):
            raise bad_cursor()
        # PostgreSQL refuses a NUL in text (a 500 if it got that far); no cursor made
        # here holds one.
        if any("\x00" in k for k in key):
            raise bad_cursor()
        return key[0], key[1]

    def after_created(self) -> tuple[datetime, str] | None:
        """The ``(created_at, id)`` key the cursor holds (see :func:`by_creation`)."""
        after = self.after()
        return (parse_time(after[0]), after[1]) if after else None

    def page(
        self,
        request: Request,
        response: Response,
        items: Sequence[T],
        key: Callable[[T], list[str]],
    ) -> Sequence[T]:
        """The first ``limit`` of ``items`` (fetched with :attr:`fetch`, to tell whether
        there is more); when there is, ``Link`` on ``response`` names the page after them."""
        if len(items) <= self.limit:
            return items
        shown = items[: self.limit]
        cursor = encode_cursor(key(shown[-1]))
        next_url = request.url.include_query_params(cursor=cursor, limit=self.limit)
        response.headers["Link"] = f'<{next_url}>; rel="next"'
        return shown


def bad_cursor() -> ValidationFailed:
    return ValidationFailed(
        [
            FieldError(
                "cursor",
                "is not a cursor this list gave out; send the one from the previous "
                "answer's Link header unchanged, or leave it out for the first page",
            )
        ]
    )


def parse_time(value: str) -> datetime:
    """A time from a cursor key; a bad one is a bad cursor."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise bad_cursor() from None
    if parsed.tzinfo is None:
        raise bad_cursor()
    return parsed


def encode_cursor(key: list[str]) -> str:
    raw = json.dumps(key, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _page_request(
    limit: Annotated[
        int,
        Query(
            ge=1,
            le=MAX_LIMIT,
            description=f"Items per page, at most {MAX_LIMIT}",
            examples=[DEFAULT_LIMIT],
        ),
    ] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(
            max_length=MAX_CURSOR_LENGTH,
            description="Where the page starts, as the previous page's `Link` header gives it",
            examples=[encode_cursor(["billing", "5d0c8e3a-1f2b-4c6d-8e9f-0a1b2c3d4e5f"])],
        ),
    ] = None,
) -> PageRequest:
    return PageRequest(limit=limit, cursor=cursor)


Page = Annotated[PageRequest, Depends(_page_request)]
