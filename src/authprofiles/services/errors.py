"""Service-level errors; what each means to a client is decided at the edges."""

from __future__ import annotations

from authprofiles.core.errors import Conflict, DomainError, UpstreamError, UpstreamTimeout
from authprofiles.oauth.errors import GrantRefused, IdPUnavailable, OAuthFailure


class IdPRefused(DomainError):
    """The identity provider said no (wrong client secret, bad password, revoked grant)."""

    def __init__(self, detail: str, error: str | None = None) -> None:
        super().__init__(detail)
        self.error = error


#: RFC 6749 section 5.2 errors that refuse the client rather than the grant.
CLIENT_ERRORS = frozenset({"invalid_client", "unauthorized_client"})


def refuses_client(exc: OAuthFailure) -> bool:
    """Whether ``exc`` says the client itself was refused: the seeds' "failing".

    RFC 6749 section 5.2 lets a token endpoint refuse client authentication with a bare
    HTTP 401 as well as with an ``invalid_client`` body; both count."""
    return isinstance(exc, GrantRefused) and (exc.error in CLIENT_ERRORS or exc.status_code == 401)


class NeedsReauth(Conflict):
    """The connection's grant is gone (refused, revoked, expired): a person must authorize
    it again; ``last_error`` is what the identity provider said."""

    def __init__(self, detail: str, last_error: str | None = None) -> None:
        super().__init__(detail)
        self.last_error = last_error


class NotConfigured(Conflict):
    """The profile's mandatory fields are not all filled in yet."""


class DiscoveryError(DomainError):
    """No usable RFC 8414 / OpenID Connect metadata at an issuer (or it is not a URL)."""


def from_oauth(exc: OAuthFailure) -> DomainError:
    if isinstance(exc, GrantRefused):
        return IdPRefused(exc.detail, exc.error)
    host = exc.host if isinstance(exc, IdPUnavailable) else None
    if isinstance(exc, IdPUnavailable) and exc.timeout:
        return UpstreamTimeout(exc.detail, host)
    return UpstreamError(exc.detail, host)
