"""Mutable, process-wide state of the test IdP: request counters, token lifetime and the
device flow's polling answers.

Requests are served on many threads, so every access takes the lock.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from typing import Any

_lock = threading.Lock()
_token_requests: Counter[str] = Counter()
_path_requests: Counter[str] = Counter()
_token_errors: Counter[str] = Counter()
_access_token_lifetime = int(os.environ.get("IDP_ACCESS_TOKEN_LIFETIME", "3600"))
_device_interval = int(os.environ.get("IDP_DEVICE_INTERVAL", "1"))
_slow_downs_left = 0


def count_request(path: str, grant_type: str | None) -> None:
    with _lock:
        _path_requests[path] += 1
        if grant_type is not None:
            _token_requests[grant_type] += 1


def count_token_error(error: str) -> None:
    with _lock:
        _token_errors[error] += 1


def counters() -> dict[str, dict[str, int]]:
    with _lock:
        return {
            "token_requests": dict(_token_requests),
            "requests": dict(_path_requests),
            "token_errors": dict(_token_errors),
        }


def reset_counters() -> None:
    with _lock:
        _token_requests.clear()
        _path_requests.clear()
        _token_errors.clear()


def access_token_lifetime(request: Any = None) -> int:
    """oauthlib calls this (token_expires_in) for every token it issues."""
    with _lock:
        return _access_token_lifetime


def set_access_token_lifetime(seconds: int) -> None:
    global _access_token_lifetime
    with _lock:
        _access_token_lifetime = seconds


def device_interval() -> int:
    """The ``interval`` the device authorization endpoint answers (RFC 8628 section 3.2)."""
    with _lock:
        return _device_interval


def set_device_interval(seconds: int) -> None:
    global _device_interval
    with _lock:
        _device_interval = seconds


def answer_slow_down(times: int) -> None:
    """The next ``times`` device-code polls are answered ``slow_down`` (DOT never says it)."""
    global _slow_downs_left
    with _lock:
        _slow_downs_left = times


def take_slow_down() -> bool:
    """Whether this device-code poll is one to answer ``slow_down`` (uses one up)."""
    global _slow_downs_left
    with _lock:
        if _slow_downs_left <= 0:
            return False
        _slow_downs_left -= 1
        return True
