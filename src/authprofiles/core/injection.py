"""Apply a connection's credentials to an outgoing request, as domain operations.

The rules themselves (where each credential goes, what a caller's path or body may not
do) are :mod:`authprofiles.wire.injection`'s, shared with the SDK. This module adds what
only the server has: the profile's authorization fields, rendered with ``{{field}}`` and
``{{access_token}}`` placeholders (:func:`build_injection`), and domain errors, so the
proxy, the profile test and the token endpoint's ``inject`` hints report a refusal like
any other domain error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import wraps
from typing import ParamSpec, TypeVar

from authprofiles.core.errors import DomainError
from authprofiles.core.profiles import AuthorizationField, FieldLocation
from authprofiles.core.templating import FIELD_PATTERN, render_value
from authprofiles.wire import injection as wire
from authprofiles.wire.injection import (
    BODY_METHODS,
    Injection,
    apply_header_list,
    apply_headers,
    bearer_scheme,
    carries_payload,
    check_header_value,
    merge_query,
    merge_raw_query,
)

P = ParamSpec("P")
R = TypeVar("R")


class InjectionError(DomainError, wire.InjectionError):
    """The credentials cannot be placed in this request; the message says why."""


class PathEscape(InjectionError, wire.PathEscape):
    """The requested path would leave the profile's base URL."""


class PayloadError(InjectionError, wire.PayloadError):
    """Payload fields cannot be merged into this request body."""


class UnsupportedMediaType(PayloadError, wire.UnsupportedMediaType):
    """The body is of a type payload fields cannot join (neither JSON nor a form)."""


#: Each wire error's domain twin, most specific first.
_DOMAIN_TWINS: tuple[tuple[type[wire.InjectionError], type[InjectionError]], ...] = (
    (wire.UnsupportedMediaType, UnsupportedMediaType),
    (wire.PayloadError, PayloadError),
    (wire.PathEscape, PathEscape),
    (wire.InjectionError, InjectionError),
)


def _domain_twin(exc: wire.InjectionError) -> DomainError:
    """The domain twin of a wire refusal (each is also the wire class, so a caller catching
    either catches it); one that is a domain error already stays as it is."""
    if isinstance(exc, DomainError):
        return exc
    twin = next(domain for raw, domain in _DOMAIN_TWINS if isinstance(exc, raw))
    return twin(str(exc))


def _domain(rule: Callable[P, R]) -> Callable[P, R]:
    # A plain try (free when nothing is raised) rather than a context manager: these run
    # several times on every proxied call.
    @wraps(rule)
    def checked(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return rule(*args, **kwargs)
        except wire.InjectionError as exc:
            raise _domain_twin(exc) from None

    return checked


split_path = _domain(wire.split_path)
join_path = _domain(wire.join_path)
merge_body = _domain(wire.merge_body)


class CallerPath(wire.CallerPath):
    """A caller's raw path, checked once (:func:`split_path`), to be joined under one base
    or several (the proxy joins it under the policy's view of the base and the real one)."""

    @classmethod
    def of(cls, path: str) -> CallerPath:
        return cls(path, tuple(split_path(path)))


def build_injection(
    *,
    access_token: str,
    token_type: str | None,
    authorization_fields: Sequence[AuthorizationField],
    field_values: Mapping[str, str],
) -> Injection:
    """Where each credential goes. A field with no value of its own takes the connection's
    value of the same key (values the end user enters); one with neither is left out. A
    header field named ``Authorization`` replaces the default bearer header."""
    values = {**field_values, "access_token": access_token}
    out = Injection()
    target = {
        FieldLocation.HEADER: out.headers,
        FieldLocation.QUERY: out.query,
        FieldLocation.PAYLOAD: out.body,
        FieldLocation.PATH: out.path,
    }
    try:
        for auth_field in authorization_fields:
            template = (
                auth_field.value if auth_field.value is not None else values.get(auth_field.key)
            )
            if template is None:
                continue
            rendered = render_value(template, values)
            if auth_field.type is FieldLocation.HEADER:
                check_header_value(rendered, f"the header field {auth_field.key!r}")
            target[auth_field.type][auth_field.key] = rendered
        if not any(k.lower() == "authorization" for k in out.headers):
            check_header_value(access_token, "the access token")
            # Insert first so the default reads first in logs of the request, not last.
            headers = {"Authorization": f"{bearer_scheme(token_type)} {access_token}"}
            headers.update(out.headers)
            out.headers.clear()
            out.headers.update(headers)
    except wire.InjectionError as exc:
        raise _domain_twin(exc) from None
    return out


def fields_in_template(template: str) -> set[str]:
    """The ``{{field}}`` names a URL template fills itself."""
    return set(FIELD_PATTERN.findall(template))


__all__ = [
    "BODY_METHODS",
    "CallerPath",
    "Injection",
    "InjectionError",
    "PathEscape",
    "PayloadError",
    "UnsupportedMediaType",
    "apply_header_list",
    "apply_headers",
    "bearer_scheme",
    "build_injection",
    "carries_payload",
    "fields_in_template",
    "join_path",
    "merge_body",
    "merge_query",
    "merge_raw_query",
    "split_path",
]
