"""An error nobody handled: a 500 problem, the connection kept, and no message logged."""

from __future__ import annotations

import logging

import pytest

from authprofiles.services.profiles import ProfileService
from tests.support.app import Live

SECRET_IN_MESSAGE = "s3cr3t-in-an-exception-message"


def test_an_unexpected_error_is_a_500_problem_logged_without_its_message(
    live: Live, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError(SECRET_IN_MESSAGE)

    monkeypatch.setattr(ProfileService, "list", explode)
    caplog.set_level(logging.DEBUG)

    first = live.http.get("/api/v1/profiles")
    second = live.http.get("/healthz")  # the same keep-alive connection still answers

    assert first.status_code == 500
    assert first.headers["content-type"].startswith("application/problem+json")
    assert SECRET_IN_MESSAGE not in first.text
    assert second.status_code == 200
    assert "unhandled RuntimeError" in caplog.text
    assert SECRET_IN_MESSAGE not in caplog.text
    assert "Exception in ASGI application" not in caplog.text
