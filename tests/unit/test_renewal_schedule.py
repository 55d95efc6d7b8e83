"""When the background refresher renews a token, and how its loop paces itself."""

from __future__ import annotations

import itertools
import random
import threading
import time
from datetime import UTC, datetime, timedelta

from authprofiles.core.renewal import DEFAULT_SCHEDULE, RenewalSchedule
from authprofiles.services.tokens import BackgroundRefresher

NOW = datetime(2030, 1, 1, tzinfo=UTC)
HOUR = NOW + timedelta(hours=1)
SCHEDULE = RenewalSchedule(lead_seconds=360, jitter=0.1)


def test_a_token_is_renewed_the_lead_before_it_expires_and_up_to_the_jitter_earlier() -> None:
    assert SCHEDULE.renew_at(HOUR, NOW, 0.0) == HOUR - timedelta(seconds=360)
    assert SCHEDULE.renew_at(HOUR, NOW, 0.5) == HOUR - timedelta(seconds=360 + 180)
    assert SCHEDULE.renew_at(HOUR, NOW, 1.0) == HOUR - timedelta(seconds=360 + 360)


def test_the_jitter_is_a_part_of_the_tokens_lifetime() -> None:
    day = NOW + timedelta(days=1)
    assert SCHEDULE.renew_at(day, NOW, 1.0) == day - timedelta(seconds=360, hours=2.4)


def test_a_spread_or_a_jitter_out_of_range_stays_within_bounds() -> None:
    assert SCHEDULE.renew_at(HOUR, NOW, -3) == SCHEDULE.renew_at(HOUR, NOW, 0)
    assert SCHEDULE.renew_at(HOUR, NOW, 7) == SCHEDULE.renew_at(HOUR, NOW, 1)
    wide = RenewalSchedule(lead_seconds=360, jitter=3.0)
    assert wide.renew_at(HOUR, NOW, 1.0) == HOUR - timedelta(seconds=360, minutes=30)


def test_a_token_that_never_expires_is_never_due() -> None:
    assert SCHEDULE.renew_at(None, NOW, 0.5) is None


def test_a_token_shorter_lived_than_twice_the_lead_is_renewed_by_halfway_through_its_life() -> None:
    # Renewed at its lead, a two-minute token would be due again the moment it is stored.
    two_minutes = NOW + timedelta(minutes=2)
    assert SCHEDULE.renew_at(two_minutes, NOW, 0.0) == NOW + timedelta(minutes=1)
    assert SCHEDULE.renew_at(two_minutes, NOW, 1.0) == NOW + timedelta(seconds=48)
    expired = NOW - timedelta(seconds=5)
    assert SCHEDULE.renew_at(expired, NOW, 0.5) == expired


def test_no_token_is_due_before_it_was_issued() -> None:
    widest = RenewalSchedule(lead_seconds=10_000, jitter=0.5)
    for minutes in (1, 10, 60, 600):
        expires = NOW + timedelta(minutes=minutes)
        at = widest.renew_at(expires, NOW, 1.0)
        assert at is not None and at >= NOW


def test_a_million_tokens_issued_at_once_come_due_spread_over_the_jitter() -> None:
    draw = random.Random(7)
    due = [SCHEDULE.renew_at(HOUR, NOW, draw.random()) for _ in range(100_000)]
    seconds = [(HOUR - at).total_seconds() for at in due if at is not None]
    assert min(seconds) >= 360 and max(seconds) <= 720
    # Evenly: no twelve-second slice of the six minutes holds much more than its share.
    slices = [0] * 30
    for each in seconds:
        slices[min(int((each - 360) // 12), 29)] += 1
    assert max(slices) < 1.1 * len(seconds) / 30
    # So a million tokens issued at once come due at under 3,100 a second, not at once.
    assert max(slices) / len(seconds) * 1_000_000 / 12 < 3_100


def test_the_default_schedule_is_the_settings_defaults() -> None:
    from authprofiles.settings import Settings

    settings = Settings()
    assert DEFAULT_SCHEDULE == RenewalSchedule(
        lead_seconds=settings.background_refresh_lead_seconds + settings.refresh_skew_seconds,
        jitter=settings.background_refresh_jitter,
    )


def test_a_pass_that_found_a_full_batch_runs_again_at_once_and_one_that_did_not_waits() -> None:
    runs: list[float] = []
    backlog = [True, True, True, False]
    done = threading.Event()

    def renew_due() -> bool:
        runs.append(time.monotonic())
        if len(runs) == len(backlog):
            done.set()
        return backlog[min(len(runs), len(backlog)) - 1]

    loop = BackgroundRefresher(0.05, renew_due)
    loop.start()
    try:
        assert done.wait(5)
        time.sleep(0.3)
    finally:
        loop.stop()
    first_four = runs[:4]
    # The three passes after a full batch follow at once; the one after that waited.
    assert all(b - a < 0.045 for a, b in itertools.pairwise(first_four))
    assert len(runs) >= 5 and runs[4] - runs[3] >= 0.045


def test_a_failing_pass_does_not_stop_the_loop_nor_make_it_hurry() -> None:
    runs: list[float] = []

    def broken() -> bool:
        runs.append(time.monotonic())
        raise RuntimeError("boom")

    loop = BackgroundRefresher(0.05, broken)
    loop.start()
    try:
        time.sleep(0.4)
    finally:
        loop.stop()
    assert 3 <= len(runs) <= 9
