"""The wire's injection rules, as the SDK applies them to a request it is about to send.

The SDK once had rules of its own, which had drifted from the server's: no check for a
control character in a header value, no escape checks on a path field's value, and the
JSON decoder's own error for a body that did not parse. It now uses these, the server's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from authprofiles.core import injection as core
from authprofiles.core.errors import DomainError
from authprofiles.wire.injection import (
    Injection,
    InjectionError,
    PathEscape,
    PayloadError,
    UnsupportedMediaType,
    apply_to_url,
    fill_path,
    join_path,
    merge_body,
    place,
)


@dataclass(frozen=True)
class Hints:
    """The SDK's ``Inject`` as the wire sees it: four read-only mappings."""

    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    body: Mapping[str, str] = field(default_factory=dict)
    path: Mapping[str, str] = field(default_factory=dict)


def test_place_puts_each_credential_where_the_hints_say() -> None:
    hints = Hints(
        headers={"Authorization": "Bearer tok", "X-Tag": "t"},
        query={"key": "s e"},
        body={"org": "o-1"},
        path={"ws": "ws 7"},
    )
    placed = place(
        hints,
        method="POST",
        url="https://api.example.com/v1/items?a=1&key=caller",
        body=b'{"name": "n"}',
        content_type="application/json",
        base_url="https://api.example.com/v1",
    )
    assert placed.url == "https://api.example.com/v1/ws%207/items?a=1&key=s%20e"
    assert placed.headers == {"Authorization": "Bearer tok", "X-Tag": "t"}
    assert placed.body is not None and json.loads(placed.body) == {"name": "n", "org": "o-1"}
    assert placed.content_type == "application/json"
    assert "tok" not in repr(placed)


def test_place_leaves_a_body_alone_where_no_payload_goes() -> None:
    placed = place(
        Hints(body={"org": "o"}), method="GET", url="https://h/x", body=b"", content_type=None
    )
    assert placed.body is None and placed.url == "https://h/x"


@pytest.mark.parametrize("value", ["a\r\nX-Evil: 1", "a\nb", "a\x00b", "a\x7fb"])
def test_a_header_value_that_would_end_its_header_is_refused(value: str) -> None:
    with pytest.raises(InjectionError, match="X-Tag") as refused:
        place(
            Hints(headers={"X-Tag": value}),
            method="GET",
            url="https://h/x",
            body=b"",
            content_type=None,
        )
    assert value not in str(refused.value)  # a secret


@pytest.mark.parametrize(
    "value",
    [
        "..",
        ".",
        "",
        "w/7",
        "../../x",
        "%2e%2e",
        "%252e%252e",
        "..;x",
        "a\nb",
        "\uff0e\uff0e",
        "a\\b",
    ],
)
def test_a_path_value_that_would_escape_is_refused_client_side_too(value: str) -> None:
    """The proxy's checks on a path field's value (``join_path``), for a URL the caller
    built whole: with a placeholder and without."""
    with pytest.raises(PathEscape):
        apply_to_url("https://h/v1/x", {}, {"ws": value}, "https://h/v1")
    with pytest.raises(PathEscape):
        apply_to_url("https://h/v1/%7B%7Bws%7D%7D/x", {}, {"ws": value})
    with pytest.raises(PathEscape):
        join_path("https://h/v1", "x", {"ws": value})


def test_a_placeholder_cannot_make_a_dot_segment_with_the_text_beside_it() -> None:
    """``e`` passes alone, and so does ``%2{{ws}}%2e``; filled, they read ``..``."""
    with pytest.raises(PathEscape):
        fill_path("/v1/%2{{ws}}%2e/x", {"ws": "e"})
    with pytest.raises(PathEscape):
        join_path("https://h/v1", "%2{{ws}}%2e/x", {"ws": "e"})
    assert fill_path("/v1/a{{ws}}/x", {"ws": "e"}) == "/v1/ae/x"


def test_segments_without_a_placeholder_are_left_as_the_client_encoded_them() -> None:
    assert fill_path("/v1/a%20b/{{ws}}", {"ws": "w"}) == "/v1/a%20b/w"
    assert fill_path("/v1/x/", {"ws": "w"}, "/v1") == "/v1/w/x/"


@pytest.mark.parametrize(
    ("body", "media", "error"),
    [
        (b"{not json", "application/json", PayloadError),
        (b"\xff\xfe{", "application/json", PayloadError),
        (b"[1]", "application/json", PayloadError),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", PayloadError),
        ("é=1".encode(), "application/x-www-form-urlencoded", PayloadError),
        (b"text", "text/plain", UnsupportedMediaType),
        (b"text", None, UnsupportedMediaType),
    ],
)
def test_a_body_payload_fields_cannot_join_gives_a_wire_error_not_a_decoder_error(
    body: bytes, media: str | None, error: type[PayloadError]
) -> None:
    with pytest.raises(error) as refused:
        merge_body(body, media, {"o": "1"})
    assert type(refused.value) is error
    shown = refused.value.__cause__ or (
        None if refused.value.__suppress_context__ else refused.value.__context__
    )
    assert shown is None  # no decoder's traceback (nor its message) rides along


def test_the_core_raises_the_same_refusals_as_domain_errors() -> None:
    """The server's names are the wire's errors and domain errors at once: a caller
    catching either catches them."""
    with pytest.raises(UnsupportedMediaType) as refused:
        core.merge_body(b"text", "text/plain", {"o": "1"})
    assert isinstance(refused.value, core.UnsupportedMediaType)
    assert isinstance(refused.value, DomainError)
    assert refused.value.detail == str(refused.value)
    with pytest.raises(core.PathEscape):
        core.join_path("https://h/v1", "..")
    with pytest.raises(core.PathEscape):
        core.CallerPath.of("a/../../b")
    assert isinstance(core.CallerPath.of("a/b"), core.CallerPath)
    with pytest.raises(core.PathEscape):
        core.split_path("%2e%2e")
    assert core.Injection is Injection


def test_an_injection_never_shows_its_values() -> None:
    assert "secret" not in repr(Injection(headers={"Authorization": "Bearer secret"}))
