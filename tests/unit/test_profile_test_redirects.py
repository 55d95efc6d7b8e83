"""Edge cases of the profile test's redirect rule, on httpx MockTransport (no sockets).

The rule itself (a credentialed call never follows a redirect to another origin) is
proven against real loopback servers in tests/integration/test_profile_test.py.
"""

from __future__ import annotations

import httpx

from authprofiles.core.exchanges import MAX_REDIRECTS, Redirect
from authprofiles.oauth.recording import send_within_origin


def send(start: str, answers: dict[str, str]) -> tuple[list[str], list[Redirect]]:
    """Request ``start`` with an API key; ``answers`` maps a URL to its 302 Location."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        location = answers.get(str(request.url))
        if location is None:
            return httpx.Response(200, json={"ok": True})
        return httpx.Response(302, headers={"location": location})

    redirects: list[Redirect] = []
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        request = client.build_request("GET", start, headers={"X-Api-Key": "k" * 16})
        send_within_origin(client, request, redirects)
    return seen, redirects


def test_an_upgrade_to_https_on_the_same_host_is_another_origin() -> None:
    # httpx keeps Authorization on this one; the scheme still makes it another origin.
    seen, redirects = send("http://api.test/me", {"http://api.test/me": "https://api.test/me"})
    assert seen == ["http://api.test/me"]
    assert [(r.location, r.followed) for r in redirects] == [("https://api.test/me", False)]


def test_the_default_port_written_out_is_the_same_origin() -> None:
    seen, redirects = send(
        "https://api.test/me", {"https://api.test/me": "https://api.test:443/me/"}
    )
    assert seen == ["https://api.test/me", "https://api.test/me/"]  # httpx drops ":443"
    assert [r.followed for r in redirects] == [True]


def test_another_host_on_the_same_port_is_another_origin() -> None:
    seen, redirects = send("https://api.test/me", {"https://api.test/me": "https://evil.test/me"})
    assert seen == ["https://api.test/me"]
    assert redirects[0].followed is False


def test_a_redirect_loop_within_the_origin_stops_after_the_limit() -> None:
    seen, redirects = send("https://api.test/a", {"https://api.test/a": "/a"})
    assert len(seen) == MAX_REDIRECTS + 1
    assert [r.followed for r in redirects] == [True] * MAX_REDIRECTS + [False]
