"""Agent grants' rules: path normalisation, globs, rule parsing, and the streaming redactor
that takes injected credentials out of an upstream's answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from authprofiles.core.agent_grants import (
    AgentGrant,
    AllowRule,
    RuleRefused,
    decide,
    normalised_path,
    parse_rules,
    path_matches,
)
from authprofiles.core.errors import ValidationFailed
from authprofiles.core.injection import PathEscape
from authprofiles.core.redaction import REDACTED, Redactor, StreamRedactor


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", "/"),
        ("repos/acme", "/repos/acme"),
        ("repos/acme/", "/repos/acme"),
        ("a%20b/c", "/a b/c"),
        ("%41dmin", "/Admin"),  # decoded once, then matched case-sensitively
    ],
)
def test_paths_are_decoded_once(raw: str, expected: str) -> None:
    assert normalised_path(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "public/../admin",
        "public/./x",
        "public/%2e%2e/admin",
        "public/.%2E/admin",
        "public%2F..%2Fadmin",
        "public/%5cadmin",
        "public/%252e%252e/admin",
        "public/%25%32%65",
        "public/..;/admin",
        "public//admin",
        "public/%00",
        "public/%0d%0a",
        "public/%ff",
        "a\\b",
    ],
)
def test_paths_that_normalise_differently_are_refused(raw: str) -> None:
    with pytest.raises(PathEscape):
        normalised_path(raw)


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("/**", "/", True),
        ("/**", "/a/b/c", True),
        ("/repos/**", "/repos", True),
        ("/repos/**", "/repos/a/b", True),
        ("/repos/**", "/reposx/a", False),
        ("/repos/*", "/repos/a", True),
        ("/repos/*", "/repos/a/b", False),
        ("/repos/*", "/repos", False),
        ("/repos/*/issues", "/repos/acme/issues", True),
        ("/repos/*/issues", "/repos/acme/pulls", False),
        ("/files/*.json", "/files/a.json", True),
        ("/files/*.json", "/files/a.json/x", False),
        ("/a/**/z", "/a/z", True),
        ("/a/**/z", "/a/b/c/z", True),
        ("/a/**/z", "/a/b/c/y", False),
        ("/admin", "/Admin", False),
    ],
)
def test_globs(pattern: str, path: str, matches: bool) -> None:
    assert path_matches(pattern, path) is matches


def _grant(*rules: AllowRule) -> AgentGrant:
    now = datetime.now(UTC)
    return AgentGrant(
        id="g",
        workspace_id="w",
        agent="a",
        connection_ids=frozenset({"c"}),
        rules=rules,
        expires_at=now + timedelta(hours=1),
        created_at=now,
    )


def test_the_refusal_names_each_rule_and_why() -> None:
    grant = _grant(
        AllowRule(("GET",), "/repos/**"),
        AllowRule(("POST",), "/repos/*/issues", host="api.example.com"),
    )
    assert decide(grant, "GET", "api.example.com", "/repos/x").path == "/repos/**"
    with pytest.raises(RuleRefused) as refused:
        decide(grant, "POST", "evil.example.com", "/repos/x/issues")
    assert refused.value.reasons == [
        "rule 1 (GET /repos/**): method POST is not one of GET",
        "rule 2 (POST /repos/*/issues on api.example.com): host evil.example.com is not "
        "api.example.com",
    ]


def test_rules_are_checked_field_by_field() -> None:
    with pytest.raises(ValidationFailed) as failed:
        parse_rules(
            [
                {"methods": ["get"], "path": "repos"},
                {"methods": [], "path": "/a/../b"},
                {"methods": ["GET"], "path": "/a**"},
                {"methods": ["GET"], "path": "/%2e"},
                "nonsense",
            ]
        )
    fields = [e.field for e in failed.value.errors]
    assert fields == [
        "rules[0].methods[0]",
        "rules[0].path",
        "rules[1].methods",
        "rules[1].path",
        "rules[2].path",
        "rules[3].path",
        "rules[4]",
    ]
    assert parse_rules([{"methods": ["GET", "GET"], "path": "/x", "host": "API.example.com"}]) == (
        AllowRule(("GET",), "/x", "api.example.com"),
    )


SECRET = "tok-" + "x" * 40


@pytest.mark.parametrize("size", [1, 2, 3, 7, 16, 45, 1000])
def test_the_stream_redactor_finds_a_secret_split_across_chunks(size: int) -> None:
    body = (b"head " + SECRET.encode() + b" mid %22" + SECRET.encode() + b" tail") * 3
    stream = StreamRedactor(Redactor(SECRET))
    out = b"".join(stream.feed(body[i : i + size]) for i in range(0, len(body), size))
    out += stream.end()
    assert SECRET.encode() not in out
    assert out == body.replace(SECRET.encode(), REDACTED.encode())


def test_the_stream_redactor_replaces_encoded_forms_too() -> None:
    value = "a b/c+d=" + "y" * 10
    stream = StreamRedactor(Redactor(value))
    encoded = b"q=a%20b%2Fc%2Bd%3D" + b"y" * 10
    assert stream.whole(encoded) == b"q=" + REDACTED.encode()
