"""The pure injection rules: where each credential goes, and what a caller cannot do."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest

from authprofiles.api.problems import problem_kind
from authprofiles.core.injection import (
    Injection,
    InjectionError,
    PathEscape,
    PayloadError,
    apply_header_list,
    apply_headers,
    bearer_scheme,
    build_injection,
    carries_payload,
    fields_in_template,
    join_path,
    merge_body,
    merge_query,
    split_path,
)
from authprofiles.core.profiles import AuthorizationField, FieldLocation
from authprofiles.core.templating import TemplateError


def field(location: str, key: str, value: str | None = None) -> AuthorizationField:
    return AuthorizationField(type=FieldLocation(location), key=key, value=value)


# -- build_injection ------------------------------------------------------------------


def test_the_default_is_a_bearer_authorization_header() -> None:
    injection = build_injection(
        access_token="tok", token_type="bearer", authorization_fields=(), field_values={}
    )
    assert injection == Injection(headers={"Authorization": "Bearer tok"})


@pytest.mark.parametrize(
    ("token_type", "scheme"),
    [(None, "Bearer"), ("", "Bearer"), ("BEARER", "Bearer"), ("MAC", "MAC")],
)
def test_the_scheme_follows_the_token_type(token_type: str | None, scheme: str) -> None:
    assert bearer_scheme(token_type) == scheme


def test_each_field_goes_to_its_location_with_placeholders_rendered() -> None:
    injection = build_injection(
        access_token="tok",
        token_type="Bearer",
        authorization_fields=(
            field("header", "X-Tag", "tag-{{account}}"),
            field("query", "sig", "{{ access_token }}"),
            field("payload", "org", "o-{{account}}-{{access_token}}"),
            field("path", "ws", "ws-7"),
        ),
        field_values={"account": "acme"},
    )
    assert injection.headers == {"Authorization": "Bearer tok", "X-Tag": "tag-acme"}
    assert injection.query == {"sig": "tok"}
    assert injection.body == {"org": "o-acme-tok"}
    assert injection.path == {"ws": "ws-7"}
    assert sorted(injection.values()) == sorted(
        ["Bearer tok", "tag-acme", "tok", "o-acme-tok", "ws-7"]
    )


def test_a_field_without_a_value_takes_the_connections_value_or_is_left_out() -> None:
    injection = build_injection(
        access_token="tok",
        token_type="Bearer",
        authorization_fields=(field("header", "X-Pin"), field("query", "missing")),
        field_values={"X-Pin": "1234"},
    )
    assert injection.headers["X-Pin"] == "1234"
    assert injection.query == {}


def test_an_authorization_header_field_replaces_the_default_whatever_its_case() -> None:
    injection = build_injection(
        access_token="tok",
        token_type="Bearer",
        authorization_fields=(field("header", "authorization", "Token {{access_token}}"),),
        field_values={},
    )
    assert injection.headers == {"authorization": "Token tok"}


def test_an_authorization_field_that_renders_to_nothing_keeps_the_default() -> None:
    injection = build_injection(
        access_token="tok",
        token_type="Bearer",
        authorization_fields=(field("header", "Authorization"),),  # no value anywhere
        field_values={},
    )
    assert injection.headers == {"Authorization": "Bearer tok"}


def test_an_unknown_placeholder_is_an_error_not_an_empty_string() -> None:
    with pytest.raises(TemplateError, match="nope"):
        build_injection(
            access_token="tok",
            token_type="Bearer",
            authorization_fields=(field("query", "q", "{{nope}}"),),
            field_values={},
        )


@pytest.mark.parametrize("value", ["a\r\nX-Evil: 1", "a\nb", "a\x00b"])
def test_a_header_value_cannot_add_headers(value: str) -> None:
    with pytest.raises(InjectionError, match="X-Tag"):
        build_injection(
            access_token="tok",
            token_type="Bearer",
            authorization_fields=(field("header", "X-Tag", "{{v}}"),),
            field_values={"v": value},
        )
    with pytest.raises(InjectionError, match="access token"):
        build_injection(
            access_token=value, token_type="Bearer", authorization_fields=(), field_values={}
        )


# -- join_path ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "path", "params", "expected"),
    [
        ("https://api.example.com", "v1/items", {}, "https://api.example.com/v1/items"),
        ("https://api.example.com/v1", "items/", {}, "https://api.example.com/v1/items/"),
        ("https://api.example.com/v1/", "", {}, "https://api.example.com/v1/"),
        ("https://api.example.com/v1", "", {}, "https://api.example.com/v1"),
        ("https://api.example.com", "", {}, "https://api.example.com/"),
        ("https://api.example.com/v1?fmt=json", "x", {}, "https://api.example.com/v1/x?fmt=json"),
        ("https://api.example.com/v1", "a%20b/c%3Fd", {}, "https://api.example.com/v1/a%20b/c%3Fd"),
        ("https://api.example.com/v1", "a b/é", {}, "https://api.example.com/v1/a%20b/%C3%A9"),
        ("https://api.example.com/v1", "50%/x", {}, "https://api.example.com/v1/50%25/x"),
        ("https://api.example.com/v1", "a:b@c;d=e", {}, "https://api.example.com/v1/a:b@c;d=e"),
        # a path field the path does not mention goes right after the base path
        (
            "https://api.example.com/v1",
            "items",
            {"ws": "w:7 8"},
            "https://api.example.com/v1/w%3A7%208/items",
        ),
        (
            "https://api.example.com/v1",
            "items",
            {"a": "1", "b": "2"},
            "https://api.example.com/v1/1/2/items",
        ),
        # one it does mention fills the placeholder, typed or percent-encoded
        (
            "https://api.example.com/v1",
            "users/{{ws}}/items",
            {"ws": "w 7"},
            "https://api.example.com/v1/users/w%207/items",
        ),
        (
            "https://api.example.com/v1",
            "users/%7B%7Bws%7D%7D",
            {"ws": "w7"},
            "https://api.example.com/v1/users/w7",
        ),
        (
            "https://api.example.com/v1",
            "users/{{other}}",
            {"ws": "w7"},
            "https://api.example.com/v1/w7/users/%7B%7Bother%7D%7D",
        ),
    ],
)
def test_join_path(base: str, path: str, params: dict[str, str], expected: str) -> None:
    assert join_path(base, path, params) == expected


ESCAPES = [
    "..",
    "../x",
    "a/../../x",
    ".",
    "./x",
    "%2e%2e",
    "%2E%2e/x",
    ".%2e/x",
    "a%2Fb",
    "a%2f..%2fb",
    "%252e%252e",
    "%25252e%25252e",
    "%252F",
    "a%5Cb",
    "a%5cb",
    "a\\b",
    "..;/x",
    "%2e%2e;jsessionid=1/x",
    "a%00b",
    "a\x00b",
    "a\tb",
    "//evil.example/x",
    "http://evil.example/x",
    "x/https://evil.example",
    "a?b",
    "a#b",
    # Servers that fold compatibility characters (NFKC) read these as dots and slashes.
    "\uff0e\uff0e/x",  # FULLWIDTH FULL STOP
    "%EF%BC%8E%EF%BC%8E/x",
    "a/\uff0e/b",
    "\u2025/x",  # TWO DOT LEADER
    "%E2%80%A5",
    "a\uff0fb",  # FULLWIDTH SOLIDUS
    "a%EF%BC%8Fb",
    "a\uff3cb",  # FULLWIDTH REVERSE SOLIDUS
    "\uff05\uff12\uff45\uff05\uff12\uff45",  # fullwidth "%2e%2e"
    "%25EF%25BC%258E%25EF%25BC%258E",
    "http\uff1a\uff0f\uff0fevil.example",
]


@pytest.mark.parametrize("path", ESCAPES)
def test_escape_attempts_are_refused(path: str) -> None:
    with pytest.raises(PathEscape) as refused:
        join_path("https://api.example.com/v1", path)
    assert problem_kind(refused.value).status == 400
    with pytest.raises(PathEscape):
        split_path(path)


PATH_VALUE_ESCAPES = [
    "..",
    ".",
    "",
    "a\nb",
    "../../x",
    "a/b",
    "..\\x",
    "%2e%2e",
    "%252e%252e",
    "%2F",
    "..;x",
    "//evil.example/x",
    "http://evil.example",
    "\x00",
    "\uff0e\uff0e",
    "\u2025",
    "a\uff0fb",
    "a\uff3cb",
]


@pytest.mark.parametrize("value", PATH_VALUE_ESCAPES)
def test_a_path_field_value_cannot_climb_either(value: str) -> None:
    """A path field's value passes the caller's path's escape checks: encoded as
    ``..%2F..%2Fx`` it is still a climb to a server that decodes it."""
    with pytest.raises(PathEscape) as after_base:
        join_path("https://api.example.com/v1", "items", {"ws": value})
    with pytest.raises(PathEscape):
        join_path("https://api.example.com/v1", "items/{{ws}}", {"ws": value})
    assert value in ("", ".", "..") or value not in after_base.value.detail  # a secret


@pytest.mark.parametrize("value", ["ws-7", "w 7", "...", "caf\u00e9", "50%", "a:b@c", "\u2026"])
def test_a_path_field_value_that_stays_one_segment_is_accepted(value: str) -> None:
    joined = join_path("https://api.example.com/v1", "items", {"ws": value})
    assert urlsplit(joined).path.startswith("/v1/")
    assert urlsplit(joined).path.endswith("/items")
    assert urlsplit(joined).path.count("/") == 3


def test_a_base_path_rendered_to_a_dot_segment_is_refused() -> None:
    with pytest.raises(PathEscape, match="base URL"):
        join_path("https://api.example.com/v1/../admin", "x")


@pytest.mark.parametrize(
    "path",
    [
        "@evil.example/x",
        ":443/x",
        "%40evil.example",
        "x@y:z",
        "..x/y..",
        "...",
        "%2e%2e%2e",
        "a/./../b".replace(".", "%2E", 1),
        "~/x",
        "%7e",
        "a;b=c",
    ],
)
def test_whatever_is_accepted_keeps_the_host_and_the_base_path(path: str) -> None:
    base = "https://api.example.com:8443/v1"
    try:
        joined = join_path(base, path)
    except PathEscape:
        return
    parts = urlsplit(joined)
    assert (parts.scheme, parts.netloc) == ("https", "api.example.com:8443")
    assert parts.path.startswith("/v1/")


def test_fields_in_template() -> None:
    assert fields_in_template("https://{tenant}.x.com/{{ a }}/{{b}}") == {"a", "b"}


# -- merge_query ------------------------------------------------------------------------


def test_injected_query_parameters_replace_the_callers_and_keep_the_rest_raw() -> None:
    url = "https://api.example.com/x?a=1&key=caller&b=a+b&c=%20&flag"
    merged = merge_query(url, {"key": "s e/c&ret"})
    assert merged == "https://api.example.com/x?a=1&b=a+b&c=%20&flag&key=s%20e%2Fc%26ret"
    assert merge_query(url, {}) == url
    assert merge_query("https://h/x", [("k", "v")]) == "https://h/x?k=v"
    # a caller's encoded name is recognised as the same parameter
    assert merge_query("https://h/x?ke%79=1", {"key": "2"}) == "https://h/x?key=2"


# -- merge_body ---------------------------------------------------------------------------


def test_payload_fields_merge_into_a_json_object() -> None:
    body, media = merge_body(b'{"a": 1, "org": "caller"}', "application/json", {"org": "o-1"})
    assert json.loads(body) == {"a": 1, "org": "o-1"}
    assert media == "application/json"
    body, media = merge_body(b'{"a": 1}', "application/vnd.api+json; charset=utf-8", {"o": "1"})
    assert json.loads(body) == {"a": 1, "o": "1"}
    assert media == "application/vnd.api+json; charset=utf-8"


def test_payload_fields_merge_into_a_form_keeping_the_callers_pairs_raw() -> None:
    body, media = merge_body(
        b"a=1&org=caller&b=x+y", "application/x-www-form-urlencoded", {"org": "o 1"}
    )
    assert body == b"a=1&b=x+y&org=o%201"
    assert media == "application/x-www-form-urlencoded"


def test_an_empty_body_becomes_a_json_object_of_the_fields() -> None:
    assert merge_body(b"", None, {"o": "1"}) == (b'{"o": "1"}', "application/json")
    assert merge_body(b"  ", "text/plain", {"o": "1"}) == (b'{"o": "1"}', "application/json")
    empty_form = merge_body(b"", "application/x-www-form-urlencoded", {"o": "1"})
    assert empty_form == (b"o=1", "application/x-www-form-urlencoded")


def test_no_payload_fields_leave_the_body_alone() -> None:
    assert merge_body(b"raw", "text/plain", {}) == (b"raw", "text/plain")


@pytest.mark.parametrize(
    ("body", "media", "status"),
    [
        (b"[1, 2]", "application/json", 400),
        (b"{not json", "application/json", 400),
        (b"hello", "text/plain", 415),
        (b"hello", None, 415),
        (b"--b\r\n", "multipart/form-data; boundary=b", 415),
        ("é=1".encode(), "application/x-www-form-urlencoded", 400),
    ],
)
def test_payload_fields_refuse_bodies_they_cannot_join(
    body: bytes, media: str | None, status: int
) -> None:
    with pytest.raises(PayloadError) as refused:
        merge_body(body, media, {"o": "1"})
    assert problem_kind(refused.value).status == status


@pytest.mark.parametrize(
    ("method", "has_body", "expected"),
    [
        ("POST", False, True),
        ("put", False, True),
        ("PATCH", False, True),
        ("GET", False, False),
        ("DELETE", False, False),
        ("DELETE", True, True),
        ("GET", True, True),
    ],
)
def test_payload_fields_go_where_a_body_is_expected(
    method: str, has_body: bool, expected: bool
) -> None:
    assert carries_payload(method, has_body) is expected


# -- headers ------------------------------------------------------------------------------


def test_injected_headers_replace_the_callers_whatever_the_case() -> None:
    injection = Injection(headers={"Authorization": "Bearer t", "X-Tag": "v"})
    merged = apply_headers({"authorization": "Bearer api-key", "x-tag": "old", "A": "1"}, injection)
    assert merged == {"A": "1", "Authorization": "Bearer t", "X-Tag": "v"}
    pairs = apply_header_list([("accept", "a"), ("accept", "b"), ("AUTHORIZATION", "x")], injection)
    assert pairs == [
        ("accept", "a"),
        ("accept", "b"),
        ("Authorization", "Bearer t"),
        ("X-Tag", "v"),
    ]
