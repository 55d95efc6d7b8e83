"""Domain errors. Each names what was wrong in words a person can act on."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One violated rule: ``field`` is a dotted path such as ``additional_fields[0].key``."""

    field: str
    message: str


class DomainError(Exception):
    """Base for errors the edges turn into 4xx answers."""

    status_code = 400
    title = "Bad request"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ValidationFailed(DomainError):
    status_code = 422
    title = "Invalid input"

    def __init__(self, errors: list[FieldError], detail: str | None = None) -> None:
        fields = ", ".join(dict.fromkeys(e.field for e in errors))
        super().__init__(detail or f"{len(errors)} problem(s) with: {fields}")
        self.errors = errors


class NotFound(DomainError):
    status_code = 404
    title = "Not found"


class Conflict(DomainError):
    status_code = 409
    title = "Conflict"


class AlreadyExists(Conflict):
    """A value that must be unique is taken (a profile's name in its workspace). Names the
    field the way :class:`ValidationFailed` does, so a client can point at it."""

    title = "Already exists"

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


class Forbidden(DomainError):
    status_code = 403
    title = "Forbidden"


class Unavailable(DomainError):
    """This server cannot do it right now; the same request later may succeed
    (``retry_after`` seconds, sent as RFC 9110 ``Retry-After`` when set)."""

    status_code = 503
    title = "Service unavailable"
    retry_after: int | None = None


class UpstreamError(DomainError):
    """An identity provider or API answered in a way we could not use; ``host`` (and
    port) names where the call went, so a person knows which one."""

    status_code = 502
    title = "Bad gateway"

    def __init__(self, detail: str, host: str | None = None) -> None:
        super().__init__(detail)
        self.host = host


class UpstreamTimeout(UpstreamError):
    status_code = 504
    title = "Gateway timeout"
