"""Lifecycle details: the background refresher and the authorization state's deadline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select, update

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
    # It never completed, and now cannot: it is gone, with its authorization request.
    gone = live.http.get(f"/api/v1/connections/{started['connection_id']}")
    assert gone.status_code == 404
    with live.services.db.read() as session:
        assert session.scalars(select(AuthorizationRequestRow)).all() == []


def _end_authorizations(live: Live, seconds_ago: float) -> None:
    """Move every pending authorization's deadline into the past, as time passing would."""
    with live.services.db.session() as session:
        session.execute(
            update(AuthorizationRequestRow).values(
                expires_at=datetime.now(UTC) - timedelta(seconds=seconds_ago)
            )
        )


def test_abandoned_authorizations_are_cleaned_up_and_reauthorized_connections_kept(
    live: Live, idp: IdP, user: tuple[str, str]
) -> None:
    profile, _ = oauth_profile(live, idp, "authorization-code")
    abandoned = live.connect(profile["id"], owner="user-1")["id"]
    working = live.connect(profile["id"], owner="user-2")
    page = httpx.get(idp.log_in_and_consent(working["authorization_url"], *user), timeout=30)
    assert page.status_code == 200, page.text
    again = live.http.post(f"/api/v1/connections/{working['id']}/reauthorize")
    assert again.status_code == 200, again.text
    denied_profile, _ = oauth_profile(live, idp, "authorization-code", skip_authorization=False)
    denied = live.connect(denied_profile["id"], owner="user-3")
    callback = idp.log_in_and_consent(denied["authorization_url"], *user, consent=False)
    assert httpx.get(callback, timeout=30).status_code == 400

    # Still within the deadline (which a callback exchanging its code has beyond the
    # authorization's own end): nothing goes.
    _end_authorizations(live, seconds_ago=0)
    assert live.services.connections.expire_abandoned() == 0
    assert live.http.get(f"/api/v1/connections/{abandoned}").json()["status"] == "pending"

    # Until then the denied one says why.
    told = live.http.get(f"/api/v1/connections/{denied['id']}").json()
    assert told["status"] == "needs_reauth"
    assert "access_denied" in told["last_error"]

    _end_authorizations(live, seconds_ago=live.services.settings.idp_deadline_seconds + 1)
    assert live.services.connections.expire_abandoned() == 2
    assert live.http.get(f"/api/v1/connections/{abandoned}").status_code == 404
    assert live.http.get(f"/api/v1/connections/{denied['id']}").status_code == 404
    # Being authorized again, it keeps what it had.
    assert live.http.get(f"/api/v1/connections/{working['id']}").json()["status"] == "active"
    assert live.token(working["id"]).status_code == 200
    with live.services.db.read() as session:
        assert session.scalars(select(AuthorizationRequestRow)).all() == []
    # The link of the authorization that ended no longer completes anything.
    late = idp.log_in_and_consent(again.json()["authorization_url"], *user)
    assert httpx.get(late, timeout=30).status_code == 400
