"""Rows written straight through the store, for tests and benchmarks that need a profile
with a connection already holding a token (no IdP round trip)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from authprofiles.composition import Services
from authprofiles.core.connections import Connection, ConnectionStatus, TokenSet
from authprofiles.core.profiles import Profile
from authprofiles.core.validation import parse_draft, validate_draft
from authprofiles.store.connections import ConnectionStore
from authprofiles.store.models import DEFAULT_WORKSPACE_ID
from authprofiles.store.profiles import ProfileStore


def client_credentials_profile(name: str, secret: str, **fields: Any) -> dict[str, Any]:
    """A client credentials profile named ``name`` with client secret ``secret``, as the
    API takes it; ``fields`` add to or replace its fields."""
    return {
        "name": name,
        "auth_type": "oauth2_client_credentials",
        "identity_provider": "Okta",
        "client_id": f"client-{name}",
        "client_secret": secret,
        "token_url": "https://idp.example.com/oauth2/token",
        **fields,
    }


def add_profile(store: ProfileStore, session: Session, data: dict[str, Any]) -> Profile:
    """The profile ``data`` (as the API takes it), validated and written through ``store``
    (so encrypted with its key ring)."""
    return store.add(session, DEFAULT_WORKSPACE_ID, validate_draft(parse_draft(data)))


def add_connection(
    store: ConnectionStore, session: Session, profile_id: str, tokens: TokenSet
) -> Connection:
    """An active shared connection of ``profile_id`` holding ``tokens``, written through
    ``store`` (so encrypted with its key ring)."""
    return store.add(
        session,
        workspace_id=DEFAULT_WORKSPACE_ID,
        profile_id=profile_id,
        owner="shared",
        tenant=None,
        fields={},
        username=None,
        password=None,
        status=ConnectionStatus.ACTIVE,
        tokens=tokens,
    )


def seed_connection(
    services: Services, profile: dict[str, Any], tokens: TokenSet
) -> tuple[Profile, Connection]:
    """A validated profile and one active shared connection holding ``tokens``."""
    with services.db.session() as session:
        stored = add_profile(services.profile_store, session, profile)
        connection = add_connection(services.connection_store, session, stored.id, tokens)
    return stored, connection
