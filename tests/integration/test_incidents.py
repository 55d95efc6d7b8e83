"""An incident, end to end: a shared connection's refresh token revoked at the real IdP,
50 token requests at once, and exactly one email (at a real SMTP server) and one signed
webhook; nothing more while it lasts; a recovery message when it works again; and a second
incident reported only after that recovery. No secret in any message."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from authprofiles.app import create_app
from authprofiles.composition import Services
from authprofiles.settings import Settings
from authprofiles.store.models import OutboxRow
from tests.support.app import Live, oauth_profile
from tests.support.idp import IdP
from tests.support.live import ThreadServer, free_port
from tests.support.mail import SmtpServer, WebhookReceiver

API = "/api/v1"
CALLS = 50


@pytest.fixture
def notifying(
    make_settings: Any, smtp_server: SmtpServer, webhook_receiver: WebhookReceiver
) -> Iterator[Live]:
    """The app with email to the test's SMTP server and webhooks to loopback allowed, its
    outbox delivered by the app's own background worker."""
    port = free_port()
    settings: Settings = make_settings(
        public_url=f"http://127.0.0.1:{port}",
        smtp_host="127.0.0.1",
        smtp_port=smtp_server.port,
        smtp_security="none",
        smtp_from="authprofiles@example.com",
        webhook_allow_private=True,
        notification_tick_seconds=0.1,
        notification_retry_seconds=0.2,
    )
    services = Services(settings)
    services.db.migrate()
    app = create_app(services=services, migrate=False, background_refresh=False)
    server = ThreadServer(app, port=port).start()
    admin = services.people.create_user(email="admin@example.com", name="Admin", role="admin")
    key = services.api_keys.create(
        name="admin", role="admin", workspace_id="default", user_id=admin.id
    ).key
    http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
    try:
        yield Live(url=server.url, services=services, http=http)
    finally:
        http.close()
        server.stop()
        services.close()


def key_of(live: Live) -> str:
    return str(live.http.headers["authorization"]).removeprefix("Bearer ")


def _outbox(services: Services, event: str) -> int:
    with services.db.read() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(OutboxRow).where(OutboxRow.event == event)
            )
            or 0
        )


def _token_requests(live: Live, connection_id: str) -> list[int]:
    def one(_: int) -> int:
        return live.http.get(f"{API}/connections/{connection_id}/token").status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(one, range(CALLS)))


def _check_signature(received: Any, secret: str) -> dict[str, Any]:
    header = received.headers["x-authprofiles-signature"]
    parts = dict(part.split("=", 1) for part in header.split(","))
    signed = f"{parts['t']}.".encode() + received.body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected), "the webhook's signature does not verify"
    body: dict[str, Any] = json.loads(received.body)
    return body


def test_one_incident_one_email_one_webhook_and_a_new_one_only_after_recovery(
    notifying: Live,
    idp: IdP,
    user: tuple[str, str],
    smtp_server: SmtpServer,
    webhook_receiver: WebhookReceiver,
) -> None:
    live = notifying
    hook = live.http.post(
        f"{API}/webhooks",
        json={"url": webhook_receiver.url, "events": ["profile.failing", "profile.recovered"]},
    )
    assert hook.status_code == 201, hook.text
    secret = hook.json()["secret"]
    profile, client = oauth_profile(live, idp, "password", name="crm")
    started = live.http.post(
        f"{API}/profiles/{profile['id']}/connections",
        json={"owner": "shared", "username": user[0], "password": user[1]},
    )
    assert started.status_code == 201, started.text
    connection = started.json()["id"]

    # The refresh token dies at the IdP; every call now needs a refresh.
    idp.revoke_all_tokens(client.client_id)
    live.expire(connection)
    statuses = _token_requests(live, connection)
    assert set(statuses) == {409}, statuses  # needs_reauth, for all 50
    assert live.http.get(f"{API}/profiles/{profile['id']}").json()["status"] == "failing"

    # Exactly one notice per channel was written for the incident, and each is delivered.
    assert _outbox(live.services, "profile.failing") == 2
    [email] = smtp_server.wait_for(1)
    assert "crm" in email["Subject"]
    text = email.get_payload(decode=True).decode() if not email.is_multipart() else str(email)
    assert f"/profiles/{profile['id']}" in text
    [call] = webhook_receiver.wait_for(1)
    body = _check_signature(call, secret)
    assert body["event"] == "profile.failing"
    assert body["profile"] == {"id": profile["id"], "name": "crm"}
    assert body["connection"] == {"id": connection}

    # While it lasts, more failing calls tell nobody again.
    assert set(_token_requests(live, connection)) == {409}
    assert _outbox(live.services, "profile.failing") == 2

    # Recovery: authorized again, a token request succeeds: one "recovered" per channel.
    again = live.http.post(
        f"{API}/connections/{connection}/reauthorize",
        json={"username": user[0], "password": user[1]},
    )
    assert again.status_code == 200, again.text
    assert live.http.get(f"{API}/connections/{connection}/token").status_code == 200
    assert _outbox(live.services, "profile.recovered") == 2
    emails = smtp_server.wait_for(2)
    assert "recovered" in emails[1]["Subject"]
    calls = webhook_receiver.wait_for(2)
    assert _check_signature(calls[1], secret)["event"] == "profile.recovered"

    # A second incident is a new one, reported again. (The worker remembers the token it
    # handed out a moment ago; time passing, which the test fakes, would expire it too.)
    idp.revoke_all_tokens(client.client_id)
    live.expire(connection)
    live.services.token_issuing.forget(connection)
    assert set(_token_requests(live, connection)) == {409}
    assert _outbox(live.services, "profile.failing") == 4
    smtp_server.wait_for(3)
    webhook_receiver.wait_for(3)

    # No secret in any message.
    planted = [client.client_secret, user[1], secret, key_of(live)]
    everything = [str(m) for m in smtp_server.messages] + [
        r.body.decode() + json.dumps(dict(r.headers)) for r in webhook_receiver.requests
    ]
    for value in planted:
        assert not any(value in text for text in everything), "a secret reached a message"
