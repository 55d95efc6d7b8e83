"""The audit log through the real API and CLI: `GET /api/v1/audit` (filters, newest first,
cursor paging with `Link`), its JSON Lines export, admins only, one workspace's entries
only; entries written by the use cases instrumented here (profile tests, key rotation, the
per-minute count of tokens handed out); `audit tail [--follow]` and `audit export`; and no
secret anywhere in the log, its API answers or its exports."""

from __future__ import annotations

import base64
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from authprofiles.cli.main import app as cli
from authprofiles.composition import Services
from authprofiles.core.audit import SYSTEM, Action, Actor, AuditEntry, Target
from authprofiles.services.keys import rotate_master_key
from authprofiles.settings import Settings
from authprofiles.store.models import DEFAULT_WORKSPACE_ID
from authprofiles.store.people import UserStore
from tests.support.app import ADMIN, Live, oauth_profile
from tests.support.idp import IdP

#: HTTP behaviour the database does not change runs on SQLite; what it changes is marked
#: ``both_databases`` (see tests/conftest.py).
SQLITE_ONLY = True

OTHER = "ws-other"
T0 = datetime(2020, 1, 1, 9, 0, tzinfo=UTC)
KEY = Actor("api_key", "key-1", "ci-deploy")
# Fixed, not random: a parameter id, which must be the same in every pytest-xdist worker.
PERSON_ID = "6f1c2a9e-4b7d-4e0a-9c3f-2d8e5b1a7c40"
PERSON = Actor("user", PERSON_ID, "Ada Lovelace")
PERSON_EMAIL = "ada@example.com"
#: The entries these tests write are of 2020: the use cases' own (an API key made for a
#: test, ...) are of today, and left out with this.
SCOPE = "until=2021-01-01T00:00:00Z"
#: The default workspace's entries of :func:`filled`, newest first.
EIGHT = [
    "keys.rotated",
    "profile.deleted",
    "profile.tested",
    "api_key.created",
    "profile.created",
    "connection.created",
    "profile.updated",
    "profile.created",
]
#: The default workspace's ``profile.*`` entries of :func:`filled`, newest first.
PROFILE_ACTIONS = [
    "profile.deleted",
    "profile.tested",
    "profile.created",
    "profile.updated",
    "profile.created",
]


def entry(
    action: str,
    minutes: float,
    *,
    actor: Actor = KEY,
    profile_id: str | None = None,
    workspace_id: str = DEFAULT_WORKSPACE_ID,
    **detail: Any,
) -> AuditEntry:
    """An entry ``minutes`` after T0."""
    return AuditEntry(
        workspace_id=workspace_id,
        action=action,
        actor=actor,
        target=Target("profile", profile_id, "billing") if profile_id else None,
        profile_id=profile_id,
        address="203.0.113.7",
        detail=detail,
        at=T0 + timedelta(minutes=minutes),
    )


def now(action: str, profile_id: str, *, at: datetime | None = None) -> AuditEntry:
    """An entry of the default workspace written now (or ``at``)."""
    return AuditEntry(DEFAULT_WORKSPACE_ID, action, KEY, profile_id=profile_id, at=at)


def add_workspace(services: Services, workspace_id: str = OTHER) -> None:
    with services.db.session() as session:
        UserStore().add_workspace(session, workspace_id, f"{workspace_id} name")


def headers_for(services: Services, role: str, workspace_id: str = DEFAULT_WORKSPACE_ID) -> Any:
    key = services.api_keys.create(
        name=f"{role}-{workspace_id}", role=role, workspace_id=workspace_id
    )
    return {"Authorization": f"Bearer {key.key}"}


def pages(http: httpx.Client, url: str, **headers: Any) -> Iterator[httpx.Response]:
    """Each page of a list, following `Link: <...>; rel="next"` to the end."""
    next_url: str | None = url
    while next_url is not None:
        response = http.get(next_url, **headers)
        assert response.status_code == 200, response.text
        yield response
        next_url = response.links.get("next", {}).get("url")


@pytest.fixture
def filled(live: Live) -> Live:
    """Eight entries of the default workspace, one a minute, and two of another one."""
    services = live.services
    add_workspace(services)
    with services.db.session() as session:
        UserStore().add(
            session, user_id=PERSON_ID, email=PERSON_EMAIL, name="Ada Lovelace", password_hash=None
        )
    services.audit_log.record_many(
        [
            entry(Action.PROFILE_CREATED, 0, profile_id="p-1"),
            entry(Action.PROFILE_UPDATED, 1, profile_id="p-1", fields="scopes"),
            entry(Action.CONNECTION_CREATED, 2, profile_id="p-1"),
            entry(Action.PROFILE_CREATED, 3, profile_id="p-2", actor=PERSON),
            entry(Action.API_KEY_CREATED, 4, actor=PERSON),
            entry(Action.PROFILE_TESTED, 5, profile_id="p-2", ok=True, stage="token"),
            entry(Action.PROFILE_DELETED, 6, profile_id="p-1", actor=PERSON),
            entry(Action.KEYS_ROTATED, 7, actor=SYSTEM, rows=3),
            entry(Action.PROFILE_CREATED, 2, profile_id="p-9", workspace_id=OTHER),
            entry(Action.PROFILE_DELETED, 8, profile_id="p-9", workspace_id=OTHER),
        ]
    )
    return live


def _cursor(*key: str) -> str:
    raw = json.dumps(list(key)).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _scoped(query: str) -> str:
    return "" if "until=" in query else f"&{SCOPE}"


def actions(items: list[dict[str, Any]]) -> list[str]:
    return [item["action"] for item in items]


# == the list: newest first, paged, filtered ===================================================


@pytest.mark.both_databases
def test_the_log_is_listed_newest_first_a_page_at_a_time(filled: Live) -> None:
    responses = list(pages(filled.http, f"/api/v1/audit?limit=3&{SCOPE}"))
    assert [len(r.json()) for r in responses] == [3, 3, 2]
    items = [item for r in responses for item in r.json()]
    assert actions(items) == EIGHT
    assert len({item["id"] for item in items}) == 8
    times = [item["at"] for item in items]
    assert times == sorted(times, reverse=True)
    assert 'rel="next"' in responses[0].headers["link"]
    assert "link" not in responses[-1].headers
    tested = items[2]
    assert tested == {
        "id": tested["id"],
        "at": "2020-01-01T09:05:00Z",
        "actor": {"type": "api_key", "id": "key-1", "name": "ci-deploy"},
        "action": "profile.tested",
        "workspace_id": DEFAULT_WORKSPACE_ID,
        "target": {"type": "profile", "id": "p-2", "name": "billing"},
        "ip": "203.0.113.7",
        "profile_id": "p-2",
        "detail": {"ok": True, "stage": "token"},
    }
    assert items[0]["actor"] == {"type": "system", "id": None, "name": "authprofiles"}
    assert items[0]["target"] is None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("action=profile.created", ["profile.created", "profile.created"]),
        (
            "action=profile.*",
            PROFILE_ACTIONS,
        ),
        (
            "action=profile.",
            PROFILE_ACTIONS,
        ),
        ("action=api_key.*", ["api_key.created"]),
        ("action=apixkey.*", []),  # `_` is matched literally
        ("action=profile", []),
        ("profile_id=p-2", ["profile.tested", "profile.created"]),
        (
            "actor=key-1",
            ["profile.tested", "connection.created", "profile.updated", "profile.created"],
        ),
        (
            "actor=ci-deploy",
            ["profile.tested", "connection.created", "profile.updated", "profile.created"],
        ),
        (f"actor={PERSON_ID}", ["profile.deleted", "api_key.created", "profile.created"]),
        (
            f"actor={PERSON_EMAIL.upper()}",
            ["profile.deleted", "api_key.created", "profile.created"],
        ),
        ("actor=nobody", []),
        ("since=2020-01-01T09:05:00Z", ["keys.rotated", "profile.deleted", "profile.tested"]),
        ("until=2020-01-01T09:02:00Z", ["profile.updated", "profile.created"]),
        (
            "since=2020-01-01T10:01:00%2B01:00&until=2020-01-01T09:03:00Z",
            ["connection.created", "profile.updated"],
        ),
        (
            "action=profile.*&actor=ci-deploy&since=2020-01-01T09:01:00Z",
            ["profile.tested", "profile.updated"],
        ),
    ],
)
def test_filters_by_actor_profile_action_and_time(
    filled: Live, query: str, expected: list[str]
) -> None:
    items = [
        item
        for r in pages(filled.http, f"/api/v1/audit?{query}&limit=2{_scoped(query)}")
        for item in r.json()
    ]
    assert actions(items) == expected


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("cursor=bm90LWEtY3Vyc29y", "cursor"),
        ("cursor=" + _cursor("2020-01-01T09:00:00+00:00", "\x00"), "cursor"),
        ("since=yesterday", "since"),
        ("until=0.5", "until"),
        ("until=2020-01-01T09:03:00", "until"),  # no zone: the API does not guess one
        ("since=0001-01-01T00:00:00%2B01:00", "since"),  # before year 1 in UTC
        ("since=2026-01-02T00:00:00Z&until=2020-01-01T00:00:00Z", "until"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("actor=" + "x" * 400, "actor"),
        ("action=profile.%00", "action"),
    ],
)
def test_bad_parameters_are_refused_naming_them(filled: Live, query: str, field: str) -> None:
    response = filled.http.get(f"/api/v1/audit?{query}")
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in response.text


# == who may read it =============================================================================


@pytest.mark.parametrize("path", ["/api/v1/audit", "/api/v1/audit/export"])
def test_only_admins_read_the_log(filled: Live, path: str) -> None:
    services = filled.services
    for role in ("developer", "viewer"):
        refused = filled.http.get(path, headers=headers_for(services, role))
        assert refused.status_code == 403, (role, refused.text)
        assert "admin" in refused.json()["detail"]
    anonymous = httpx.get(filled.url + path, trust_env=False)
    assert anonymous.status_code == 401
    wrong = filled.http.get(path, headers={"Authorization": "Bearer ap_0000000000000000_nope"})
    assert wrong.status_code == 401


@pytest.mark.both_databases
def test_each_workspace_sees_its_own_entries_only(filled: Live) -> None:
    other_admin = headers_for(filled.services, "admin", OTHER)
    mine = [i for r in pages(filled.http, f"/api/v1/audit?{SCOPE}") for i in r.json()]
    theirs = [
        i
        for r in pages(filled.http, f"/api/v1/audit?{SCOPE}", headers=other_admin)
        for i in r.json()
    ]
    assert {i["workspace_id"] for i in mine} == {DEFAULT_WORKSPACE_ID}
    assert len(mine) == 8
    assert actions(theirs) == ["profile.deleted", "profile.created"]
    assert {i["workspace_id"] for i in theirs} == {OTHER}
    # Not by profile, actor or export either.
    assert filled.http.get("/api/v1/audit?profile_id=p-9").json() == []
    assert (
        filled.http.get("/api/v1/audit", params={"actor": PERSON_EMAIL}, headers=other_admin).json()
        == []
    )
    exported = filled.http.get(f"/api/v1/audit/export?{SCOPE}", headers=other_admin)
    assert [json.loads(line)["profile_id"] for line in exported.text.splitlines()] == ["p-9", "p-9"]


# == export ======================================================================================


def test_export_streams_every_matching_entry_as_json_lines_oldest_first(live: Live) -> None:
    services = live.services
    many = 1_234  # more than two of the export's pages
    services.audit_log.record_many(
        entry(Action.PROFILE_TESTED if i % 2 else Action.PROFILE_UPDATED, i, profile_id="p-1", n=i)
        for i in range(many)
    )
    with live.http.stream("GET", f"/api/v1/audit/export?{SCOPE}") as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-ndjson"
        lines = list(response.iter_lines())
    items = [json.loads(line) for line in lines]
    assert [item["detail"]["n"] for item in items] == list(range(many))
    listed = live.http.get(f"/api/v1/audit?limit=1&{SCOPE}").json()[0]
    assert items[-1] == listed  # the same shape as the list's
    tested = live.http.get("/api/v1/audit/export?action=profile.tested&since=2020-01-01T09:10:00Z")
    numbers = [json.loads(line)["detail"]["n"] for line in tested.text.splitlines()]
    assert numbers == list(range(11, many, 2))


# == what the use cases record ====================================================================


@pytest.mark.idp
def test_a_profile_test_is_recorded_with_its_outcome_and_no_secret(live: Live, idp: IdP) -> None:
    planted = f"planted-secret-{uuid.uuid4().hex}"
    failing, _ = oauth_profile(live, idp, "client-credentials", client_secret=planted)
    passing, client = oauth_profile(live, idp, "client-credentials")
    password_profile, _ = oauth_profile(live, idp, "password", client_secret=planted)
    planted_password = f"planted-password-{uuid.uuid4().hex}"
    for profile_id, body in (
        (failing["id"], {}),
        (passing["id"], {}),
        (password_profile["id"], {"username": "nobody", "password": planted_password}),
    ):
        answer = live.http.post(f"/api/v1/profiles/{profile_id}/test", json=body)
        assert answer.status_code == 200, answer.text

    tested = live.http.get("/api/v1/audit?action=profile.tested").json()
    assert [(t["profile_id"], t["detail"]) for t in tested] == [
        (password_profile["id"], {"ok": False, "stage": "token", "status_code": 401}),
        (passing["id"], {"ok": True, "stage": "token", "status_code": 200}),
        (failing["id"], {"ok": False, "stage": "token", "status_code": 401}),
    ]
    assert tested[1]["target"] == {"type": "profile", "id": passing["id"], "name": passing["name"]}
    assert tested[1]["actor"]["type"] == "api_key"
    assert tested[1]["actor"]["name"] == "integration"

    secrets = (planted, planted_password, client.client_secret)
    with live.services.db.read() as session:
        table = repr(session.execute(text("SELECT * FROM audit_events")).all())
    assert "profile.tested" in table
    listed = live.http.get("/api/v1/audit?limit=1000").text
    exported = live.http.get("/api/v1/audit/export").text
    runner = CliRunner()
    tail = runner.invoke(
        cli, ["audit", "tail", "--json", "--database", live.services.settings.database_url]
    )
    for where, found in (
        ("table", table),
        ("list", listed),
        ("export", exported),
        ("tail", tail.output),
    ):
        for secret in secrets:
            assert secret not in found, f"a secret is in the audit {where}"


@pytest.mark.both_databases
def test_a_key_rotation_is_recorded_in_every_workspace(
    services: Services, settings: Settings
) -> None:
    add_workspace(services)
    result = rotate_master_key(settings, db=services.db, wait_seconds=5, audit=services.audit)
    assert result.activated
    for workspace_id in (DEFAULT_WORKSPACE_ID, OTHER):
        records = services.audit_log.query(
            _admin(workspace_id), _filters(action="keys.rotated"), limit=10
        )
        assert len(records) == 1
        rotated = records[0]
        assert rotated.actor == SYSTEM
        assert rotated.workspace_id == workspace_id
        assert rotated.detail["activated"] is True
        assert rotated.detail["new_key_id"] == result.new_key_id
        assert rotated.detail["rows"] == result.rows
        assert result.new_key_for_environment is not None
        assert result.new_key_for_environment not in json.dumps(rotated.as_json())


@pytest.mark.idp
@pytest.mark.both_databases
def test_tokens_handed_out_are_counted_per_connection_and_minute(live: Live, idp: IdP) -> None:
    profile, _ = oauth_profile(live, idp, "client-credentials")
    connection_id = live.connect(profile["id"])["id"]
    for _ in range(7):
        assert live.token(connection_id).status_code == 200
    assert live.http.get("/api/v1/audit?action=token.issued").json() == []  # not per token
    live.services.token_counter.flush_all()  # as the worker does at the end of each minute

    issued = live.http.get(f"/api/v1/audit?action=token.issued&profile_id={profile['id']}").json()
    assert 1 <= len(issued) <= 2  # two when the fetches straddled a minute
    assert sum(i["detail"]["count"] for i in issued) == 7
    for item in issued:
        assert item["target"] == {"type": "connection", "id": connection_id, "name": None}
        assert item["actor"]["name"] == "integration"
        assert item["detail"]["minute"].endswith(":00Z")
    assert all(idp_token not in json.dumps(issued) for idp_token in _tokens(live, connection_id))


def _tokens(live: Live, connection_id: str) -> list[str]:
    return [live.token(connection_id).json()["access_token"]]


# == the command line ============================================================================


def test_cli_tail_prints_the_latest_entries_oldest_first(filled: Live) -> None:
    url = filled.services.settings.database_url
    runner = CliRunner(env={"COLUMNS": "200"})
    as_json = runner.invoke(cli, ["audit", "tail", "--json", "--limit", "3", "--database", url])
    assert as_json.exit_code == 0, as_json.output
    items = [json.loads(line) for line in as_json.output.splitlines()]
    assert items == list(reversed(filled.http.get("/api/v1/audit?limit=3").json()))
    latest = runner.invoke(cli, ["audit", "tail", "--json", "--limit", "100", "--database", url])
    mine = [json.loads(line) for line in latest.output.splitlines()]
    assert actions([i for i in mine if i["at"] < "2021"]) == [*reversed(EIGHT)]

    table = runner.invoke(cli, ["audit", "tail", "--action", "profile.*", "--database", url])
    assert table.exit_code == 0, table.output
    assert "profile.updated" in table.output
    assert "keys.rotated" not in table.output
    assert table.output.index("profile.updated") < table.output.index("profile.deleted")
    assert "ci-deploy" in table.output and "ok=true" in table.output

    other = runner.invoke(
        cli, ["audit", "tail", "--json", "--workspace", f"{OTHER} name", "--database", url]
    )
    assert other.exit_code == 0, other.output
    theirs = [json.loads(line) for line in other.output.splitlines()]
    assert {i["workspace_id"] for i in theirs} == {OTHER}
    assert [i["profile_id"] for i in theirs if i["at"] < "2021"] == ["p-9", "p-9"]
    unknown = runner.invoke(cli, ["audit", "tail", "--workspace", "nowhere", "--database", url])
    assert unknown.exit_code != 0


def test_cli_export_writes_json_lines_to_a_file_or_stdout(filled: Live, tmp_path: Path) -> None:
    url = filled.services.settings.database_url
    runner = CliRunner()
    out = tmp_path / "audit.jsonl"
    written = runner.invoke(
        cli,
        [
            "audit",
            "export",
            "--since",
            "2020-01-01T09:03:00Z",
            "--until",
            "2021-01-01T00:00:00Z",
            "--output",
            str(out),
            "--database",
            url,
        ],
    )
    assert written.exit_code == 0, written.output
    items = [json.loads(line) for line in out.read_text().splitlines()]
    assert actions(items) == [
        "profile.created",
        "api_key.created",
        "profile.tested",
        "profile.deleted",
        "keys.rotated",
    ]
    assert "Wrote 5 entries" in written.output
    api = filled.http.get(f"/api/v1/audit/export?since=2020-01-01T09:03:00Z&{SCOPE}").text
    assert out.read_text() == api

    stdout = runner.invoke(
        cli, ["audit", "export", "--until", "2020-01-01T09:01:00Z", "--database", url]
    )
    assert stdout.exit_code == 0, stdout.output
    assert actions([json.loads(line) for line in stdout.output.splitlines()]) == ["profile.created"]
    refused = runner.invoke(cli, ["audit", "export", "--since", "soon", "--database", url])
    assert refused.exit_code != 0


class Lines:
    """A child process's stdout, line by line, read in a thread (so a wait has a timeout)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._lines: queue.Queue[str | None] = queue.Queue()
        assert process.stdout is not None
        stream = process.stdout

        def read() -> None:
            for line in stream:
                self._lines.put(line)
            self._lines.put(None)

        threading.Thread(target=read, daemon=True).start()

    def until(self, found: Any, timeout: float = 60.0) -> list[str]:
        """Lines read until one for which ``found(line)`` holds (inclusive)."""
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"not printed within {timeout} s; printed: {seen}"
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            assert line is not None, f"the process ended; printed: {seen}"
            seen.append(line)
            if found(line):
                return seen


def test_cli_tail_follow_prints_new_entries_as_they_are_written(live: Live) -> None:
    services = live.services
    services.audit.record(now(Action.PROFILE_CREATED, "p-old"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHPROFILES_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "authprofiles.cli.main",
            "audit",
            "tail",
            "--follow",
            "--json",
            "--interval",
            "0.2",
            "--database",
            services.settings.database_url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        lines = Lines(process)
        lines.until(lambda line: "p-old" in line)
        # A new entry through the API's own path (a record of its own), then one written
        # with a time earlier than the newest shown (a transaction committing late).
        services.audit.record(now(Action.PROFILE_DELETED, "p-new"))
        new = lines.until(lambda line: "p-new" in line)
        assert [json.loads(line)["profile_id"] for line in new] == ["p-new"]
        late_at = datetime.now(UTC) - timedelta(seconds=10)
        services.audit.record(now(Action.PROFILE_UPDATED, "p-late", at=late_at))
        late = lines.until(lambda line: "p-late" in line)
        assert [json.loads(line)["profile_id"] for line in late] == ["p-late"]
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = process.stderr.read() if process.stderr else ""
    assert "Traceback" not in stderr


# -- helpers ----------------------------------------------------------------------------------


def _admin(workspace_id: str = DEFAULT_WORKSPACE_ID) -> Any:
    from authprofiles.core.callers import Principal, Role

    return Principal(workspace_id=workspace_id, role=Role.ADMIN, name="test-admin")


def _filters(**filters: Any) -> Any:
    from authprofiles.services.audit import AuditFilters

    return AuditFilters(**filters)


@pytest.mark.both_databases
def test_when_each_person_last_did_something_is_one_grouped_read(services: Services) -> None:
    """What the console's members page shows as "last sign-in"."""
    add_workspace(services)
    other_person = Actor("user", "someone-else", "Grace")
    services.audit_log.record_many(
        [
            entry(Action.USER_SIGNED_IN, 1, actor=PERSON),
            entry(Action.USER_SIGNED_IN, 5, actor=PERSON),
            entry(Action.PROFILE_CREATED, 9, actor=PERSON),  # another action: not counted
            entry(Action.USER_SIGNED_IN, 3, actor=other_person),
            entry(Action.USER_SIGNED_IN, 7, actor=other_person, workspace_id=OTHER),
        ]
    )
    last = services.audit_log.last_done(
        ADMIN, Action.USER_SIGNED_IN, [PERSON_ID, "someone-else", "never-signed-in"]
    )
    assert last == {PERSON_ID: T0 + timedelta(minutes=5), "someone-else": T0 + timedelta(minutes=3)}
    assert services.audit_log.last_done(ADMIN, Action.USER_SIGNED_IN, []) == {}
