"""The refresh-once decision: on the profile's auth error status, refresh and resend once."""

from __future__ import annotations

from authprofiles.wire.refresh_once import RefreshOnce


def test_an_answer_that_is_not_the_auth_error_status_is_handed_back() -> None:
    once = RefreshOnce(401)
    for status in (200, 204, 302, 400, 403, 404, 500):
        assert once.on_response(status) is False
    assert once.refreshed is False


def test_the_auth_error_status_asks_for_one_refresh_and_never_a_second() -> None:
    once = RefreshOnce(401)
    assert once.on_response(401) is True
    assert once.refreshed is True
    assert once.on_response(401) is False  # the fresh token refused too: the API's answer
    assert once.refreshed is True


def test_the_status_is_the_profiles_own() -> None:
    once = RefreshOnce(403)
    assert once.on_response(401) is False
    assert once.on_response(403) is True
    assert once.on_response(403) is False


def test_an_answer_after_the_resend_is_handed_back_whatever_it_is() -> None:
    once = RefreshOnce(401)
    assert once.on_response(401) is True
    assert once.on_response(200) is False
    assert "refreshed=True" in repr(once)
