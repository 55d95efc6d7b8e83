"""Errors at the edges: the API's one table of problem answers, and the CLI's one table of
exit codes. The domain errors themselves carry neither."""

from __future__ import annotations

import importlib
import pkgutil
from datetime import UTC, datetime

import pytest
from rich.console import Console

import authprofiles
from authprofiles.api.problems import PROBLEM_KINDS, domain_problem, problem_kind
from authprofiles.cli import common
from authprofiles.core import errors as core_errors
from authprofiles.core.errors import (
    AlreadyExists,
    DomainError,
    FieldError,
    NotFound,
    TooManyAttempts,
    Unauthenticated,
    Unavailable,
    UpstreamError,
    ValidationFailed,
)
from authprofiles.core.injection import PayloadError, UnsupportedMediaType
from authprofiles.services.errors import NeedsReauth
from authprofiles.store.cipher import KeyError_, UnknownKey
from authprofiles.store.db import DatabaseBusy


def _every_domain_error() -> list[type[DomainError]]:
    """Every subclass of DomainError the package defines, found by importing all of it
    (but the migrations, which run when imported)."""
    for module in pkgutil.walk_packages(authprofiles.__path__, "authprofiles."):
        if ".migrations" not in module.name:
            importlib.import_module(module.name)
    found: list[type[DomainError]] = []
    pending = [DomainError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending += cls.__subclasses__()
    return [cls for cls in found if cls.__module__.startswith("authprofiles.")]


EVERY_DOMAIN_ERROR = _every_domain_error()


def _make(cls: type[DomainError]) -> DomainError:
    if issubclass(cls, ValidationFailed | AlreadyExists):
        return cls([FieldError("name", "is taken")])
    if issubclass(cls, TooManyAttempts):
        return cls("what went wrong", datetime.now(UTC), 60)
    return cls("what went wrong")


@pytest.mark.parametrize("cls", EVERY_DOMAIN_ERROR, ids=lambda cls: cls.__qualname__)
def test_no_domain_error_carries_an_http_status(cls: type[DomainError]) -> None:
    assert not hasattr(cls, "status_code")
    assert not hasattr(cls, "title")


@pytest.mark.parametrize(
    "cls",
    [cls for cls in EVERY_DOMAIN_ERROR if cls is not DomainError],
    ids=lambda cls: cls.__qualname__,
)
def test_every_domain_error_has_an_answer_more_precise_than_a_bare_400(
    cls: type[DomainError],
) -> None:
    """Its own line of the table, or a base's other than DomainError's catch-all."""
    answering = next(base for base in cls.__mro__ if base in PROBLEM_KINDS)
    assert answering is not DomainError, f"{cls.__qualname__} has no line in PROBLEM_KINDS"


#: Every answer as it was when each error class named its own status and title.
ANSWERS = [
    ("ValidationFailed", 422, "Invalid input"),
    ("NotFound", 404, "Not found"),
    ("Conflict", 409, "Conflict"),
    ("AlreadyExists", 409, "Already exists"),
    ("Forbidden", 403, "Forbidden"),
    ("Unavailable", 503, "Service unavailable"),
    ("UpstreamError", 502, "Bad gateway"),
    ("UpstreamTimeout", 504, "Gateway timeout"),
    ("TooLarge", 413, "Request body too large"),
    ("BodyTooLarge", 413, "Request body too large"),
    ("InjectionError", 409, "Credentials cannot be applied"),
    ("PathEscape", 400, "Path not allowed"),
    ("PayloadError", 400, "Payload fields cannot be placed"),
    ("UnsupportedMediaType", 415, "Payload fields cannot be placed"),
    ("IdPRefused", 400, "Refused by the identity provider"),
    ("NeedsReauth", 409, "Connection needs authorization again"),
    ("NotConfigured", 409, "Profile not configured"),
    ("DiscoveryError", 422, "No usable metadata"),
    ("Unauthenticated", 401, "Unauthorized"),
    ("SecretsUnreadable", 503, "Secrets unreadable"),
    ("RetiredKeyUsed", 503, "Master key changed"),
    ("DatabaseBusy", 503, "Service unavailable"),
    ("RotationConflict", 409, "Conflict"),
]


@pytest.mark.parametrize(("name", "status", "title"), ANSWERS, ids=[a[0] for a in ANSWERS])
def test_each_error_keeps_its_status_and_title(name: str, status: int, title: str) -> None:
    (cls,) = [cls for cls in EVERY_DOMAIN_ERROR if cls.__name__ == name]
    kind = problem_kind(_make(cls))
    assert (kind.status, kind.title, kind.type) == (status, title, "about:blank")


def test_the_table_is_looked_up_along_the_mro() -> None:
    class Newcomer(NeedsReauth):
        pass

    assert problem_kind(Newcomer("x")) == PROBLEM_KINDS[NeedsReauth]
    assert problem_kind(DomainError("x")).status == 400


def test_a_payload_error_for_a_media_type_is_a_415_by_its_class() -> None:
    assert problem_kind(UnsupportedMediaType("not JSON")).status == 415
    assert problem_kind(PayloadError("no object")).status == 400


def test_the_problem_answer_carries_each_kinds_members_and_headers() -> None:
    invalid = domain_problem(ValidationFailed([FieldError("token_url", "not a URL")]))
    assert invalid.status_code == 422
    assert invalid.media_type == "application/problem+json"
    assert b'"errors":[{"field":"token_url","message":"not a URL"}]' in invalid.body
    unauthenticated = domain_problem(Unauthenticated("no key"))
    assert unauthenticated.headers["www-authenticate"] == 'Bearer realm="authprofiles"'
    busy = domain_problem(DatabaseBusy("busy"))
    assert (busy.status_code, busy.headers["retry-after"]) == (503, "1")
    assert "retry-after" not in domain_problem(Unavailable("later")).headers
    upstream = domain_problem(UpstreamError("no answer", "idp.example:443"))
    assert b'"upstream_host":"idp.example:443"' in upstream.body
    reauth = domain_problem(NeedsReauth("gone", last_error="invalid_grant"))
    assert b'"connection_status":"needs_reauth"' in reauth.body
    assert b'"last_error":"invalid_grant"' in reauth.body


def test_a_template_error_has_one_translation_naming_the_field() -> None:
    from authprofiles.core.templating import TemplateError

    failed = core_errors.unfilled_template("token_url", TemplateError("needs a tenant"))
    assert failed.errors == [FieldError("token_url", "needs a tenant")]
    assert problem_kind(failed).status == 422


# -- the command line -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ValidationFailed([FieldError("name", "is required")]), 2),
        (AlreadyExists([FieldError("name", "is taken")]), 1),
        (NotFound("no profile named 'x'"), 1),
        (NeedsReauth("authorize again"), 1),
        (DatabaseBusy("busy"), 1),
        (UnknownKey("0123456789ab"), 1),
        (KeyError_("the key file is damaged"), 1),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_the_cli_maps_each_error_to_an_exit_code(error: Exception, code: int) -> None:
    assert isinstance(error, common.REPORTED)
    assert common.exit_code(error) == code


@pytest.mark.parametrize("cls", EVERY_DOMAIN_ERROR, ids=lambda cls: cls.__qualname__)
def test_the_cli_reports_every_domain_error(cls: type[DomainError]) -> None:
    error = _make(cls)
    assert isinstance(error, common.REPORTED)
    assert common.exit_code(error) in (1, 2)


def test_the_cli_says_the_message_on_one_line_then_each_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    console = Console(width=200, record=True, color_system=None)
    monkeypatch.setattr(common, "errors", console)
    failed = ValidationFailed([FieldError("token_url", "not a URL"), FieldError("name", "empty")])
    assert common.report_failure(failed) == 2
    assert console.export_text().splitlines() == [
        "2 problem(s) with: token_url, name",
        "  token_url: not a URL",
        "  name: empty",
    ]
    console = Console(width=200, record=True, color_system=None)
    monkeypatch.setattr(common, "errors", console)
    assert common.report_failure(NotFound("no profile named 'x'")) == 1
    assert console.export_text().splitlines() == ["no profile named 'x'"]
