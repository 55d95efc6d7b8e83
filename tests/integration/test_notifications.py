"""Notifications end to end, with a real SMTP server (aiosmtpd) and a real webhook
receiver on loopback: who is emailed and how often, signed webhooks and their retries,
the delivery log, email preferences, refused addresses, two workers sharing one outbox,
and no secret in any log, email or body. Each test runs on SQLite and on PostgreSQL.

Most tests run the delivery pass themselves (``services.deliveries.deliver_due()``), so
that what is sent, and when, is decided by the test rather than by a timer; one runs the
app with its background worker, as a server does.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import ssl
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from typer.testing import CliRunner

from authprofiles.app import create_app
from authprofiles.cli.main import app as cli
from authprofiles.composition import Services
from authprofiles.core.callers import CallerKind, Principal, Role
from authprofiles.core.errors import NotFound
from authprofiles.core.notices import Notice, NoticeEvent
from authprofiles.notify.errors import DeliveryFailed
from authprofiles.notify.smtp import SmtpEmailSender
from authprofiles.notify.webhooks import HttpxWebhookPoster
from authprofiles.services.keys import rotate_master_key
from authprofiles.settings import Settings
from authprofiles.store.cipher import Keyring
from authprofiles.store.keys import load_keys
from authprofiles.store.models import (
    DEFAULT_WORKSPACE_ID,
    AuditEventRow,
    OutboxRow,
    WebhookRow,
    utcnow,
)
from authprofiles.store.outbox import OutboxStore
from authprofiles.store.people import UserStore
from authprofiles.store.webhooks import WebhookStore
from tests.support.mail import (
    WAIT_SECONDS,
    SmtpServer,
    WebhookReceiver,
    mail_settings,
    running_smtp_server,
    silent_smtp_server,
)
from tests.support.tls import issue_certificates

#: HTTP behaviour the database does not change runs on SQLite; what it changes is marked
#: ``both_databases`` (see tests/conftest.py).
SQLITE_ONLY = True

PUBLIC_URL = "https://authprofiles.example.com"
SMTP_USER = "mailer"
SMTP_PASSWORD = "smtp-pw-planted-5f1e9c"
DETAIL = "the identity provider refused the refresh token (invalid_grant)"


@pytest.fixture
def settings(make_settings: Callable[..., Settings], smtp_server: SmtpServer) -> Settings:
    return make_settings(
        public_url=PUBLIC_URL,
        **mail_settings(smtp_server, SMTP_USER, SMTP_PASSWORD),
        notification_retry_seconds=100,
        token_reuse_seconds=0,
    )


# -- helpers ------------------------------------------------------------------------------


def add_user(
    services: Services,
    email: str,
    role: str = "admin",
    *,
    disabled: bool = False,
    muted: str = "",
    workspace_id: str = DEFAULT_WORKSPACE_ID,
) -> str:
    users = UserStore()
    with services.db.session() as session:
        row = users.add(
            session,
            user_id=str(uuid.uuid4()),
            email=email,
            name=email.split("@")[0],
            password_hash=None,
        )
        users.set_membership(session, workspace_id, row.id, role)
        row.muted_events = muted
        if disabled:
            row.disabled_at = utcnow()
        return row.id


def admin(workspace_id: str = DEFAULT_WORKSPACE_ID, user_id: str | None = None) -> Principal:
    kind = CallerKind.USER if user_id else CallerKind.API_KEY
    return Principal(
        workspace_id=workspace_id, role=Role.ADMIN, name="test", user_id=user_id, kind=kind
    )


def notify(
    services: Services, event: NoticeEvent = NoticeEvent.PROFILE_FAILING, **fields: Any
) -> None:
    """Tell of ``event`` the way the services do: inside a unit of work."""
    values: dict[str, Any] = {
        "event": event,
        "workspace_id": DEFAULT_WORKSPACE_ID,
        "profile_id": "5d0c8e3a-profile",
        "profile_name": "billing",
        "detail": DETAIL,
        "to_admins": True,
    }
    with services.db.session() as session:
        services.notifier.notify(session, Notice(**{**values, **fields}))


def create_webhook(
    client: TestClient, headers: dict[str, str], url: str, events: list[str]
) -> dict[str, Any]:
    response = client.post("/api/v1/webhooks", json={"url": url, "events": events}, headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


def deliveries(
    client: TestClient, headers: dict[str, str], webhook_id: str
) -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/webhooks/{webhook_id}/deliveries", headers=headers)
    assert response.status_code == 200, response.text
    return list(response.json())


def make_due(services: Services) -> None:
    """Bring every pending retry forward to now, as time passing would."""
    with services.db.session() as session:
        session.execute(
            update(OutboxRow)
            .where(OutboxRow.status == "pending")
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )


def receiver_verifies(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """What a receiver does, with nothing but ``hmac``."""
    fields = dict(item.split("=", 1) for item in headers["x-authprofiles-signature"].split(","))
    signed = fields["t"].encode() + b"." + body
    expected = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"])


@pytest.fixture
def workspace_admins(services: Services) -> dict[str, str]:
    """Two admins who hear of incidents, and people who must not: a developer, a
    disabled admin, and an admin who turned incident emails off."""
    return {
        "ada@example.com": add_user(services, "ada@example.com"),
        "bo@example.com": add_user(services, "bo@example.com"),
        "dev@example.com": add_user(services, "dev@example.com", "developer"),
        "gone@example.com": add_user(services, "gone@example.com", disabled=True),
        "quiet@example.com": add_user(services, "quiet@example.com", muted="profile.failing"),
    }


# -- who hears, how often --------------------------------------------------------------------


@pytest.mark.both_databases
def test_an_incident_emails_each_admin_once_and_calls_each_subscribed_webhook_once(
    services: Services,
    client: TestClient,
    admin_headers: dict[str, str],
    smtp_server: SmtpServer,
    webhook_receiver: WebhookReceiver,
    workspace_admins: dict[str, str],
) -> None:
    hook = create_webhook(client, admin_headers, webhook_receiver.url, ["profile.failing"])
    create_webhook(client, admin_headers, webhook_receiver.url + "/other", ["profile.recovered"])

    notify(services)
    assert services.deliveries.deliver_due() == 3
    assert services.deliveries.deliver_due() == 0  # nothing is sent twice

    emails = smtp_server.wait_for(2)
    assert sorted(e["To"] for e in emails) == ["ada@example.com", "bo@example.com"]
    for email in emails:
        assert email["Subject"] == "authprofiles: profile billing is failing"
        assert email["From"] == "alerts@authprofiles.example.com"
        text = email.get_content()  # type: ignore[attr-defined]
        assert DETAIL in text
        assert f"{PUBLIC_URL}/profiles/5d0c8e3a-profile" in text
        assert email.smtp_login == SMTP_USER  # type: ignore[attr-defined]

    (call,) = webhook_receiver.wait_for(1)
    assert call.path == "/hooks/authprofiles"
    assert call.headers["content-type"] == "application/json"
    assert receiver_verifies(hook["secret"], call.headers, call.body)
    body = json.loads(call.body)
    assert set(body) == {"id", "event", "at", "workspace_id", "profile", "connection", "detail"}
    assert body["event"] == "profile.failing"
    assert body["workspace_id"] == DEFAULT_WORKSPACE_ID
    assert body["profile"] == {"id": "5d0c8e3a-profile", "name": "billing"}
    assert body["connection"] is None
    assert body["detail"] == DETAIL
    assert datetime.fromisoformat(body["at"]).utcoffset() == timedelta(0)

    (logged,) = deliveries(client, admin_headers, hook["id"])
    assert logged["id"] == body["id"]
    assert logged["status"] == "sent"
    assert logged["attempts"] == 1
    assert logged["last_status_code"] == 200
    assert logged["last_error"] is None
    assert logged["sent_at"] is not None
    assert len(smtp_server.messages) == 2 and len(webhook_receiver.requests) == 1


def test_a_recovery_and_a_reauthorization_tell_the_right_people(
    services: Services, smtp_server: SmtpServer, workspace_admins: dict[str, str]
) -> None:
    notify(services, NoticeEvent.PROFILE_RECOVERED, detail="a token request succeeded again")
    notify(
        services,
        NoticeEvent.CONNECTION_NEEDS_REAUTH,
        to_admins=False,
        user_ids=(workspace_admins["dev@example.com"],),
        connection_id="c0ffee00-connection",
    )
    services.deliveries.deliver_due()
    emails = smtp_server.wait_for(4)
    recovered = [e for e in emails if "recovered" in e["Subject"]]
    # The admin who muted "profile.failing" still hears of the recovery.
    assert sorted(e["To"] for e in recovered) == [
        "ada@example.com",
        "bo@example.com",
        "quiet@example.com",
    ]
    assert all("billing" in e["Subject"] for e in recovered)
    (reauth,) = [e for e in emails if e["To"] == "dev@example.com"]
    assert f"{PUBLIC_URL}/connections/c0ffee00-connection" in reauth.get_content()  # type: ignore[attr-defined]


def test_only_people_in_the_workspace_and_not_disabled_there_are_emailed(
    services: Services, smtp_server: SmtpServer
) -> None:
    """Whoever names them (the admins, or a notice's ``user_ids``): no email row is
    written for someone who is not a member of the notice's workspace, or whose
    membership there is disabled."""
    users = UserStore()
    with services.db.session() as session:
        users.add_workspace(session, "elsewhere", "elsewhere")
    ada = add_user(services, "ada@example.com")
    dev = add_user(services, "dev@example.com", "developer")
    outsider = add_user(services, "out@example.com", workspace_id="elsewhere")
    benched = add_user(services, "benched@example.com", "developer")
    benched_admin = add_user(services, "benched-admin@example.com")
    with services.db.session() as session:
        for user_id in (benched, benched_admin):
            membership = users.membership(session, DEFAULT_WORKSPACE_ID, user_id)
            assert membership is not None
            membership.disabled_at = utcnow()

    named = (dev, outsider, benched, benched_admin, ada, "no-such-person")
    notify(services, user_ids=named)
    notify(services, NoticeEvent.PROFILE_ACCESS_GRANTED, to_admins=False, user_ids=named)
    notify(services, to_admins=False, user_ids=(outsider, benched))
    with services.db.read() as session:
        emails = sorted(
            (row.event, row.recipient)
            for row in session.scalars(select(OutboxRow).where(OutboxRow.channel == "email"))
        )
    assert emails == [
        ("profile.access_granted", "ada@example.com"),
        ("profile.access_granted", "dev@example.com"),
        ("profile.failing", "ada@example.com"),
        ("profile.failing", "dev@example.com"),
    ]


def test_without_smtp_no_email_is_queued_but_webhooks_are(
    services: Services,
    client: TestClient,
    admin_headers: dict[str, str],
    webhook_receiver: WebhookReceiver,
    workspace_admins: dict[str, str],
) -> None:
    create_webhook(client, admin_headers, webhook_receiver.url, ["profile.failing"])
    services.settings.smtp_host = None
    notify(services)
    with services.db.read() as session:
        channels = sorted(session.scalars(select(OutboxRow.channel)))
    assert channels == ["webhook"]


# -- retries and the delivery log -------------------------------------------------------------


def test_a_failed_webhook_is_retried_with_backoff_and_logged(
    services: Services,
    client: TestClient,
    admin_headers: dict[str, str],
    webhook_receiver: WebhookReceiver,
) -> None:
    hook = create_webhook(client, admin_headers, webhook_receiver.url, ["profile.failing"])
    webhook_receiver.script(500, 503)

    notify(services, to_admins=False)
    services.deliveries.deliver_due()
    (first,) = deliveries(client, admin_headers, hook["id"])
    assert first["status"] == "pending"
    assert first["attempts"] == 1
    assert first["last_status_code"] == 500
    assert "500" in first["last_error"]
    created = datetime.fromisoformat(first["created_at"])
    first_wait = datetime.fromisoformat(first["next_attempt_at"]) - created
    # AUTHPROFILES_NOTIFICATION_RETRY_SECONDS=100, spread by jitter to 75..125 %.
    assert timedelta(seconds=74) < first_wait < timedelta(seconds=126)
    assert services.deliveries.deliver_due() == 0  # not due yet

    make_due(services)
    services.deliveries.deliver_due()
    (second,) = deliveries(client, admin_headers, hook["id"])
    assert (second["attempts"], second["last_status_code"]) == (2, 503)
    second_wait = datetime.fromisoformat(second["next_attempt_at"]) - datetime.now(UTC)
    assert timedelta(seconds=140) < second_wait < timedelta(seconds=251)  # doubled

    make_due(services)
    services.deliveries.deliver_due()
    (done,) = deliveries(client, admin_headers, hook["id"])
    assert (done["status"], done["attempts"], done["last_status_code"]) == ("sent", 3, 200)
    assert done["next_attempt_at"] is None and done["last_error"] is None

    calls = webhook_receiver.wait_for(3)
    assert [c.status for c in calls] == [500, 503, 200]
    # Every attempt carries the same body (its id lets the receiver drop a repeat),
    # each signed afresh.
    assert len({c.body for c in calls}) == 1
    assert all(receiver_verifies(hook["secret"], c.headers, c.body) for c in calls)


def test_a_delivery_is_given_up_after_the_last_attempt(
    services: Services,
    client: TestClient,
    admin_headers: dict[str, str],
    webhook_receiver: WebhookReceiver,
) -> None:
    hook = create_webhook(client, admin_headers, webhook_receiver.url, ["profile.failing"])
    services.deliveries.max_attempts = 2
    webhook_receiver.script(500, 500, 500)
    notify(services, to_admins=False)
    services.deliveries.deliver_due()
    make_due(services)
    services.deliveries.deliver_due()
    make_due(services)
    assert services.deliveries.deliver_due() == 0
    (log,) = deliveries(client, admin_headers, hook["id"])
    assert (log["status"], log["attempts"], log["next_attempt_at"]) == ("failed", 2, None)
    assert len(webhook_receiver.requests) == 2


def test_the_delivery_log_pages_newest_first(
    services: Services,
    client: TestClient,
    admin_headers: dict[str, str],
    webhook_receiver: WebhookReceiver,
) -> None:
    hook = create_webhook(client, admin_headers, webhook_receiver.url, ["profile.failing"])
    for n in range(5):
        notify(services, to_admins=False, detail=f"incident {n}")
    services.deliveries.deliver_due()
    seen: list[dict[str, Any]] = []
    url: str | None = f"/api/v1/webhooks/{hook['id']}/deliveries?limit=2"
    while url:
        response = client.get(url, headers=admin_headers)
        assert response.status_code == 200, response.text
        seen += response.json()
        url = response.links.get("next", {}).get("url")
    assert len(seen) == 5 and len({d["id"] for d in seen}) == 5
    created = [d["created_at"] for d in seen]
    assert created == sorted(created, reverse=True)


def test_an_email_the_smtp_server_refuses_is_retried_and_logged(
    services: Services, smtp_server: SmtpServer, workspace_admins: dict[str, str]
) -> None:
    smtp_server.require_auth(SMTP_USER, "not the password configured")
    notify(services)
    services.deliveries.deliver_due()
    with services.db.read() as session:
        rows = list(session.scalars(select(OutboxRow).where(OutboxRow.channel == "email")))
    assert len(rows) == 2
    for row in rows:
        assert (row.status, row.attempts) == ("pending", 1)
        assert row.last_error is not None and "refused the login" in row.last_error
    smtp_server.require_auth(SMTP_USER, SMTP_PASSWORD)
    make_due(services)
    services.deliveries.deliver_due()
    assert len(smtp_server.wait_for(2)) == 2


class WorkerKilled(BaseException):
    """A send that takes its worker down with it: nothing records how it went."""


class KillingPoster:
    def __init__(self) -> None:
        self.calls = 0

    def post(self, url: str, body: bytes, headers: Any) -> int:
        self.calls += 1
        raise WorkerKilled


@pytest.mark.both_databases
def test_a_message_whose_sending_kills_the_worker_is_given_up_after_its_attempts(
    services: Services,
    client: TestClient,
    admin_headers: dict[str, str],
    webhook_receiver: WebhookReceiver,
) -> None:
    """Each claim counts an attempt, so a message no worker lives to record is not taken
    again at every lease forever."""
    hook = create_webhook(client, admin_headers, webhook_receiver.url, ["profile.failing"])
    poster = KillingPoster()
    services.deliveries.poster = poster
    services.deliveries.max_attempts = 3
    services.deliveries.lease_seconds = 0  # the dead worker's lease runs out at once
    notify(services, to_admins=False)
    for attempt in (1, 2, 3):
        with pytest.raises(WorkerKilled):
            services.deliveries.deliver_due()
        (log,) = deliveries(client, admin_headers, hook["id"])
        assert (log["status"], log["attempts"], log["last_error"]) == ("pending", attempt, None)

    assert services.deliveries.deliver_due() == 0  # given up, not sent a fourth time
    (log,) = deliveries(client, admin_headers, hook["id"])
    assert (log["status"], log["attempts"], log["next_attempt_at"]) == ("failed", 3, None)
    assert "never finished" in log["last_error"]
    assert poster.calls == 3
    assert webhook_receiver.requests == []
    with services.db.read() as session:
        assert set(session.scalars(select(OutboxRow.claimed_by))) == {None}


@pytest.mark.both_databases
def test_a_worker_whose_lease_ran_out_records_nothing_over_the_next_one(
    services: Services,
) -> None:
    outbox = OutboxStore()
    with services.db.session() as session:
        message_id = outbox.add(
            session,
            workspace_id=DEFAULT_WORKSPACE_ID,
            channel="webhook",
            recipient="a-webhook",
            event="profile.failing",
            payload="{}",
        ).id
    with services.db.session() as session:
        # The email worker does not take a webhook call.
        assert (
            outbox.claim_due(
                session, worker="mailer", lease_seconds=60, max_attempts=5, channel="email"
            )
            == []
        )
        slow = outbox.claim_due(session, worker="slow", lease_seconds=0, max_attempts=5)
        assert [row.id for row in slow] == [message_id]
    with services.db.session() as session:
        taken = outbox.claim_due(
            session, worker="next", lease_seconds=60, max_attempts=5, channel="webhook"
        )
        assert [row.id for row in taken] == [message_id]
    with services.db.session() as session:
        assert not outbox.mark_sent(session, message_id, worker="slow", status_code=200)
        assert not outbox.mark_failed(
            session, message_id, worker="slow", error="too late", retry_at=None
        )
    with services.db.read() as session:
        row = outbox.get(session, message_id)
        assert row is not None
        assert (row.status, row.claimed_by, row.attempts, row.sent_at) == (
            "pending",
            "next",
            2,
            None,
        )
    with services.db.session() as session:
        assert outbox.mark_sent(session, message_id, worker="next", status_code=204)
    with services.db.read() as session:
        row = outbox.get(session, message_id)
        assert row is not None
        assert (row.status, row.claimed_by, row.attempts, row.last_status_code) == (
            "sent",
            None,
            2,
            204,
        )


# -- email preferences ------------------------------------------------------------------------


def test_a_person_who_turned_an_event_off_is_not_emailed_about_it(
    services: Services, client: TestClient, smtp_server: SmtpServer
) -> None:
    ada = add_user(services, "ada@example.com")
    add_user(services, "bo@example.com")
    key = services.api_keys.create(name="ada", role="admin", user_id=ada).key
    ada_headers = {"Authorization": f"Bearer {key}"}

    answer = client.get("/api/v1/me/notifications", headers=ada_headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "email": {
            "profile.failing": True,
            "profile.recovered": True,
            "connection.needs_reauth": True,
            "profile.access_granted": True,
            "approval.requested": True,
        }
    }
    answer = client.put(
        "/api/v1/me/notifications",
        json={"email": {"profile.failing": False}},
        headers=ada_headers,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["email"]["profile.failing"] is False
    assert answer.json()["email"]["profile.recovered"] is True
    assert client.get("/api/v1/me/notifications", headers=ada_headers).json() == answer.json()

    notify(services)
    notify(services, NoticeEvent.PROFILE_RECOVERED)
    services.deliveries.deliver_due()
    emails = smtp_server.wait_for(3)
    assert sorted((e["To"], "recovered" in e["Subject"]) for e in emails) == [
        ("ada@example.com", True),
        ("bo@example.com", False),
        ("bo@example.com", True),
    ]


def test_preferences_name_known_events_and_need_a_person(
    services: Services, client: TestClient, admin_headers: dict[str, str]
) -> None:
    ada = add_user(services, "ada@example.com")
    key = services.api_keys.create(name="ada", role="admin", user_id=ada).key
    unknown = client.put(
        "/api/v1/me/notifications",
        json={"email": {"profile.exploded": False}},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert unknown.status_code == 422, unknown.text
    assert "profile.exploded" in json.dumps(unknown.json()["errors"])
    # A key made before the workspace had people acts for nobody.
    nobody = client.get("/api/v1/me/notifications", headers=admin_headers)
    assert nobody.status_code == 409, nobody.text


# -- webhooks: who may, and where to ------------------------------------------------------------


def test_webhooks_are_for_admins_of_their_own_workspace(
    services: Services,
    client: TestClient,
    admin_headers: dict[str, str],
    developer_headers: dict[str, str],
    webhook_receiver: WebhookReceiver,
) -> None:
    body = {"url": webhook_receiver.url, "events": ["profile.failing"]}
    assert client.post("/api/v1/webhooks", json=body, headers=developer_headers).status_code == 403
    assert client.get("/api/v1/webhooks", headers=developer_headers).status_code == 403

    hook = create_webhook(client, admin_headers, webhook_receiver.url, ["profile.failing"])
    assert set(hook) == {"id", "url", "events", "secret", "created_at"}
    assert hook["secret"].startswith("whsec_")
    listed = client.get("/api/v1/webhooks", headers=admin_headers).json()
    assert [h["id"] for h in listed] == [hook["id"]]
    assert "secret" not in listed[0]

    with services.db.session() as session:
        UserStore().add_workspace(session, "elsewhere", "elsewhere")
    other = admin("elsewhere")
    assert services.webhooks.list(other) == []
    with pytest.raises(NotFound):
        services.webhooks.delete(other, hook["id"])
    with pytest.raises(NotFound):
        services.webhooks.deliveries(other, hook["id"])

    assert client.delete(f"/api/v1/webhooks/{hook['id']}", headers=admin_headers).status_code == 204
    assert client.delete(f"/api/v1/webhooks/{hook['id']}", headers=admin_headers).status_code == 404
    gone = client.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=admin_headers)
    assert gone.status_code == 404


def test_webhook_events_must_be_known_ones(
    client: TestClient, admin_headers: dict[str, str], webhook_receiver: WebhookReceiver
) -> None:
    for events in (["profile.exploded"], []):
        answer = client.post(
            "/api/v1/webhooks",
            json={"url": webhook_receiver.url, "events": events},
            headers=admin_headers,
        )
        assert answer.status_code == 422, answer.text
        assert all(e["field"].startswith("events") for e in answer.json()["errors"])


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.0.0.7/hook",
        "https://192.168.1.20/hook",
        "http://[::1]:8080/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:127.0.0.1]/hook",
    ],
)
def test_private_webhook_urls_are_refused_unless_allowed(
    services: Services, client: TestClient, admin_headers: dict[str, str], url: str
) -> None:
    services.webhooks.allow_private = False
    answer = client.post(
        "/api/v1/webhooks", json={"url": url, "events": ["profile.failing"]}, headers=admin_headers
    )
    assert answer.status_code == 422, answer.text
    assert [e["field"] for e in answer.json()["errors"]] == ["url"]
    assert "AUTHPROFILES_WEBHOOK_ALLOW_PRIVATE" in answer.json()["errors"][0]["message"]
    services.webhooks.allow_private = True
    create_webhook(client, admin_headers, url, ["profile.failing"])


def test_a_delivery_to_a_private_address_is_refused_unless_allowed(
    services: Services,
    client: TestClient,
    admin_headers: dict[str, str],
    webhook_receiver: WebhookReceiver,
) -> None:
    """Checked again at delivery, after resolving the name: a webhook made while private
    addresses were allowed, or whose name now resolves elsewhere, is not called there."""
    hook = create_webhook(client, admin_headers, webhook_receiver.url, ["profile.failing"])
    services.deliveries.poster = HttpxWebhookPoster(allow_private=False)
    notify(services, to_admins=False)
    services.deliveries.deliver_due()
    (log,) = deliveries(client, admin_headers, hook["id"])
    assert log["status"] == "pending" and log["last_status_code"] is None
    assert "private" in log["last_error"]
    assert webhook_receiver.requests == []


# -- several workers --------------------------------------------------------------------------


@pytest.mark.both_databases
def test_two_workers_deliver_each_message_exactly_once(
    services: Services,
    settings: Settings,
    client: TestClient,
    admin_headers: dict[str, str],
    smtp_server: SmtpServer,
    webhook_receiver: WebhookReceiver,
) -> None:
    create_webhook(client, admin_headers, webhook_receiver.url, ["profile.failing"])
    add_user(services, "ada@example.com")
    incidents = 15
    for n in range(incidents):
        notify(services, detail=f"incident {n}")

    other = Services(settings)  # a second worker process, on the same database
    try:
        start = threading.Barrier(2)
        failures: list[BaseException] = []

        def work(worker: Services) -> None:
            try:
                start.wait()
                while worker.deliveries.deliver_due():
                    pass
            except BaseException as exc:  # reported below
                failures.append(exc)

        threads = [threading.Thread(target=work, args=(s,)) for s in (services, other)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert failures == []
    finally:
        other.close()

    calls = webhook_receiver.wait_for(incidents)
    emails = smtp_server.wait_for(incidents)
    assert len(calls) == incidents and len({json.loads(c.body)["id"] for c in calls}) == incidents
    assert len(emails) == incidents
    details = [e.get_content().split("What failed: ")[1].splitlines()[0] for e in emails]  # type: ignore[attr-defined]
    assert sorted(details) == sorted(f"incident {n}" for n in range(incidents))
    with services.db.read() as session:
        statuses = set(session.scalars(select(OutboxRow.status)))
        claimers = set(session.scalars(select(OutboxRow.claimed_by)))
    assert statuses == {"sent"} and claimers == {None}


# -- the server's own worker -------------------------------------------------------------------


@pytest.fixture
def running_client(services: Services) -> Iterator[TestClient]:
    """The app with its background delivery worker ticking, as a server runs it."""
    services.settings.notification_tick_seconds = 0.2
    app = create_app(services=services, migrate=False, background_refresh=False)
    with TestClient(app) as client:
        yield client


def test_the_server_delivers_within_seconds_of_the_event(
    services: Services,
    running_client: TestClient,
    admin_headers: dict[str, str],
    smtp_server: SmtpServer,
    webhook_receiver: WebhookReceiver,
) -> None:
    hook = create_webhook(running_client, admin_headers, webhook_receiver.url, ["profile.failing"])
    add_user(services, "ada@example.com")
    notify(services)
    (call,) = webhook_receiver.wait_for(1, timeout=10)
    (email,) = smtp_server.wait_for(1, timeout=10)
    assert receiver_verifies(hook["secret"], call.headers, call.body)
    assert email["To"] == "ada@example.com"


def test_a_mail_server_that_never_answers_holds_up_no_webhook(
    services: Services,
    running_client: TestClient,
    admin_headers: dict[str, str],
    webhook_receiver: WebhookReceiver,
) -> None:
    """Emails and webhook calls have a worker each: while the email worker waits on an
    SMTP server that says nothing, the webhook for the same event is made."""
    hook = create_webhook(running_client, admin_headers, webhook_receiver.url, ["profile.failing"])
    add_user(services, "ada@example.com")
    with silent_smtp_server() as silent:
        services.deliveries.email = SmtpEmailSender(
            host="127.0.0.1",
            port=silent.port,
            security="none",
            sender="alerts@example.com",
            # Longer than the waits below: the email is still being sent at their end.
            timeout=WAIT_SECONDS * 4,
        )
        notify(services)
        silent.wait_for_connection()  # the email worker is stuck on the greeting
        (call,) = webhook_receiver.wait_for(1)
        assert receiver_verifies(hook["secret"], call.headers, call.body)
        with services.db.read() as session:
            (email,) = session.scalars(select(OutboxRow).where(OutboxRow.channel == "email"))
            assert (email.status, email.attempts, email.last_error) == ("pending", 1, None)
            assert email.claimed_by is not None
    # Hung up on: the email's attempt fails now, and is tried again later.


# -- no secret anywhere ----------------------------------------------------------------------


def test_no_secret_reaches_a_log_an_email_a_body_or_the_audit_log(
    services: Services,
    client: TestClient,
    admin_headers: dict[str, str],
    smtp_server: SmtpServer,
    webhook_receiver: WebhookReceiver,
    workspace_admins: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    hook = create_webhook(client, admin_headers, webhook_receiver.url, ["profile.failing"])
    secret = hook["secret"]
    # A failing pass first (the SMTP login refused, the receiver answering 500): its
    # errors are logged and kept.
    smtp_server.require_auth(SMTP_USER, "something else")
    webhook_receiver.script(500)
    notify(services)
    services.deliveries.deliver_due()
    smtp_server.require_auth(SMTP_USER, SMTP_PASSWORD)
    make_due(services)
    services.deliveries.deliver_due()
    emails = smtp_server.wait_for(2)
    calls = webhook_receiver.wait_for(2)

    with services.db.read() as session:
        outbox = [
            (r.payload, r.last_error or "", r.recipient) for r in session.scalars(select(OutboxRow))
        ]
        audit = [
            json.dumps([r.actor_name, r.target_name, r.detail])
            for r in session.scalars(select(AuditEventRow))
        ]
    places = {
        "log": caplog.text,
        "emails": "\n".join(e.as_string() for e in emails),
        "webhook bodies": "\n".join(c.body.decode() for c in calls),
        "webhook headers": json.dumps([c.headers for c in calls]),
        "outbox": json.dumps(outbox),
        "audit": "\n".join(audit),
        "delivery log": json.dumps(deliveries(client, admin_headers, hook["id"])),
        "webhook list": client.get("/api/v1/webhooks", headers=admin_headers).text,
    }
    for where, text in places.items():
        assert SMTP_PASSWORD not in text, where
        assert secret not in text, where
        assert secret.removeprefix("whsec_") not in text, where


# -- the command line ------------------------------------------------------------------------


def test_notifications_test_sends_an_email_now(
    smtp_server: SmtpServer, settings: Settings, master_key: str
) -> None:
    env = {
        "AUTHPROFILES_SMTP_HOST": "127.0.0.1",
        "AUTHPROFILES_SMTP_PORT": str(smtp_server.port),
        "AUTHPROFILES_SMTP_SECURITY": "none",
        "AUTHPROFILES_SMTP_USERNAME": SMTP_USER,
        "AUTHPROFILES_SMTP_PASSWORD": SMTP_PASSWORD,
        "AUTHPROFILES_PUBLIC_URL": PUBLIC_URL,
    }
    result = CliRunner().invoke(cli, ["notifications", "test", "--to", "ops@example.com"], env=env)
    assert result.exit_code == 0, result.output
    (email,) = smtp_server.wait_for(1)
    assert email["To"] == "ops@example.com"
    assert "test" in email["Subject"]
    assert SMTP_PASSWORD not in email.as_string()

    smtp_server.require_auth(SMTP_USER, "another password")
    refused = CliRunner().invoke(cli, ["notifications", "test", "--to", "ops@example.com"], env=env)
    assert refused.exit_code != 0
    assert "refused the login" in refused.output
    assert SMTP_PASSWORD not in refused.output


def test_notifications_test_says_when_smtp_is_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTHPROFILES_SMTP_HOST", raising=False)
    result = CliRunner().invoke(cli, ["notifications", "test", "--to", "ops@example.com"])
    assert result.exit_code == 1
    assert "AUTHPROFILES_SMTP_HOST" in " ".join(result.output.split())


def test_notifications_test_sends_a_signed_webhook_event(
    services: Services,
    client: TestClient,
    admin_headers: dict[str, str],
    webhook_receiver: WebhookReceiver,
    settings: Settings,
    master_key: str,
) -> None:
    hook = create_webhook(client, admin_headers, webhook_receiver.url, ["profile.failing"])
    env = {
        "AUTHPROFILES_DATABASE_URL": settings.database_url,
        "AUTHPROFILES_MASTER_KEY": master_key,
        "AUTHPROFILES_WEBHOOK_ALLOW_PRIVATE": "true",
    }
    result = CliRunner().invoke(cli, ["notifications", "test", "--webhook", hook["id"]], env=env)
    assert result.exit_code == 0, result.output
    (call,) = webhook_receiver.wait_for(1)
    assert json.loads(call.body)["event"] == "webhook.test"
    assert receiver_verifies(hook["secret"], call.headers, call.body)


# -- SMTP security ----------------------------------------------------------------------------


def test_starttls_upgrades_the_connection_before_the_login(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    certificates = issue_certificates(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificates.cert, certificates.key)
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates.ca))  # trust the test authority
    with running_smtp_server(starttls=context) as server:
        server.require_auth(SMTP_USER, SMTP_PASSWORD)
        sender = SmtpEmailSender(
            host="127.0.0.1",
            port=server.port,
            security="starttls",
            sender="alerts@example.com",
            username=SMTP_USER,
            password=SMTP_PASSWORD,
        )
        sender.send("ops@example.com", "authprofiles: profile billing is failing", "text")
        (email,) = server.wait_for(1)
        assert email.smtp_login == SMTP_USER  # type: ignore[attr-defined]


def test_starttls_is_refused_when_the_server_does_not_offer_it(smtp_server: SmtpServer) -> None:
    sender = SmtpEmailSender(
        host="127.0.0.1",
        port=smtp_server.port,
        security="starttls",
        sender="alerts@example.com",
        username=SMTP_USER,
        password=SMTP_PASSWORD,
    )
    with pytest.raises(DeliveryFailed, match="does not offer STARTTLS"):
        sender.send("ops@example.com", "subject", "text")
    assert smtp_server.messages == []


# -- keys rotate ------------------------------------------------------------------------------


@pytest.mark.both_databases
def test_keys_rotate_reencrypts_webhook_secrets(database_url: str, tmp_path: Path) -> None:
    settings = Settings(
        database_url=database_url,
        master_key=None,
        key_file=tmp_path / "authprofiles.key",
        webhook_allow_private=True,
    )
    services = Services(settings)  # creates the key file
    services.db.migrate()
    try:
        created = services.webhooks.create(
            admin(), url="http://127.0.0.1:9/hook", events=["profile.failing"]
        )
        result = rotate_master_key(settings, db=services.db)
        assert result.rows >= 1
        with services.db.read() as session:
            row = session.get(WebhookRow, created.id)
        assert row is not None
        assert Keyring.key_id_of(row.secret_enc) == result.new_key_id
        assert WebhookStore(Keyring(load_keys(settings).keys)).secret(row) == created.secret
    finally:
        services.close()
