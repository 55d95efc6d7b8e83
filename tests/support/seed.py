"""Rows written straight through the store, for tests and benchmarks that need a profile
with a connection already holding a token (no IdP round trip)."""

from __future__ import annotations

from typing import Any

from authprofiles.core.connections import Connection, ConnectionStatus, TokenSet
from authprofiles.core.profiles import Profile
from authprofiles.core.validation import parse_draft, validate_draft
from authprofiles.services.container import Services
from authprofiles.store.models import DEFAULT_WORKSPACE_ID


def seed_connection(
    services: Services, profile: dict[str, Any], tokens: TokenSet
) -> tuple[Profile, Connection]:
    """A validated profile and one active shared connection holding ``tokens``."""
    definition = validate_draft(parse_draft(profile))
    with services.db.session() as session:
        stored = services.profile_store.add(session, DEFAULT_WORKSPACE_ID, definition)
        connection = services.connection_store.add(
            session,
            workspace_id=DEFAULT_WORKSPACE_ID,
            profile_id=stored.id,
            owner="shared",
            tenant=None,
            fields={},
            username=None,
            password=None,
            status=ConnectionStatus.ACTIVE,
            tokens=tokens,
        )
    return stored, connection
