"""Mutable, process-wide state of the test IdP: request counters and token lifetime.

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
_access_token_lifetime = int(os.environ.get("IDP_ACCESS_TOKEN_LIFETIME", "3600"))


def count_request(path: str, grant_type: str | None) -> None:
    with _lock:
        _path_requests[path] += 1
        if grant_type is not None:
            _token_requests[grant_type] += 1


def counters() -> dict[str, dict[str, int]]:
    with _lock:
        return {"token_requests": dict(_token_requests), "requests": dict(_path_requests)}


def reset_counters() -> None:
    with _lock:
        _token_requests.clear()
        _path_requests.clear()


def access_token_lifetime(request: Any = None) -> int:
    """oauthlib calls this (token_expires_in) for every token it issues."""
    with _lock:
        return _access_token_lifetime


def set_access_token_lifetime(seconds: int) -> None:
    global _access_token_lifetime
    with _lock:
        _access_token_lifetime = seconds
