"""Domain errors. Each names what was wrong in words a person can act on.

They carry no HTTP status, nor any exit code: what an error means to a client is decided
at each edge, in one table there (``api/problems.py`` for the API's problem answers,
``cli/common.py`` for the command line's messages and exit codes), looked up along the
class's MRO, so a subclass answers as its base unless the table says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class FieldError:
    """One violated rule: ``field`` is a dotted path such as ``additional_fields[0].key``."""

    field: str
    message: str


class DomainError(Exception):
    """Base for what a caller can act on: bad input, a missing thing, a refusal, a state
    that does not allow it. ``detail`` says what, without any secret."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ValidationFailed(DomainError):
    """Input that breaks rules, every broken rule at once, each naming its field."""

    def __init__(self, errors: list[FieldError], detail: str | None = None) -> None:
        fields = ", ".join(dict.fromkeys(e.field for e in errors))
        super().__init__(detail or f"{len(errors)} problem(s) with: {fields}")
        self.errors = errors


class NotFound(DomainError):
    """Nothing of that id (or name) where the caller may look."""


class Conflict(DomainError):
    """The request is valid, but the state of what it acts on does not allow it."""


class AlreadyExists(Conflict):
    """A value that must be unique is taken (a profile's name in its workspace). Names the
    field the way :class:`ValidationFailed` does, so a client can point at it."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


class Forbidden(DomainError):
    """The caller is known, and may not do this."""


class Unauthenticated(DomainError):
    """No valid credential came with the request (an API key, a session), or the one
    that came stopped working (revoked, expired, its user disabled)."""


class TooManyAttempts(DomainError):
    """Too many failed tries (password sign-ins): refused until ``until`` (an aware UTC
    datetime); ``retry_after`` is the seconds left, for RFC 9110 ``Retry-After``."""

    def __init__(self, detail: str, until: datetime, retry_after: int) -> None:
        super().__init__(detail)
        self.until = until
        self.retry_after = retry_after


class TooLarge(DomainError):
    """What the caller sent is larger than this server reads."""


class Unavailable(DomainError):
    """This server cannot do it right now; the same request later may succeed
    (``retry_after`` seconds, sent as RFC 9110 ``Retry-After`` when set)."""

    retry_after: int | None = None


class UpstreamError(DomainError):
    """An identity provider or API answered in a way we could not use; ``host`` (and
    port) names where the call went, so a person knows which one."""

    def __init__(self, detail: str, host: str | None = None) -> None:
        super().__init__(detail)
        self.host = host


class UpstreamTimeout(UpstreamError):
    """An identity provider or API did not answer in time."""


def unfilled_template(field: str, problem: ValueError) -> ValidationFailed:
    """The one translation of a :class:`~authprofiles.core.templating.TemplateError`: the
    profile's ``field`` (``token_url``, ``api_base_url``, ...) cannot be filled in with the
    tenant and field values at hand. Named like any invalid field, so a client can point
    at it; the message says which placeholder and why, never a value."""
    return ValidationFailed([FieldError(field, str(problem))])
