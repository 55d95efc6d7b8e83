"""What can go wrong talking to an identity provider, split by what to do about it."""

from __future__ import annotations


class OAuthFailure(Exception):
    """Base: ``detail`` is safe to show a person; it never holds a secret."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class GrantRefused(OAuthFailure):
    """The IdP answered with an RFC 6749 section 5.2 error: retrying will not help.

    ``invalid_grant`` on a refresh means the refresh token is expired or revoked.
    """

    def __init__(self, error: str, description: str | None, status_code: int | None) -> None:
        text = f"{error}: {description}" if description else error
        super().__init__(f"the identity provider refused the request ({text})")
        self.error = error
        self.description = description
        self.status_code = status_code


class IdPUnavailable(OAuthFailure):
    """A 5xx, a timeout, a broken connection or an unreadable answer: worth retrying."""

    def __init__(self, detail: str, *, timeout: bool = False, host: str | None = None) -> None:
        super().__init__(detail)
        self.timeout = timeout
        #: Where the call went (host and port), to name in the answer.
        self.host = host


class IssuerMismatch(OAuthFailure):
    """RFC 9207 section 2.4: the authorization response's ``iss`` is not the issuer the
    profile names (or it is missing where the server says it sends one). The code is not
    redeemed: the response may come from another server, a mix-up attack."""
