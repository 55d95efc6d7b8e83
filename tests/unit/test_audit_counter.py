"""The count of tokens handed out (``services.audit.TokenIssueCounter``): one ``token.issued``
entry per connection, caller and minute with the count, written once the minute has ended
(or at shutdown), never lost to a failed write or to threads counting while it flushes.
And the audit log's own writes: a failure is logged without the entry's particulars and
never raised into the request."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import pytest

from authprofiles.core.audit import Action, AuditEntry, Target
from authprofiles.core.callers import CallerKind, Principal, Role
from authprofiles.services.audit import AuditFilters, AuditLog, TokenIssueCounter
from authprofiles.store.db import Database

ALICE = Principal(workspace_id="ws-1", role=Role.DEVELOPER, key_id="key-a", name="alice-key")
BOB = Principal(
    workspace_id="ws-1",
    role=Role.ADMIN,
    user_id="user-b",
    name="bob@example.com",
    kind=CallerKind.USER,
    address="203.0.113.9",
)
OTHER_WORKSPACE = Principal(workspace_id="ws-2", role=Role.ADMIN, key_id="key-c", name="carol")
#: 2026-01-01T12:00:00Z, in seconds.
NOON = 1_767_268_800.0


class FakeTime:
    def __init__(self) -> None:
        self.seconds = NOON + 5

    def __call__(self) -> float:
        return self.seconds


class FakeWriter:
    """Keeps what it is given; refuses (returns False) while ``failing``."""

    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []
        self.failing = False
        self.calls = 0
        self._lock = threading.Lock()

    def record_many(self, entries: Iterable[AuditEntry]) -> bool:
        with self._lock:
            self.calls += 1
            if self.failing:
                return False
            self.entries += list(entries)
            return True


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


@pytest.fixture
def writer() -> FakeWriter:
    return FakeWriter()


@pytest.fixture
def counter(writer: FakeWriter, clock: FakeTime) -> TokenIssueCounter:
    return TokenIssueCounter(writer, now=clock)


def _by_key(entries: list[AuditEntry]) -> dict[tuple[str, str | None, str | None, Any], Any]:
    return {
        (e.workspace_id, e.actor.id, e.target.id if e.target else None, e.detail["minute"]): e
        for e in entries
    }


def test_counts_are_aggregated_per_connection_caller_and_minute(
    counter: TokenIssueCounter, writer: FakeWriter, clock: FakeTime
) -> None:
    for _ in range(3):
        counter.count(ALICE, "conn-1", "prof-1")
    counter.count(ALICE, "conn-2", "prof-1")
    counter.count(ALICE, "conn-2", "prof-1")
    counter.count(BOB, "conn-1", "prof-1")
    counter.count(OTHER_WORKSPACE, "conn-9", "prof-9")
    clock.seconds += 60  # 12:01: the 12:00 minute has ended
    counter.count(ALICE, "conn-1", "prof-1")

    assert counter.flush() == 4
    entries = _by_key(writer.entries)
    assert set(entries) == {
        ("ws-1", "key-a", "conn-1", "2026-01-01T12:00:00Z"),
        ("ws-1", "key-a", "conn-2", "2026-01-01T12:00:00Z"),
        ("ws-1", "user-b", "conn-1", "2026-01-01T12:00:00Z"),
        ("ws-2", "key-c", "conn-9", "2026-01-01T12:00:00Z"),
    }
    first = entries[("ws-1", "key-a", "conn-1", "2026-01-01T12:00:00Z")]
    assert first.action == Action.TOKEN_ISSUED
    assert first.target == Target("connection", "conn-1")
    assert first.profile_id == "prof-1"
    assert dict(first.detail) == {"count": 3, "minute": "2026-01-01T12:00:00Z"}
    assert entries[("ws-1", "key-a", "conn-2", "2026-01-01T12:00:00Z")].detail["count"] == 2
    person = entries[("ws-1", "user-b", "conn-1", "2026-01-01T12:00:00Z")]
    assert (person.actor.type, person.actor.name) == ("user", "bob@example.com")
    assert person.address == "203.0.113.9"
    # The current minute waits until it has ended: one entry per key and minute.
    assert counter.pending() == 1
    assert counter.flush() == 0
    clock.seconds += 60
    assert counter.flush() == 1
    last = writer.entries[-1]
    assert dict(last.detail) == {"count": 1, "minute": "2026-01-01T12:01:00Z"}
    assert counter.pending() == 0


def test_flush_all_writes_the_current_minute_too(
    counter: TokenIssueCounter, writer: FakeWriter
) -> None:
    counter.count(ALICE, "conn-1", None)
    counter.count(ALICE, "conn-1", None)
    assert counter.flush() == 0
    assert counter.flush_all() == 1
    assert [dict(e.detail)["count"] for e in writer.entries] == [2]
    assert writer.entries[0].profile_id is None
    assert counter.flush_all() == 0  # nothing left; no empty write either
    assert writer.calls == 1


def test_a_failed_write_keeps_the_counts_for_the_next_flush(
    counter: TokenIssueCounter, writer: FakeWriter, clock: FakeTime
) -> None:
    for _ in range(4):
        counter.count(ALICE, "conn-1", "prof-1")
    clock.seconds += 60
    writer.failing = True
    assert counter.flush() == 0
    assert counter.pending() == 4
    writer.failing = False
    assert counter.flush() == 1
    assert [dict(e.detail)["count"] for e in writer.entries] == [4]
    assert counter.pending() == 0


def test_counting_from_many_threads_while_flushing_loses_and_repeats_nothing(
    writer: FakeWriter,
) -> None:
    counter = TokenIssueCounter(writer)
    threads, per_thread = 8, 5_000
    callers = [
        Principal(workspace_id="ws-1", role=Role.DEVELOPER, key_id=f"key-{i % 3}", name="k")
        for i in range(threads)
    ]
    start = threading.Barrier(threads + 1)
    done = threading.Event()

    def count(principal: Principal) -> None:
        start.wait()
        for i in range(per_thread):
            counter.count(principal, f"conn-{i % 4}", "prof-1")

    def flush_meanwhile() -> None:
        start.wait()
        while not done.is_set():
            counter.flush_all()

    workers = [threading.Thread(target=count, args=(p,)) for p in callers]
    flusher = threading.Thread(target=flush_meanwhile)
    for thread in [*workers, flusher]:
        thread.start()
    for thread in workers:
        thread.join()
    done.set()
    flusher.join()
    counter.flush_all()

    written = sum(int(cast(int, e.detail["count"])) for e in writer.entries)
    assert written == threads * per_thread
    assert counter.pending() == 0


# -- the audit log's own writes -------------------------------------------------------------


class BrokenDatabase:
    """A database whose every write fails, quoting what it was given (as drivers do)."""

    @contextmanager
    def session(self) -> Iterator[Any]:
        raise RuntimeError("INSERT failed with parameters ('planted-detail-value',)")
        yield  # pragma: no cover


def test_a_failed_write_is_logged_without_particulars_and_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    audit = AuditLog(cast(Database, BrokenDatabase()))
    entry = AuditEntry.by(
        ALICE, Action.PROFILE_TESTED, Target("profile", "p1"), detail={"x": "planted-detail-value"}
    )
    with caplog.at_level(logging.WARNING, logger="authprofiles.audit"):
        audit.record(entry)  # no unit: its own transaction, which fails quietly
    assert "profile.tested" in caplog.text
    assert "RuntimeError" in caplog.text
    assert "planted-detail-value" not in caplog.text


def test_a_write_within_a_unit_of_work_fails_with_it() -> None:
    class BrokenUnit:
        def add(self, row: object) -> None:
            raise RuntimeError("the unit is broken")

    audit = AuditLog(cast(Database, BrokenDatabase()))
    with pytest.raises(RuntimeError):
        audit.record(AuditEntry.by(ALICE, Action.PROFILE_CREATED), unit=BrokenUnit())


def test_filters_refuse_what_no_entry_can_match() -> None:
    from datetime import UTC, datetime

    from authprofiles.core.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as refused:
        AuditFilters(
            actor="x" * 321,
            action="profile.\x00",
            since=datetime(2026, 1, 2, tzinfo=UTC),
            until=datetime(2026, 1, 1, tzinfo=UTC),
        ).check()
    assert {e.field for e in refused.value.errors} == {"actor", "action", "until"}
    # A time without a zone is UTC.
    query = AuditFilters(since=datetime(2026, 1, 1, 9, 30)).query("ws-1")
    assert query.since == datetime(2026, 1, 1, 9, 30, tzinfo=UTC)
