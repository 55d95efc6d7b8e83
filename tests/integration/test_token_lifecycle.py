"""Lifecycle details: the background refresher and the authorization state's deadline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import update

from authprofiles.store.models import AuthorizationRequestRow
from tests.support.app import Live, oauth_profile
from tests.support.idp import IdP


def test_the_background_refresher_renews_tokens_before_they_expire(
    live: Live, idp: IdP, user: tuple[str, str]
) -> None:
    profile, _ = oauth_profile(live, idp, "password")
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
    profile, _ = oauth_profile(live, idp, "authorization-code")
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
