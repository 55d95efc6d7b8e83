"""What the agents pages show, worked out without a server: a held call's body, a grant's
state, and a label for every event people may be emailed about."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from authprofiles.core.agent_grants import AgentGrant, AllowRule
from authprofiles.core.notices import EVENT_NAMES
from authprofiles.web.console.admin import EVENT_LABELS, PREFERENCE_FIELDS
from authprofiles.web.console.agents import body_text, grant_state

NOW = datetime(2025, 1, 31, 9, 30, tzinfo=UTC)


def test_a_json_body_is_indented_and_anything_else_shown_as_it_is() -> None:
    assert body_text('{"amount":10,"to":["a"]}') == '{\n  "amount": 10,\n  "to": [\n    "a"\n  ]\n}'
    assert body_text('{"cut": "in the mid') == '{"cut": "in the mid'  # a 2 KiB preview's end
    assert body_text("a=1&b=[redacted]") == "a=1&b=[redacted]"
    assert body_text("42") == "42"
    assert body_text("") is None


def test_a_grant_is_active_until_it_expires_or_is_revoked() -> None:
    grant = AgentGrant(
        id="g-1",
        workspace_id="default",
        agent="bot",
        connection_ids=frozenset({"c-1"}),
        rules=(AllowRule(("GET",), "/**"),),
        expires_at=NOW + timedelta(hours=1),
        created_at=NOW,
    )
    assert grant_state(grant, NOW) == "active"
    assert grant_state(grant, NOW + timedelta(hours=1)) == "expired"
    assert grant_state(replace(grant, revoked_at=NOW), NOW) == "revoked"


def test_every_emailed_event_has_words_and_a_preference_field() -> None:
    assert set(EVENT_LABELS) == set(EVENT_NAMES)
    assert PREFERENCE_FIELDS["approval.requested"] == "approval_requested"
