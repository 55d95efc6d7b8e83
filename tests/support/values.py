"""Domain values for unit tests: built in memory, no database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from authprofiles.core.connections import Connection, ConnectionStatus, TokenSet

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def a_connection(tokens: TokenSet | None, /, **changes: Any) -> Connection:
    """An active shared connection holding ``tokens``; ``changes`` replace any field."""
    connection = Connection(
        id="c1",
        workspace_id="w",
        profile_id="p1",
        owner="shared",
        tenant=None,
        fields={},
        status=ConnectionStatus.ACTIVE,
        tokens=tokens,
        username=None,
        password=None,
        last_error=None,
        last_error_at=None,
        refreshed_at=None,
        version=1,
        created_at=WHEN,
        updated_at=WHEN,
    )
    return replace(connection, **changes)
