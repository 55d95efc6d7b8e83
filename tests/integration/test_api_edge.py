"""The HTTP edge, over a real socket: cursor paging on every list, the request body limit
(413 before the body is read whole; the proxy exempt), JSON-only bodies (415), and an
OpenAPI schema that documents every error answer as a problem."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from authprofiles.core.validation import parse_draft, validate_draft
from authprofiles.sdk import AuthProfilesClient
from authprofiles.settings import Settings
from authprofiles.store.models import DEFAULT_WORKSPACE_ID, ConnectionRow
from tests.support.app import Live, oauth_profile
from tests.support.echo import EchoServer
from tests.support.idp import IdP

PROFILES = "/api/v1/profiles"
PROBLEM_JSON = "application/problem+json"
#: Small, so that bodies over it are cheap to send.
BODY_LIMIT = 4096


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(max_body_bytes=BODY_LIMIT)


def profile_body(name: str, **changes: Any) -> dict[str, Any]:
    return {
        "name": name,
        "auth_type": "oauth2_client_credentials",
        "identity_provider": "Okta",
        "client_id": "client-abc",
        "client_secret": "s3cret",
        "token_url": "https://idp.example.com/oauth2/token",
        **changes,
    }


def assert_problem(response: httpx.Response, status: int, *fields: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status and problem["title"] and problem["detail"]
    named = [e["field"] for e in problem.get("errors", [])]
    for field in fields:
        assert field in named, f"{field} not named in {named}"
    return problem


def next_link(response: httpx.Response) -> str | None:
    link = response.links.get("next")
    return link["url"] if link else None


def every_page(http: httpx.Client, url: str) -> Iterator[httpx.Response]:
    following: str | None = url
    while following:
        response = http.get(following)
        assert response.status_code == 200, response.text
        yield response
        following = next_link(response)


# == paging ================================================================================


def test_a_list_answers_a_json_array_a_page_at_a_time_with_the_next_in_link(
    live: Live,
) -> None:
    names = [f"p{i:02d}" for i in range(7)]
    for name in reversed(names):
        live.create_profile(**profile_body(name))

    pages = list(every_page(live.http, f"{PROFILES}?limit=3"))

    assert [[p["name"] for p in page.json()] for page in pages] == [
        names[0:3],
        names[3:6],
        names[6:7],
    ]
    first = pages[0]
    assert isinstance(first.json(), list)
    assert first.headers["link"].endswith('; rel="next"')  # RFC 8288
    assert urlsplit(next_link(first) or "").path == PROFILES
    assert next_link(pages[-1]) is None
    # Without `limit`, a page holds 100.
    assert len(live.http.get(PROFILES).json()) == 7


def test_the_default_page_is_100_and_the_rest_follows(live: Live) -> None:
    with live.services.db.session() as session:
        for i in range(101):
            definition = validate_draft(parse_draft(profile_body(f"bulk-{i:03d}")))
            live.services.profile_store.add(session, DEFAULT_WORKSPACE_ID, definition)
    first = live.http.get(PROFILES)
    assert len(first.json()) == 100
    following = next_link(first)
    assert following is not None
    assert parse_qs(urlsplit(following).query)["limit"] == ["100"]
    rest = live.http.get(following)
    assert [p["name"] for p in rest.json()] == ["bulk-100"]
    assert next_link(rest) is None


def test_the_sdk_lists_every_page(live: Live) -> None:
    with live.services.db.session() as session:
        for i in range(103):
            definition = validate_draft(parse_draft(profile_body(f"sdk-{i:03d}")))
            live.services.profile_store.add(session, DEFAULT_WORKSPACE_ID, definition)
    key = live.http.headers["authorization"].removeprefix("Bearer ")
    with AuthProfilesClient(live.url, key, trust_env=False) as sdk:
        listed = sdk.list_profiles()
        assert [p["name"] for p in listed] == [f"sdk-{i:03d}" for i in range(103)]
        assert [p["name"] for p in sdk.list_profiles(name="sdk-042")] == ["sdk-042"]


def test_paging_neither_repeats_nor_skips_when_rows_come_and_go_between_pages(
    live: Live,
) -> None:
    created = {name: live.create_profile(**profile_body(name)) for name in "bcdefg"}

    def rest_after(first: httpx.Response) -> list[str]:
        following = next_link(first) or ""
        return [p["name"] for page in every_page(live.http, following) for p in page.json()]

    first = live.http.get(f"{PROFILES}?limit=3")
    assert [p["name"] for p in first.json()] == ["b", "c", "d"]
    # One already shown goes: a page counted by OFFSET would now skip "e".
    assert live.http.delete(f"{PROFILES}/{created['c']['id']}").status_code == 200
    assert rest_after(first) == ["e", "f", "g"]

    first = live.http.get(f"{PROFILES}?limit=3")
    assert [p["name"] for p in first.json()] == ["b", "d", "e"]
    # One sorting before the cursor comes: a page counted by OFFSET would show "e" again.
    live.create_profile(**profile_body("a"))
    assert rest_after(first) == ["f", "g"]


def test_a_list_filtered_by_name_finds_the_one_profile(live: Live) -> None:
    wanted = live.create_profile(**profile_body("billing"))
    live.create_profile(**profile_body("billing-eu"))

    found = live.http.get(PROFILES, params={"name": "billing"})
    assert found.status_code == 200
    assert [p["id"] for p in found.json()] == [wanted["id"]]
    assert live.http.get(PROFILES, params={"name": "nobody"}).json() == []


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "many"])
def test_a_limit_out_of_range_is_a_422_naming_limit(live: Live, limit: str) -> None:
    response = live.http.get(PROFILES, params={"limit": limit})
    assert_problem(response, 422, "limit")


@pytest.mark.parametrize(
    "cursor",
    ["not-a-cursor", "e30", "WyJhIl0", "WzEsMl0", "é", "x" * 3000],
    ids=["garbage", "an object", "one key", "numbers", "not ascii", "too long"],
)
def test_a_bad_cursor_is_a_422_naming_cursor(live: Live, cursor: str) -> None:
    live.create_profile(**profile_body("one"))
    other = live.create_profile(**profile_body("two"))
    for url in (PROFILES, f"{PROFILES}/{other['id']}/connections"):
        response = live.http.get(url, params={"cursor": cursor})
        problem = assert_problem(response, 422, "cursor")
        assert "cursor" in problem["detail"]


def test_a_profiles_cursor_does_not_page_connections(live: Live) -> None:
    for name in ("a", "b"):
        live.create_profile(**profile_body(name))
    cursor = parse_qs(urlsplit(next_link(live.http.get(f"{PROFILES}?limit=1")) or "").query)
    profile = live.create_profile(**profile_body("c"))
    response = live.http.get(
        f"{PROFILES}/{profile['id']}/connections", params={"cursor": cursor["cursor"][0]}
    )
    assert_problem(response, 422, "cursor")


def test_connections_page_by_creation_then_id_even_when_created_at_once(
    live: Live, idp: IdP
) -> None:
    profile, _ = oauth_profile(live, idp, "authorization-code")
    started = [live.connect(profile["id"])["connection_id"] for _ in range(5)]
    # Same creation time for all: the id decides the order, and no page loses one.
    same = datetime(2030, 1, 1, tzinfo=UTC)
    with live.services.db.session() as session:
        for connection_id in started:
            row = session.get(ConnectionRow, connection_id)
            assert row is not None
            row.created_at = same

    url = f"{PROFILES}/{profile['id']}/connections?limit=2"
    pages = [[c["id"] for c in page.json()] for page in every_page(live.http, url)]
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [c for page in pages for c in page] == sorted(started)


# == request bodies ==========================================================================


def test_a_body_over_the_limit_is_a_413_problem(live: Live) -> None:
    big = profile_body("big", description="d" * BODY_LIMIT)
    problem = assert_problem(live.http.post(PROFILES, json=big), 413)
    assert str(BODY_LIMIT) in problem["detail"]
    assert "AUTHPROFILES_MAX_BODY_BYTES" in problem["detail"]
    assert live.http.get(PROFILES, params={"name": "big"}).json() == []
    # A body within the limit goes through.
    assert live.http.post(PROFILES, json=profile_body("small")).status_code == 201


def _exchange(live: Live, head: str, body: bytes) -> tuple[int, bytes]:
    """Send a request head and part of a body on a raw socket and read the answer without
    finishing the body: a server that waits for all of it never answers (the read then
    times out and the test fails)."""
    address = urlsplit(live.url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n" + body)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            assert chunk, "the server closed without answering"
            received += chunk
        header_block, _, rest = received.partition(b"\r\n\r\n")
        status = int(header_block.split(b" ", 2)[1])
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (line.partition(b":") for line in header_block.split(b"\r\n")[1:])
        }
        length = int(headers.get(b"content-length", b"0"))
        while len(rest) < length:
            chunk = sock.recv(65536)
            assert chunk
            rest += chunk
        return status, rest


def _head(live: Live, *headers: str) -> str:
    address = urlsplit(live.url)
    lines = [
        f"POST {PROFILES} HTTP/1.1",
        f"Host: {address.netloc}",
        f"Authorization: {live.http.headers['authorization']}",
        "Content-Type: application/json",
        *headers,
    ]
    return "".join(line + "\r\n" for line in lines)


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(
    live: Live,
) -> None:
    head = _head(live, f"Content-Length: {100 * 1024 * 1024}")
    status, body = _exchange(live, head, b'{"name": "')
    assert status == 413
    assert json.loads(body)["status"] == 413


def test_a_chunked_body_is_refused_once_it_passes_the_limit(live: Live) -> None:
    head = _head(live, "Transfer-Encoding: chunked")
    piece = b'{"description": "' + b"x" * 1000
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    # Just past the limit, and no final chunk: the rest never comes.
    sent = chunk * (BODY_LIMIT // len(piece) + 1)
    status, body = _exchange(live, head, sent)
    assert status == 413
    assert str(BODY_LIMIT) in json.loads(body)["detail"]


def test_the_proxy_streams_bodies_over_the_limit_to_the_upstream(
    live: Live, idp: IdP, echo_server: EchoServer
) -> None:
    profile, _ = oauth_profile(live, idp, "client-credentials", api_base_url=echo_server.url)
    connection_id = live.connect(profile["id"])["connection_id"]
    big = b"z" * (16 * BODY_LIMIT)
    response = live.http.post(
        f"/api/v1/proxy/{connection_id}/upload",
        content=big,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["body_length"] == len(big)


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_a_body_that_is_not_json_is_a_415_problem(live: Live, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = live.http.post(
        PROFILES, content=json.dumps(profile_body("typed")).encode(), headers=headers
    )
    problem = assert_problem(response, 415)
    assert "application/json" in problem["detail"]
    assert live.http.get(PROFILES, params={"name": "typed"}).json() == []


@pytest.mark.parametrize(
    "body",
    [b'{"name": "\xff"}', b"[" * 2000 + b"]" * 2000],
    ids=["not UTF-8", "nested too deeply"],
)
def test_a_json_body_that_cannot_be_decoded_is_a_422_naming_the_body(
    live: Live, body: bytes
) -> None:
    response = live.http.post(PROFILES, content=body, headers={"Content-Type": "application/json"})
    assert_problem(response, 422, "body")


def test_json_with_a_charset_or_a_json_suffix_is_accepted(live: Live) -> None:
    for name, content_type in (
        ("charset", "application/json; charset=utf-8"),
        ("suffix", "application/merge-patch+json"),
    ):
        response = live.http.post(
            PROFILES,
            content=json.dumps(profile_body(name)).encode(),
            headers={"Content-Type": content_type},
        )
        assert response.status_code == 201, response.text


def test_a_body_without_a_content_type_says_to_set_it(live: Live) -> None:
    response = live.http.post(PROFILES, content=json.dumps(profile_body("untyped")).encode())
    problem = assert_problem(response, 415)
    assert "no Content-Type" in problem["detail"]
    assert "set Content-Type: application/json" in problem["detail"]


def test_malformed_json_names_the_line_column_and_character_and_says_send_json(
    live: Live,
) -> None:
    body = b'{"name": "a",\n "auth_type": }'  # the value is missing at character 28
    response = live.http.post(PROFILES, content=body, headers={"Content-Type": "application/json"})
    problem = assert_problem(response, 422, "body")
    assert problem["errors"] == [{"field": "body", "message": problem["errors"][0]["message"]}]
    for said in (problem["detail"], problem["errors"][0]["message"]):
        assert "not valid JSON" in said
        assert "line 2, column 15 (character 28)" in said
        assert "send JSON" in said


@pytest.mark.parametrize(
    ("content", "said"),
    [(b"", "is missing"), (b"[1, 2]", "must be a JSON object"), (b'"x"', "not a string")],
    ids=["empty", "an array", "a string"],
)
def test_a_body_that_is_not_a_json_object_says_so(live: Live, content: bytes, said: str) -> None:
    response = live.http.post(
        PROFILES, content=content, headers={"Content-Type": "application/json"}
    )
    problem = assert_problem(response, 422, "body")
    assert said in problem["detail"]


def test_a_create_names_every_broken_rule_at_once(live: Live) -> None:
    body = profile_body(
        "several",
        client_secret="",
        token_url="ftp://idp.example.com/token",
        scopes=["good", "has space"],
        additional_fields=[{"key": "bad key", "value": "v"}],
        auth_error_status_code=200,
    )
    response = live.http.post(PROFILES, json=body)
    problem = assert_problem(
        response,
        422,
        "client_secret",
        "token_url",
        "scopes[1]",
        "additional_fields[0].key",
        "auth_error_status_code",
    )
    assert problem["detail"].startswith("5 problem(s)")


def test_a_wrong_json_type_is_named_together_with_every_rule_the_rest_breaks(
    live: Live,
) -> None:
    body = profile_body(
        "mixed",
        pkce="yes",  # a string for a boolean
        scopes=5,
        additional_fields=[7, {"key": 1, "value": "v"}],
        token_url="ftp://idp.example.com/token",
        client_secret="",
        colour="blue",
    )
    response = live.http.post(PROFILES, json=body)
    problem = assert_problem(
        response,
        422,
        "pkce",
        "scopes",
        "additional_fields[0]",
        "additional_fields[1].key",
        "colour",
        "token_url",
        "client_secret",
    )
    messages = {e["field"]: e["message"] for e in problem["errors"]}
    assert messages["pkce"] == "must be true or false, not a string"
    assert messages["scopes"] == "must be an array or a string, not a number"
    assert messages["additional_fields[0]"] == "must be an object, not a number"
    assert messages["colour"] == "is not a profile field"
    # A value left out for its type is not also reported as missing, nor its parts.
    assert len(problem["errors"]) == 7, problem["errors"]
    assert live.http.get(PROFILES, params={"name": "mixed"}).json() == []


def test_a_wrong_type_for_tenancy_does_not_also_refuse_the_tenant_placeholder(
    live: Live,
) -> None:
    body = profile_body(
        "tenanted",
        auth_type="oauth2_authorization_code",
        tenancy="yes",
        authorization_url="https://{tenant}.idp.example.com/authorize",
        token_url="https://{tenant}.idp.example.com/token",
    )
    problem = assert_problem(live.http.post(PROFILES, json=body), 422, "tenancy")
    assert problem["errors"] == [
        {"field": "tenancy", "message": "must be true or false, not a string"}
    ]


def test_a_change_names_a_wrong_type_together_with_the_rules_the_rest_breaks(
    live: Live,
) -> None:
    profile = live.create_profile(**profile_body("changed"))
    response = live.http.patch(
        f"{PROFILES}/{profile['id']}",
        json={"name": " changed ", "pkce": "no", "token_url": "ftp://idp.example.com/token"},
    )
    problem = assert_problem(response, 422, "pkce", "token_url")
    assert len(problem["errors"]) == 2, problem["errors"]


def test_connection_and_test_bodies_name_every_problem_at_once(live: Live) -> None:
    profile = live.create_profile(
        **profile_body(
            "tenant-password",
            auth_type="oauth2_password",
            authorization_mode="user",
            tenancy=True,
            token_url="https://{tenant}.idp.example.com/token",
            form_fields=[{"title": "Region", "key": "region", "mandatory": True}],
        )
    )
    connect = live.http.post(f"{PROFILES}/{profile['id']}/connections", json={})
    assert_problem(connect, 422, "tenant", "fields.region", "username", "password")
    tried = live.http.post(f"{PROFILES}/{profile['id']}/test", json={"fields": {"nope": "x"}})
    assert_problem(tried, 422, "tenant", "fields.nope", "username", "password")


def test_a_method_the_path_does_not_take_is_a_405_naming_every_method_it_does(
    live: Live,
) -> None:
    profile = live.create_profile(**profile_body("allowed"))
    for path, allowed in (
        (PROFILES, "GET, POST"),
        (f"{PROFILES}/{profile['id']}", "GET, PATCH, DELETE"),
        (f"{PROFILES}/{profile['id']}/connections", "GET, POST"),
    ):
        response = live.http.request("PUT", path)
        problem = assert_problem(response, 405)
        assert response.headers["allow"] == allowed  # RFC 9110 section 15.5.6
        assert allowed in problem["detail"]


# == the OpenAPI schema =====================================================================


def test_openapi_documents_every_error_answer_as_a_problem(live: Live) -> None:
    schema = live.http.get("/openapi.json").json()
    assert set(schema["components"]["schemas"]["Problem"]["required"]) >= {
        "type",
        "title",
        "status",
        "detail",
    }
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    operations = {
        (method.upper(), path): operation
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
    }
    for (method, path), operation in operations.items():
        responses = operation["responses"]
        for code, response in responses.items():
            # Health probes and the callback page answer in their own types, documented.
            if code.startswith(("4", "5")) and path.startswith("/api/v1/"):
                assert response["content"] == {
                    PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}
                }, (method, path, code)
        if path.startswith("/api/v1/"):
            assert "401" in responses, (method, path)
        if "{" in path:
            assert "404" in responses, (method, path)
        if "requestBody" in operation:
            assert {"413", "415", "422"} <= set(responses), (method, path)

    create = operations[("POST", PROFILES)]
    assert {"403", "409"} <= set(create["responses"])
    body_ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = schema["components"]["schemas"][body_ref.rsplit("/", 1)[1]]
    assert set(body["required"]) == {"name", "auth_type"}
    assert body["additionalProperties"] is False
    listing = operations[("GET", PROFILES)]
    assert {p["name"] for p in listing["parameters"]} >= {"limit", "cursor", "name"}
    assert listing["responses"]["200"]["content"]["application/json"]["schema"]["type"] == "array"
    assert "Link" in listing["responses"]["200"]["headers"]
