"""Fixtures for tests through the real HTTP API: the app on a loopback port, an admin client.

Enabled for every test layer by tests/conftest.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from authprofiles.app import create_app
from authprofiles.composition import Services
from authprofiles.services.access import Principal, Role
from authprofiles.store.models import DEFAULT_WORKSPACE_ID, ConnectionRow
from tests.support.idp import Client, Grant, IdP
from tests.support.live import ThreadServer, free_port


@dataclass
class Live:
    """The app served over HTTP, an admin API client, and the services behind it."""

    url: str
    services: Services
    http: httpx.Client

    def create_profile(self, **fields: Any) -> dict[str, Any]:
        fields.setdefault("name", f"profile-{uuid.uuid4().hex[:8]}")
        fields.setdefault("identity_provider", "Test IdP")
        response = self.http.post("/api/v1/profiles", json=fields)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def connect(self, profile_id: str, **body: Any) -> dict[str, Any]:
        response = self.http.post(f"/api/v1/profiles/{profile_id}/connections", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def token(self, connection_id: str) -> httpx.Response:
        return self.http.get(f"/api/v1/connections/{connection_id}/token")

    def set_expires_at(self, connection_id: str, when: datetime) -> None:
        """Age a token in the database, as time passing would."""
        with self.services.db.session() as session:
            row = session.get(ConnectionRow, connection_id)
            assert row is not None
            row.expires_at = when
            # Renewed by the background refresher at its lead before then, as it would be.
            lead = self.services.connection_store.renewal.lead_seconds
            row.next_refresh_at = when - timedelta(seconds=lead)

    def expire(self, connection_id: str) -> None:
        self.set_expires_at(connection_id, datetime.now(UTC) - timedelta(seconds=5))


AUTH_TYPES: dict[Grant, str] = {
    "client-credentials": "oauth2_client_credentials",
    "password": "oauth2_password",
    "authorization-code": "oauth2_authorization_code",
}


def oauth_profile(
    live: Live,
    idp: IdP,
    grant: Grant,
    *,
    skip_authorization: bool = True,
    client: Client | None = None,
    **fields: Any,
) -> tuple[dict[str, Any], Client]:
    """A profile of ``grant`` for a client newly registered at the test IdP, and that client.

    Sets the client's id and secret and the IdP's token URL; for the password grant user
    authorization and a token test against the IdP's userinfo; for the authorization code
    grant the IdP's authorization URL (redirecting to this app) and no tenancy.
    ``fields`` add to or replace these. ``client``, one already registered at the IdP,
    is used instead of registering a new one.
    """
    if client is None:
        redirect_uris = [live.url + "/oauth/callback"] if grant == "authorization-code" else []
        client = idp.register_client(grant, redirect_uris, skip_authorization)
    defaults: dict[str, Any] = {
        "auth_type": AUTH_TYPES[grant],
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "token_url": idp.token_url,
    }
    if grant == "password":
        defaults |= {
            "authorization_mode": "user",
            "token_test_url": idp.userinfo_url,
            "token_test_method": "GET",
            "token_test_content_type": "json",
        }
    if grant == "authorization-code":
        defaults |= {"authorization_url": idp.authorization_url, "tenancy": False}
    return live.create_profile(**{**defaults, **fields}), client


def password_connection(live: Live, idp: IdP, user: tuple[str, str], **fields: Any) -> str:
    """The id of a shared connection of a new password profile (``fields`` add to or
    replace the profile's), made with the user's credentials."""
    profile, _ = oauth_profile(live, idp, "password", **fields)
    return str(live.connect(profile["id"], username=user[0], password=user[1])["connection_id"])


#: The service layer's caller in the tests that use services directly: the default
#: workspace's admin.
ADMIN = Principal(workspace_id=DEFAULT_WORKSPACE_ID, role=Role.ADMIN)


@pytest.fixture
def live(services: Services) -> Iterator[Live]:
    port = free_port()
    services.settings.public_url = f"http://127.0.0.1:{port}"
    app = create_app(services=services, migrate=False, background_refresh=False)
    server = ThreadServer(app, port=port).start()
    key = services.api_keys.create(name="integration", role="admin").key
    http = httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
        trust_env=False,
    )
    try:
        yield Live(url=server.url, services=services, http=http)
    finally:
        http.close()
        server.stop()


@pytest.fixture
def user(idp: IdP) -> tuple[str, str]:
    username, password = f"user-{uuid.uuid4().hex[:8]}", "correct horse battery"
    idp.create_user(username, password)
    return username, password
