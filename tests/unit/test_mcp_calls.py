"""The MCP tools' arguments made into a proxied request, and the answer into a result:
pure steps, no server."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from authprofiles.agent_mcp.calls import _body, _headers, _path_and_query, _text
from authprofiles.agent_mcp.tools import TOOLS, HttpRequestArguments
from authprofiles.core.errors import ValidationFailed


def arguments(**given: object) -> HttpRequestArguments:
    return HttpRequestArguments.model_validate(
        {"connection_id": "c", "method": "GET", "path": "/x", **given}
    )


def test_the_query_is_an_object_encoded_once_or_a_string_kept_as_sent() -> None:
    assert _path_and_query(arguments(query={"q": "a b/c", "tag": ["x", "y"]})) == (
        "x",
        "q=a%20b%2Fc&tag=x&tag=y",
    )
    assert _path_and_query(arguments(query="q=a+b")) == ("x", "q=a+b")
    assert _path_and_query(arguments(path="/items/1?page=2")) == ("items/1", "page=2")
    with pytest.raises(ValidationFailed) as raised:
        _path_and_query(arguments(path="/items?page=2", query={"page": "3"}))
    assert raised.value.errors[0].field == "query"


def test_a_method_is_taken_in_any_case_but_only_the_proxys() -> None:
    assert arguments(method="patch").method == "PATCH"
    with pytest.raises(ValidationError):
        arguments(method="TRACE")


def test_headers_that_would_break_the_request_are_refused_each_by_name() -> None:
    assert _headers({"X-A": "1\tb"}) == [("X-A", "1\tb")]
    with pytest.raises(ValidationFailed) as raised:
        _headers({"X-A": "1\r\nX-Injected: 2", "bad name": "v", "X-C": "snow ☃"})
    assert {e.field for e in raised.value.errors} == {
        "headers.X-A",
        "headers.bad name",
        "headers.X-C",
    }


def test_a_json_body_says_so_unless_the_headers_name_another_type() -> None:
    headers: list[tuple[str, str]] = []
    assert _body({"a": "é"}, headers) == '{"a":"é"}'.encode()
    assert headers == [("Content-Type", "application/json")]
    typed = [("content-type", "application/vnd.api+json")]
    _body([1], typed)
    assert typed == [("content-type", "application/vnd.api+json")]
    assert _body("plain", []) == b"plain"
    assert _body(None, []) == b""


def test_an_answer_is_text_in_its_charset_else_none_and_a_cut_character_is_dropped() -> None:
    assert _text("é".encode("latin-1"), "text/plain; charset=ISO-8859-1", final=True) == "é"
    assert _text("aé".encode()[:-1], "application/json", final=False) == "a"
    assert _text(b"\xff\xfe\x00", "application/octet-stream", final=True) is None
    assert _text(b"x", "text/plain; charset=no-such-charset", final=True) is None


def test_the_tools_are_the_contracts_three_each_with_an_object_schema() -> None:
    assert [tool.name for tool in TOOLS] == ["list_connections", "http_request", "connect"]
    for tool in TOOLS:
        assert tool.inputSchema["type"] == "object"
        assert tool.description
    http = next(tool for tool in TOOLS if tool.name == "http_request")
    assert set(http.inputSchema["required"]) == {"connection_id", "method", "path"}
