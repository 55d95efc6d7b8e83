"""What notices say (emails, webhook bodies), how failed deliveries back off, and which
webhook addresses are refused, and that SMTP errors keep the password out: no sockets."""

from __future__ import annotations

import json
import smtplib
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from authprofiles.core.notices import Notice, NoticeEvent
from authprofiles.notify.addresses import first_refused, is_public
from authprofiles.notify.errors import DeliveryFailed
from authprofiles.notify.smtp import SmtpEmailSender
from authprofiles.services.notifications.delivery import MAX_BACKOFF_SECONDS, backoff_seconds
from authprofiles.services.notifications.messages import email_for, webhook_body
from authprofiles.services.notifications.urls import url_problem

PUBLIC = "https://authprofiles.example.com"


def notice(event: NoticeEvent, **fields: object) -> Notice:
    values: dict[str, object] = {
        "event": event,
        "workspace_id": "default",
        "profile_id": "p-1",
        "profile_name": "billing",
        "detail": "the identity provider refused the refresh token (invalid_grant)",
    }
    return Notice(**{**values, **fields})  # type: ignore[arg-type]


def test_a_failing_email_names_the_profile_says_what_failed_and_links_to_it() -> None:
    email = email_for(notice(NoticeEvent.PROFILE_FAILING), PUBLIC)
    assert email.subject == "authprofiles: profile billing is failing"
    assert "invalid_grant" in email.text
    assert f"{PUBLIC}/profiles/p-1" in email.text


def test_a_recovery_email_says_recovered() -> None:
    email = email_for(notice(NoticeEvent.PROFILE_RECOVERED), PUBLIC)
    assert "recovered" in email.subject
    assert "billing" in email.subject
    assert f"{PUBLIC}/profiles/p-1" in email.text


def test_a_reauthorization_email_links_to_the_connection() -> None:
    email = email_for(notice(NoticeEvent.CONNECTION_NEEDS_REAUTH, connection_id="c-9"), PUBLIC)
    assert "billing" in email.subject
    assert f"{PUBLIC}/connections/c-9" in email.text


def test_an_invitation_email_links_to_the_profile() -> None:
    email = email_for(notice(NoticeEvent.PROFILE_ACCESS_GRANTED), PUBLIC)
    assert "billing" in email.subject
    assert f"{PUBLIC}/profiles/p-1" in email.text


APPROVAL_LINK = f"{PUBLIC}/console/approvals/a-42"


def approval_notice(agent: str = "billing-bot", detail: str | None = None) -> Notice:
    """An ``approval.requested`` notice, its detail as the approvals service words it."""
    url = "https://api.example.com/v1/invoices/7/send?dry=1"
    return notice(
        NoticeEvent.APPROVAL_REQUESTED,
        connection_id="c-9",
        detail=detail
        if detail is not None
        else f"Agent {agent!r} asks to call POST {url}. Approve or deny it: {APPROVAL_LINK}",
    )


def test_an_approval_email_names_the_agent_the_call_and_the_profile() -> None:
    email = email_for(approval_notice(), PUBLIC)
    assert email.subject == (
        "authprofiles: agent billing-bot asks to call POST "
        "https://api.example.com/v1/invoices/7/send?dry=1 on profile billing — approve or deny"
    )
    # Not the invitation's words (the branch every other event falls into).
    assert "you may now use" not in email.subject
    assert "access" not in email.text


def test_an_approval_email_carries_the_detail_and_the_link_on_a_line_of_its_own() -> None:
    email = email_for(approval_notice(), PUBLIC)
    lines = email.text.splitlines()
    assert APPROVAL_LINK in lines
    assert "POST https://api.example.com/v1/invoices/7/send?dry=1" in email.text
    assert '"billing"' in email.text
    assert "approve or deny" in email.text.lower()


def test_an_approval_email_quotes_an_agent_name_holding_a_quote() -> None:
    email = email_for(approval_notice(agent="O'Brien's agent"), PUBLIC)
    assert email.subject.startswith("authprofiles: agent O'Brien's agent asks to call POST ")


def test_an_approval_email_of_an_unexpected_detail_still_names_the_profile_and_links() -> None:
    email = email_for(approval_notice(detail="something was held"), PUBLIC)
    assert email.subject == (
        "authprofiles: an agent asks to call through profile billing — approve or deny"
    )
    assert f"{PUBLIC}/console/approvals" in email.text.splitlines()
    assert "something was held" in email.text


def test_an_approval_email_subject_stays_one_line() -> None:
    url = "https://api.example.com/" + "x" * 400
    detail = f"Agent 'bot' asks to call GET {url}. Approve or deny it: {APPROVAL_LINK}"
    email = email_for(approval_notice(detail=detail), PUBLIC)
    assert "\n" not in email.subject and len(email.subject) <= 250
    assert APPROVAL_LINK in email.text.splitlines()


def test_the_webhook_body_of_an_approval_request_is_the_contracts() -> None:
    at = datetime(2025, 1, 31, 9, 30, tzinfo=UTC)
    body = json.loads(webhook_body("m-3", approval_notice(), at))
    assert body["event"] == "approval.requested"
    assert body["connection"] == {"id": "c-9"}
    assert body["detail"].endswith(APPROVAL_LINK)


def test_a_line_break_in_a_name_cannot_start_a_header() -> None:
    email = email_for(notice(NoticeEvent.PROFILE_FAILING, profile_name="x\r\nBcc: a@b.c"), PUBLIC)
    assert "\n" not in email.subject and "\r" not in email.subject


def test_the_webhook_body_is_the_contracts() -> None:
    at = datetime(2025, 1, 31, 9, 30, 0, 123000, tzinfo=UTC)
    body = json.loads(webhook_body("m-1", notice(NoticeEvent.PROFILE_FAILING), at))
    assert body == {
        "id": "m-1",
        "event": "profile.failing",
        "at": "2025-01-31T09:30:00.123Z",
        "workspace_id": "default",
        "profile": {"id": "p-1", "name": "billing"},
        "connection": None,
        "detail": "the identity provider refused the refresh token (invalid_grant)",
    }
    with_connection = notice(NoticeEvent.CONNECTION_NEEDS_REAUTH, connection_id="c-9")
    assert json.loads(webhook_body("m-2", with_connection, at))["connection"] == {"id": "c-9"}


def test_backoff_doubles_with_jitter_up_to_a_cap() -> None:
    low, high = (lambda: 0.0), (lambda: 1.0)
    assert backoff_seconds(1, 10, jitter=low) == 7.5
    assert backoff_seconds(1, 10, jitter=high) == 12.5
    assert backoff_seconds(2, 10, jitter=low) == 15
    assert backoff_seconds(4, 10, jitter=low) == 60
    assert backoff_seconds(30, 10, jitter=high) == MAX_BACKOFF_SECONDS * 1.25


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # shared address space
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fd00::1", False),
        ("fe80::1%eth0", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("64:ff9b::a00:1", False),  # NAT64 of 10.0.0.1
        ("not an address", False),
    ],
)
def test_only_globally_routable_addresses_are_public(address: str, public: bool) -> None:
    assert is_public(address) is public


def test_one_private_address_among_public_ones_is_refused() -> None:
    assert first_refused(["8.8.8.8", "10.0.0.1"]) == "10.0.0.1"
    assert first_refused(["8.8.8.8"]) is None


def _resolver(table: dict[str, list[str]]) -> Callable[[str, int], list[str]]:
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError("no such host")
        return table[host]

    return resolve


RESOLVER = _resolver(
    {"hooks.example.com": ["93.184.216.34"], "sneaky.example.com": ["93.184.216.34", "127.0.0.1"]}
)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://hooks.example.com/x", None),
        ("http://hooks.example.com:8080/x?y=1", None),
        ("ftp://hooks.example.com/x", "http:// or https://"),
        ("https:///x", "host"),
        ("https://sneaky.example.com/x", "127.0.0.1"),
        ("https://nowhere.example.com/x", "does not resolve"),
        ("http://127.0.0.1:8080/x", "private"),
        ("http://[::1]/x", "private"),
        ("http://169.254.169.254/latest/meta-data", "private"),
        ("https://hooks.example.com/a b", "spaces"),
        ("", "required"),
    ],
)
def test_webhook_urls_must_be_http_and_public(url: str, problem: str | None) -> None:
    found = url_problem(url, allow_private=False, resolver=RESOLVER)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found, found


def test_private_webhook_urls_are_allowed_when_the_server_allows_them() -> None:
    assert url_problem("http://127.0.0.1:8080/x", allow_private=True, resolver=RESOLVER) is None
    assert url_problem("ftp://127.0.0.1/x", allow_private=True, resolver=RESOLVER) is not None


# -- SMTP errors never carry the password ----------------------------------------------------

SMTP_PASSWORD = "smtp-pw-planted-5f1e9c"


def leaked_part(text: str, secret: str) -> str | None:
    """The longest beginning of ``secret`` (four characters or more) found in ``text``."""
    for end in range(len(secret), 3, -1):
        if secret[:end] in text:
            return secret[:end]
    return None


def failing_sender(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> SmtpEmailSender:
    def connect(_self: SmtpEmailSender) -> smtplib.SMTP:
        raise error

    monkeypatch.setattr(SmtpEmailSender, "_connect", connect)
    return SmtpEmailSender(
        host="mail.example.com",
        port=587,
        security="none",
        sender="alerts@example.com",
        username="mailer",
        password=SMTP_PASSWORD,
    )


@pytest.mark.parametrize("padding", range(270, 300))
def test_a_server_answer_quoting_the_password_across_the_cut_leaks_none_of_it(
    monkeypatch: pytest.MonkeyPatch, padding: int
) -> None:
    """A server's answer is cut to 300 characters: the password is replaced first, so
    one straddling the cut leaves no beginning behind."""
    answer = ("x" * padding + SMTP_PASSWORD + " rejected").encode()
    sender = failing_sender(monkeypatch, smtplib.SMTPResponseException(535, answer))
    with pytest.raises(DeliveryFailed) as failed:
        sender.send("ops@example.com", "subject", "text")
    assert leaked_part(str(failed.value), SMTP_PASSWORD) is None


@pytest.mark.parametrize("cut", range(1, len(SMTP_PASSWORD)))
def test_an_error_quoting_the_password_across_the_last_cut_leaks_none_of_it(
    monkeypatch: pytest.MonkeyPatch, cut: int
) -> None:
    """The whole error is cut to 500 characters, again only once the password is out."""
    prefix = "could not send through the SMTP server mail.example.com:587: "
    padding = "y" * (500 - len(prefix) - cut)  # the cut falls ``cut`` characters into it
    sender = failing_sender(monkeypatch, OSError(padding + SMTP_PASSWORD + " and more"))
    with pytest.raises(DeliveryFailed) as failed:
        sender.send("ops@example.com", "subject", "text")
    message = str(failed.value)
    assert message.startswith(prefix + padding)
    assert len(message) <= 500
    assert leaked_part(message, SMTP_PASSWORD) is None
