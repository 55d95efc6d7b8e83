"""Callers of one process asking for the same refresh at once share one answer."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from authprofiles.services.tokens import _Flights

WAIT = 30  # seconds: only a broken implementation waits this long


def _callers_joined(flights: _Flights[object], key: str, count: int) -> None:
    """Returns once ``count`` callers wait on the flight for ``key``."""
    flight = flights._active[key]
    deadline = threading.Event()
    while not deadline.wait(0.001):
        if flight.done.is_set() or _waiting(flight) >= count:
            return


def _waiting(flight: object) -> int:
    done = flight.done  # type: ignore[attr-defined]
    return len(done._cond._waiters)


def test_callers_that_come_while_one_works_get_its_result_and_do_nothing() -> None:
    flights: _Flights[object] = _Flights()
    calls: list[int] = []
    release = threading.Event()
    result = object()

    def work() -> object:
        calls.append(1)
        assert release.wait(WAIT)
        return result

    with ThreadPoolExecutor(8) as pool:
        leader = pool.submit(flights.run, "c1", work)
        while "c1" not in flights._active:
            threading.Event().wait(0.001)
        followers = [pool.submit(flights.run, "c1", work) for _ in range(7)]
        _callers_joined(flights, "c1", 7)
        release.set()
        answers = [leader.result(WAIT)] + [f.result(WAIT) for f in followers]
    assert calls == [1]
    assert all(answer is result for answer in answers)
    assert flights._active == {}


def test_the_leaders_error_reaches_every_caller_and_the_next_call_starts_afresh() -> None:
    flights: _Flights[int] = _Flights()
    release = threading.Event()

    def failing() -> int:
        assert release.wait(WAIT)
        raise RuntimeError("the identity provider refused")

    with ThreadPoolExecutor(4) as pool:
        leader = pool.submit(flights.run, "c1", failing)
        while "c1" not in flights._active:
            threading.Event().wait(0.001)
        follower = pool.submit(flights.run, "c1", failing)
        _callers_joined(flights, "c1", 1)
        release.set()
        for future in (leader, follower):
            with pytest.raises(RuntimeError, match="refused"):
                future.result(WAIT)
    assert flights.run("c1", lambda: 7) == 7


def test_different_keys_do_not_wait_for_each_other() -> None:
    flights: _Flights[str] = _Flights()
    assert flights.run("a", lambda: flights.run("b", lambda: "inner")) == "inner"
