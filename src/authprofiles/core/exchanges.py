"""HTTP exchanges as the profile test records them: pure data, for people to read.

The recording HTTP client (``oauth.recording``) fills these in as requests go out and
answers come back; the profile test (``services.profile_test``) reads them to say what
happened at each stage, and shows them with every secret redacted (seed 001's "Auth Test
Failed" with its Headers and Response tabs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

#: Captured bodies are cut here; a test page has no use for more.
MAX_BODY_CHARS = 64 * 1024
#: Same-origin redirects the token test URL's call follows before giving up.
MAX_REDIRECTS = 10
#: RFC 9110 section 15.4: the 3xx codes whose Location says where to send the request.
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_TEXT_MEDIA = ("text/", "application/json", "application/xml", "application/x-www-form")


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    url: str
    headers: Mapping[str, str]
    #: As text (see :func:`display_body`); None when there was none.
    body: str | None = None


@dataclass(frozen=True)
class RecordedResponse:
    #: None when no answer came: ``error`` says why.
    status_code: int | None
    headers: Mapping[str, str]
    body: str = ""
    error: str | None = None

    @property
    def location(self) -> str | None:
        return {k.lower(): v for k, v in self.headers.items()}.get("location")


@dataclass(frozen=True)
class Redirect:
    """A redirect met, and whether it was followed."""

    #: The URL that answered with the redirect.
    url: str
    status_code: int
    #: Where it pointed, made absolute.
    location: str
    followed: bool


@dataclass
class Exchange:
    """One request sent, and its answer once it came (or why none did)."""

    request: RecordedRequest
    response: RecordedResponse | None = None

    def redirect(self) -> Redirect | None:
        """The redirect this exchange answered with, if it did (not followed)."""
        response = self.response
        if response is None or response.status_code not in REDIRECT_STATUSES:
            return None
        location = response.location
        if not location:
            return None
        assert response.status_code is not None
        return Redirect(
            url=self.request.url,
            status_code=response.status_code,
            location=urljoin(self.request.url, location),
            followed=False,
        )


@dataclass(frozen=True)
class Answer:
    """The last answer to a request sent (a redirect itself when one was not followed)."""

    #: The URL of the request that got this answer.
    url: str
    status_code: int
    headers: Mapping[str, str]
    #: The redirects met on the way, in order.
    redirects: tuple[Redirect, ...] = ()

    @property
    def content_type(self) -> str:
        """The media type, lower case, without parameters ("" when none was sent)."""
        value = {k.lower(): v for k, v in self.headers.items()}.get("content-type", "")
        return value.split(";")[0].strip().lower()

    @property
    def location(self) -> str | None:
        """Where a redirect points, made absolute; None when this is no redirect."""
        if self.status_code not in REDIRECT_STATUSES:
            return None
        location = {k.lower(): v for k, v in self.headers.items()}.get("location")
        return urljoin(self.url, location) if location else None


class ExchangeFailed(Exception):
    """No answer came: the connection failed or timed out.

    ``redirects`` are those met (and followed) before the request that failed.
    """

    def __init__(
        self,
        error_type: str,
        message: str,
        *,
        timeout: bool,
        redirects: tuple[Redirect, ...] = (),
    ) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message
        self.timeout = timeout
        self.redirects = redirects


def origin(url: str) -> tuple[str, str, int | None]:
    """RFC 6454 section 4: scheme, host and port (the scheme's default when omitted)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    default = {"http": 80, "https": 443}.get(scheme)
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or default


def display_body(data: bytes, content_type: str | None) -> str:
    """A body as people read it: text (cut at :data:`MAX_BODY_CHARS`), or a note of its
    size and type when it is not text."""
    if not data:
        return ""
    media = (content_type or "").split(";")[0].strip().lower()
    textual = media.startswith(_TEXT_MEDIA) or media.endswith(("+json", "+xml")) or not media
    if media.startswith("multipart/"):
        textual = True
    if not textual:
        return f"<{len(data)} bytes of {media}>"
    text = data.decode("utf-8", "replace")
    if len(text) > MAX_BODY_CHARS:
        return text[:MAX_BODY_CHARS] + f"\n<cut: {len(text) - MAX_BODY_CHARS} more characters>"
    return text


__all__ = [
    "MAX_BODY_CHARS",
    "MAX_REDIRECTS",
    "REDIRECT_STATUSES",
    "Answer",
    "Exchange",
    "ExchangeFailed",
    "RecordedRequest",
    "RecordedResponse",
    "Redirect",
    "display_body",
    "origin",
]
