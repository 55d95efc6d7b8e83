"""What an answer means, in words: the ``detail`` of each stage of the profile test.

Pure functions of the exchanges recorded and the errors met; they name hosts, statuses
and OAuth error codes, never a credential (the answer is redacted all the same).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qsl, urlsplit

from authprofiles.core.connections import NextStep
from authprofiles.core.exchanges import Answer, Exchange, ExchangeFailed, Redirect
from authprofiles.oauth.errors import GrantRefused, OAuthFailure

#: RFC 6749 section 5.2's error codes, as the token stage explains them.
_TOKEN_ERRORS = {
    "invalid_client": "rejected the client: check client_id, client_secret and client_auth_method",
    "invalid_grant": "refused the grant (for the password grant: the username or password)",
    "invalid_scope": "refused the scopes",
    "unauthorized_client": "does not allow this client this grant type",
    "unsupported_grant_type": "does not support this grant type",
}


def last_status(exchanges: Sequence[Exchange]) -> int | None:
    status = None
    for exchange in exchanges:
        if exchange.response is not None:
            status = exchange.response.status_code
    return status


def token_failure(exc: OAuthFailure, exchanges: Sequence[Exchange]) -> str:
    """Why the token endpoint gave no token; ``exchanges`` are the stage's."""
    last = exchanges[-1] if exchanges else None
    where = f"the token URL ({urlsplit(last.request.url).netloc})" if last else "the token URL"
    if last is not None and last.response is not None and last.response.status_code is None:
        return f"could not reach {where}: {last.response.error}"
    redirect = last.redirect() if last is not None else None
    if redirect is not None:
        return (
            f"{where} answered HTTP {redirect.status_code}, a redirect to {redirect.location}: "
            "not followed, since a token request carries the client's credentials. If the "
            "token endpoint lives there, make that the token URL"
        )
    if isinstance(exc, GrantRefused):
        reason = _TOKEN_ERRORS.get(exc.error, "refused the request")
        return f"{where} {reason} ({_error_text(exc)})"
    status = last.response.status_code if last and last.response else None
    if status is not None:
        return f"{where} answered HTTP {status}, not a token response ({exc.detail})"
    return f"{where}: {exc.detail}"


def client_authentication_failure(exc: GrantRefused, status: int | None) -> str:
    """Why the token endpoint refused the made-up code other than with ``invalid_grant``."""
    if exc.error == "invalid_client" or status == 401:
        return (
            "the token endpoint rejected the client: check client_id, client_secret "
            f"and client_auth_method ({_error_text(exc)})"
        )
    if exc.error == "unauthorized_client":
        return (
            "the client is not allowed the authorization code grant at this "
            f"identity provider ({exc.error})"
        )
    return f"the token endpoint answered {_error_text(exc)}"


def transport_failure(what: str, url: str, exc: ExchangeFailed) -> str:
    host = urlsplit(url).netloc
    if exc.timeout:
        return f"{what} ({host}) did not answer in time ({exc.error_type})"
    return f"could not reach {what} ({host}): {exc.error_type}: {exc.message}"


def judge_authorization_answer(answer: Answer, redirect_uri: str) -> tuple[bool, str]:
    """Whether the authorization URL answered as an authorization endpoint does: a page
    or a redirect onwards, not an error (nor an error sent back to the redirect URI)."""
    host = urlsplit(answer.url).netloc
    status = answer.status_code
    if status >= 400:
        return False, f"the authorization URL ({host}) answered HTTP {status}"
    location = answer.location
    if location is not None:
        if location.startswith(redirect_uri):
            # RFC 6749 section 4.1.2.1: the error comes back in the redirect's query.
            query = dict(parse_qsl(urlsplit(location).query))
            if "error" in query:
                text = query["error"] + (
                    f": {query['error_description']}" if query.get("error_description") else ""
                )
                return False, f"the identity provider refused the authorization request ({text})"
        where = urlsplit(location)
        return True, (
            f"the authorization URL ({host}) answered HTTP {status}, "
            f"sending the browser on to {where.netloc}{where.path}"
        )
    return True, f"the authorization URL ({host}) answered HTTP {status}"


def via(redirects: Sequence[Redirect]) -> str:
    """The redirects followed, as a clause for a detail ("" when none was)."""
    followed = [r for r in redirects if r.followed]
    if not followed:
        return ""
    where = urlsplit(followed[-1].location)
    path = where.path + (f"?{where.query}" if where.query else "")
    count = "a redirect" if len(followed) == 1 else f"{len(followed)} redirects"
    return f" (after {count} within its origin, to {path})"


def _error_text(exc: GrantRefused) -> str:
    return exc.error + (f": {exc.description}" if exc.description else "")


__all__ = [
    "client_authentication_failure",
    "judge_authorization_answer",
    "last_status",
    "token_failure",
    "transport_failure",
    "via",
]


def started_without_person(step: NextStep) -> str:
    """What a test shows of an authorization it started that a person would finish."""
    if step.user_code and step.verification_uri:
        return (
            "the identity provider started a device authorization: a person would enter "
            f"the code {step.user_code} at {step.verification_uri}"
        )
    return "the identity provider started an authorization that a person finishes"
