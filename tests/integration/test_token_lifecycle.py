"""Lifecycle details: the background refresher and the authorization state's deadline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import update

from authprofiles.store.models import AuthorizationRequestRow
from tests.support.app import Live
from tests.support.idp import IdP


def test_the_background_refresher_renews_tokens_before_they_expire(
    live: Live, idp: IdP, user: tuple[str, str]
) -> None:
    client = idp.register_client("password")
    profile = live.create_profile(
        auth_type="oauth2_password",
        client_id=client.client_id,
        client_secret=client.client_secret,
        token_url=idp.token_url,
        authorization_mode="user",
        token_test_url=idp.base_url + "/o/userinfo/",
        token_test_method="GET",
        token_test_content_type="json",
    )
    soon = live.connect(profile["id"], username=user[0], password=user[1])["connection_id"]
    later = live.connect(profile["id"], username=user[0], password=user[1])["connection_id"]
    live.set_expires_at(soon, datetime.now(UTC) + timedelta(seconds=120))  # within the lead
    before = live.token(soon).json()["access_token"]
    untouched = live.token(later).json()["access_token"]

    idp.reset_counters()
    looked_at = live.services.tokens.refresh_expiring()
    assert looked_at == 1
    assert idp.token_requests("refresh_token") == 1
    assert live.token(soon).json()["access_token"] != before
    assert live.token(later).json()["access_token"] == untouched


def test_an_authorization_older_than_ten_minutes_is_refused(
    live: Live, idp: IdP, user: tuple[str, str]
) -> None:
    assert live.services.settings.authorization_state_ttl_seconds == 600
    client = idp.register_client("authorization-code", redirect_uris=[live.url + "/oauth/callback"])
    profile = live.create_profile(
        auth_type="oauth2_authorization_code",
        client_id=client.client_id,
        client_secret=client.client_secret,
        authorization_url=idp.authorization_url,
        token_url=idp.token_url,
        tenancy=False,
    )
    started = live.connect(profile["id"])
    callback = idp.log_in_and_consent(started["authorization_url"], *user)
    with live.services.db.session() as session:
        session.execute(
            update(AuthorizationRequestRow).values(
                expires_at=datetime.now(UTC) - timedelta(seconds=1)
            )
        )
    page = httpx.get(callback, timeout=30)
    assert page.status_code == 400
    assert "longer than allowed" in page.text
    connection = live.http.get(f"/api/v1/connections/{started['connection_id']}").json()
    assert connection["status"] == "pending"
