"""When a refused credential is refreshed and the request sent again: once, never twice.

RFC 6750 section 3.1: ``invalid_token`` (HTTP 401) means the access token "is expired,
revoked, malformed, or invalid for other reasons", and "the client MAY request a new
access token and retry the protected resource request". A profile may name another
status for its API (some answer 403). A second refusal of a fresh token is the API's
answer, not a stale token's: retrying again would only loop.

No I/O here: the server's proxy, the SDK's httpx ``auth_flow`` and its requests adapter
each send, ask :meth:`RefreshOnce.on_response`, and refresh and resend when told to.
"""

from __future__ import annotations


class RefreshOnce:
    """Send with the current credential; when the answer has the profile's auth error
    status, refresh once and send again; never twice."""

    def __init__(self, auth_error_status: int) -> None:
        self.auth_error_status = auth_error_status
        self._refreshed = False

    def on_response(self, status: int) -> bool:
        """True: refresh the credential and resend once; False: done, hand the response
        back (it was not refused, or it answers the one resend)."""
        if self._refreshed or status != self.auth_error_status:
            return False
        self._refreshed = True
        return True

    @property
    def refreshed(self) -> bool:
        """Whether a refresh was asked for (the response in hand answers the resend)."""
        return self._refreshed

    def __repr__(self) -> str:
        return (
            f"RefreshOnce(auth_error_status={self.auth_error_status}, refreshed={self._refreshed})"
        )


__all__ = ["RefreshOnce"]
