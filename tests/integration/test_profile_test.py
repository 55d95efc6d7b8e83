"""``POST /profiles/{id}/test`` against a real IdP and the echo upstream.

A correct profile passes; a wrong secret, a wrong token URL and an unreachable host
fail, each naming its stage with the request headers and the response; and no secret
appears anywhere in the answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from tests.support.app import Live, oauth_profile
from tests.support.echo import EchoServer
from tests.support.idp import IdP
from tests.support.live import ThreadServer, free_port

pytestmark = pytest.mark.idp

FIELD_SECRET = "pin-secret-9876"
STATIC_SECRET = "static-field-secret-5555"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'profile-test.db'}"


def run_test(live: Live, profile_id: str, **body: Any) -> httpx.Response:
    return live.http.post(f"/api/v1/profiles/{profile_id}/test", json=body)


def assert_absent(response: httpx.Response, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in response.text, f"{secret!r} leaked"


def one_redirect(
    url: str, status_code: int, location: str, *, followed: bool
) -> list[dict[str, Any]]:
    """A test's ``redirects`` when one answer redirected: from ``url`` to ``location``."""
    return [{"url": url, "status_code": status_code, "location": location, "followed": followed}]


def cc_profile(live: Live, idp: IdP, **overrides: Any) -> tuple[dict[str, Any], Any]:
    return oauth_profile(live, idp, "client-credentials", **overrides)


def test_client_credentials_profile_passes_with_the_token_redacted(live: Live, idp: IdP) -> None:
    profile, client = cc_profile(live, idp, scopes=["read"])
    response = run_test(live, profile["id"])
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["ok"] is True
    assert result["stage"] == "token"
    assert result["status_code"] == 200
    assert result["request"]["method"] == "POST"
    assert result["request"]["url"] == idp.token_url
    assert result["request"]["headers"]["authorization"] == "Basic [redacted]"
    token_response = json.loads(result["response"]["body"])
    assert token_response["access_token"] == "[redacted]"
    assert token_response["token_type"] == "Bearer"
    assert [s["stage"] for s in result["steps"]] == ["token"]
    assert_absent(response, client.client_secret)


CONTENT_TYPES = {
    "json": "application/json",
    "xml": "application/xml",
    "url_encoded": "application/x-www-form-urlencoded",
    "multipart_form_data": "multipart/form-data",
    "text": "text/plain",
    "csv": "text/csv",
}


@pytest.mark.parametrize("content_type", sorted(CONTENT_TYPES))
def test_token_test_url_gets_the_credentials_in_its_content_type(
    live: Live, idp: IdP, echo_server: EchoServer, content_type: str
) -> None:
    profile, client = cc_profile(
        live,
        idp,
        token_test_url=echo_server.url + "/check",
        token_test_method="POST",
        token_test_content_type=content_type,
        form_fields=[{"title": "PIN", "key": "pin", "type": "password"}],
        authorization_fields=[
            {"type": "header", "key": "X-Pin", "value": "{{pin}}"},
            {"type": "query", "key": "static", "value": STATIC_SECRET},
            {"type": "payload", "key": "org_id", "value": "org-4242"},
            {"type": "path", "key": "workspace", "value": "ws-7"},
        ],
    )
    response = run_test(live, profile["id"], fields={"pin": FIELD_SECRET})
    result = response.json()
    assert result["ok"] is True, result
    assert result["stage"] == "token_test"
    assert [s["stage"] for s in result["steps"]] == ["token", "token_test"]
    assert result["request"]["headers"]["accept"] == CONTENT_TYPES[content_type]
    assert result["request"]["headers"]["authorization"] == "Bearer [redacted]"
    assert result["request"]["headers"]["x-pin"] == "[redacted]"
    echo = json.loads(result["response"]["body"])
    assert echo["method"] == "POST"
    assert echo["path"] == "/check/[redacted]"  # authorization field values are secrets
    assert echo["query"] == "static=[redacted]"
    assert echo["headers"]["content-type"].startswith(CONTENT_TYPES[content_type])
    assert echo["headers"]["authorization"] == "[redacted]"
    assert "org_id" in echo["body"] and "org-4242" not in echo["body"]
    if content_type == "json":
        assert echo["json"] == {"org_id": "[redacted]"}
    if content_type == "url_encoded":
        assert echo["form"] == {"org_id": "[redacted]"}
    # What the echo received: the real values, where the profile says.
    seen = echo_server.requests()[-1]
    assert seen["path"] == "/check/ws-7"
    assert seen["headers"]["x-pin"] == FIELD_SECRET
    assert parse_qs(seen["query"]) == {"static": [STATIC_SECRET]}
    assert_absent(response, client.client_secret, FIELD_SECRET, STATIC_SECRET, "org-4242")


def test_token_test_url_refusing_the_token_fails_at_token_test(
    live: Live, idp: IdP, echo_server: EchoServer
) -> None:
    profile, client = cc_profile(
        live,
        idp,
        token_test_url=echo_server.url + "/protected/me",
        token_test_method="GET",
        token_test_content_type="json",
    )
    response = run_test(live, profile["id"])
    result = response.json()
    assert result["ok"] is False
    assert result["stage"] == "token_test"
    assert result["status_code"] == 401
    assert "refused the token" in result["detail"]
    assert result["response"]["headers"]["www-authenticate"] == 'Bearer error="invalid_token"'
    assert result["steps"][0]["ok"] is True
    assert_absent(response, client.client_secret)


def test_a_wrong_client_secret_fails_at_the_token_stage(live: Live, idp: IdP) -> None:
    wrong = "not-the-secret-but-still-secret"
    profile, client = cc_profile(live, idp, client_secret=wrong)
    response = run_test(live, profile["id"])
    result = response.json()
    assert result["ok"] is False
    assert result["stage"] == "token"
    assert result["status_code"] == 401
    assert "client_id, client_secret" in result["detail"]
    assert "invalid_client" in result["detail"]
    assert result["request"]["headers"]["authorization"] == "Basic [redacted]"
    assert json.loads(result["response"]["body"])["error"] == "invalid_client"
    assert result["response"]["headers"]["content-type"] == "application/json"
    assert_absent(response, wrong, client.client_secret)


def test_client_secret_post_is_redacted_in_the_request_body(live: Live, idp: IdP) -> None:
    wrong = "a-wrong/secret+with=specials&more"
    profile, _ = cc_profile(live, idp, client_secret=wrong, client_auth_method="client_secret_post")
    response = run_test(live, profile["id"])
    result = response.json()
    assert result["stage"] == "token"
    assert "client_secret=%5Bredacted%5D" in result["request"]["body"]
    assert_absent(response, wrong, "a-wrong%2Fsecret")


def test_a_wrong_token_url_fails_at_the_token_stage(live: Live, idp: IdP) -> None:
    profile, client = cc_profile(live, idp, token_url=idp.base_url + "/o/no-such-endpoint/")
    response = run_test(live, profile["id"])
    result = response.json()
    assert result["ok"] is False
    assert result["stage"] == "token"
    assert result["status_code"] == 404
    assert "HTTP 404" in result["detail"]
    assert result["request"]["url"] == idp.base_url + "/o/no-such-endpoint/"
    assert result["response"]["headers"]
    assert_absent(response, client.client_secret)


def test_an_unreachable_host_fails_at_the_token_stage(live: Live, idp: IdP) -> None:
    port = free_port()
    profile, client = cc_profile(live, idp, token_url=f"http://127.0.0.1:{port}/token")
    response = run_test(live, profile["id"])
    result = response.json()
    assert result["ok"] is False
    assert result["stage"] == "token"
    assert result["status_code"] is None
    assert f"127.0.0.1:{port}" in result["detail"]
    assert "ConnectError" in result["response"]["error"]
    assert result["request"]["headers"]["authorization"] == "Basic [redacted]"
    assert_absent(response, client.client_secret)


def password_profile(live: Live, idp: IdP, echo_server: EchoServer) -> tuple[dict[str, Any], Any]:
    return oauth_profile(live, idp, "password", token_test_url=echo_server.url + "/me")


def test_password_profile_passes_and_a_wrong_password_fails_at_token(
    live: Live, idp: IdP, echo_server: EchoServer, user: tuple[str, str]
) -> None:
    profile, client = password_profile(live, idp, echo_server)
    good = run_test(live, profile["id"], username=user[0], password=user[1])
    result = good.json()
    assert result["ok"] is True, result
    assert result["stage"] == "token_test"
    token = json.loads(result["steps"][0]["response"]["body"])
    assert token["access_token"] == token["refresh_token"] == "[redacted]"
    assert "password=%5Bredacted%5D" in result["steps"][0]["request"]["body"]
    assert_absent(good, user[1], client.client_secret)

    bad_password = "definitely-the-wrong-password"
    bad = run_test(live, profile["id"], username=user[0], password=bad_password)
    failed = bad.json()
    assert failed["ok"] is False
    assert failed["stage"] == "token"
    assert "invalid_grant" in failed["detail"]
    assert_absent(bad, bad_password, client.client_secret)

    missing = run_test(live, profile["id"])
    assert missing.status_code == 422
    assert {e["field"] for e in missing.json()["errors"]} == {"username", "password"}


def auth_code_profile(live: Live, idp: IdP, **overrides: Any) -> tuple[dict[str, Any], Any]:
    return oauth_profile(live, idp, "authorization-code", **overrides)


def test_authorization_code_profile_checks_both_endpoints_then_says_authorize(
    live: Live, idp: IdP
) -> None:
    profile, client = auth_code_profile(live, idp)
    response = run_test(live, profile["id"])
    result = response.json()
    assert result["ok"] is True, result
    assert result["stage"] == "client_authentication"
    assert result["next"] == "authorize"
    assert f"/api/v1/profiles/{profile['id']}/connections" in result["detail"]
    assert [s["stage"] for s in result["steps"]] == ["authorization_url", "client_authentication"]
    authorize = result["steps"][0]
    assert authorize["request"]["url"].startswith(idp.authorization_url)
    assert authorize["status_code"] in (200, 302)
    assert json.loads(result["response"]["body"])["error"] == "invalid_grant"
    assert_absent(response, client.client_secret)


def test_authorization_code_with_a_wrong_secret_fails_client_authentication(
    live: Live, idp: IdP
) -> None:
    wrong = "wrong-secret-for-the-code-client"
    profile, client = auth_code_profile(live, idp, client_secret=wrong)
    response = run_test(live, profile["id"])
    result = response.json()
    assert result["ok"] is False
    assert result["stage"] == "client_authentication"
    assert result["status_code"] == 401
    assert "rejected the client" in result["detail"]
    assert result["next"] is None
    assert_absent(response, wrong, client.client_secret)


def test_authorization_code_with_a_wrong_authorization_url_fails_there(
    live: Live, idp: IdP
) -> None:
    profile, client = auth_code_profile(
        live, idp, authorization_url=idp.base_url + "/o/no-such-authorize/"
    )
    response = run_test(live, profile["id"])
    result = response.json()
    assert result["ok"] is False
    assert result["stage"] == "authorization_url"
    assert result["status_code"] == 404
    assert [s["stage"] for s in result["steps"]] == ["authorization_url"]
    assert_absent(response, client.client_secret)


def test_tenancy_needs_a_tenant_and_renders_it(
    live: Live, idp: IdP, echo_server: EchoServer
) -> None:
    profile, _ = cc_profile(
        live,
        idp,
        tenancy=True,
        token_test_url=echo_server.url + "/{tenant}/check?org={tenant}",
        token_test_method="GET",
    )
    missing = run_test(live, profile["id"])
    assert missing.status_code == 422
    assert [e["field"] for e in missing.json()["errors"]] == ["tenant"]
    invalid = run_test(live, profile["id"], tenant="not a label")
    assert invalid.status_code == 422
    result = run_test(live, profile["id"], tenant="Acme").json()
    assert result["ok"] is True, result
    url = urlsplit(result["request"]["url"])
    assert url.path == "/acme/check"
    assert parse_qs(url.query) == {"org": ["acme"]}


def test_testing_needs_the_developer_role_and_a_configured_profile(
    live: Live, idp: IdP, viewer_headers: dict[str, str], developer_headers: dict[str, str]
) -> None:
    profile, _ = cc_profile(live, idp)
    url = f"{live.url}/api/v1/profiles/{profile['id']}/test"
    assert httpx.post(url, headers=viewer_headers, trust_env=False).status_code == 403
    assert httpx.post(url, headers=developer_headers, trust_env=False).json()["ok"] is True
    incomplete = live.http.post(
        "/api/v1/profiles?allow_incomplete=true",
        json={"name": "incomplete", "auth_type": "oauth2_client_credentials"},
    ).json()
    response = run_test(live, incomplete["id"])
    assert response.status_code == 409
    assert "client_id" in response.json()["detail"]
    unknown_field = run_test(live, profile["id"], fields={"nope": "x"})
    assert unknown_field.status_code == 422
    assert unknown_field.json()["errors"][0]["field"] == "fields.nope"


def test_the_result_has_a_typed_schema_in_openapi(live: Live) -> None:
    schema = live.http.get("/openapi.json").json()
    operation = schema["paths"]["/api/v1/profiles/{profile_id}/test"]["post"]
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/ProfileTestResult")
    result = schema["components"]["schemas"]["ProfileTestResult"]
    assert {"ok", "stage", "status_code", "request", "response"} <= set(result["properties"])


# -- redirects: credentials never follow one to another origin ---------------------------

QUERY_SECRET = "query-secret-7531"
HEADER_SECRET = "header-secret-8642"


@dataclass
class Redirector:
    """A loopback API that answers chosen paths with a redirect, anything else 200 with
    what it received; it records every request (method, path, query, headers)."""

    url: str
    routes: dict[str, tuple[int, str]] = field(default_factory=dict)
    received: list[dict[str, Any]] = field(default_factory=list)

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        self.routes[path] = (status, location)


@pytest.fixture
def redirector() -> Iterator[Redirector]:
    app = FastAPI()
    port = free_port()
    state = Redirector(url=f"http://127.0.0.1:{port}")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def anything(request: Request, path: str) -> Response:
        seen = {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "headers": dict(request.headers),
        }
        state.received.append(seen)
        if request.url.path in state.routes:
            status, location = state.routes[request.url.path]
            return Response(status_code=status, headers={"location": location})
        return JSONResponse(seen)

    server = ThreadServer(app, port=port).start()
    try:
        yield state
    finally:
        server.stop()


def credentialed_profile(live: Live, idp: IdP, token_test_url: str) -> tuple[dict[str, Any], Any]:
    return cc_profile(
        live,
        idp,
        token_test_url=token_test_url,
        token_test_method="GET",
        token_test_content_type="json",
        authorization_fields=[
            {"type": "header", "key": "X-Api-Key", "value": HEADER_SECRET},
            {"type": "query", "key": "key", "value": QUERY_SECRET},
        ],
    )


def test_a_token_test_url_redirecting_to_another_origin_is_not_followed_and_is_named(
    live: Live, idp: IdP, echo_server: EchoServer, redirector: Redirector
) -> None:
    # Another port on the same loopback host is another origin (scheme, host, port). The
    # redirect even tries to carry the query secret along in its Location.
    elsewhere = f"{echo_server.url}/landing?stolen={QUERY_SECRET}"
    redirector.redirect("/check", elsewhere)
    profile, client = credentialed_profile(live, idp, redirector.url + "/check")
    response = run_test(live, profile["id"])
    assert response.status_code == 200, response.text
    result = response.json()

    assert echo_server.requests() == []  # nothing reached the other origin
    assert [r["path"] for r in redirector.received] == ["/check"]
    assert redirector.received[0]["headers"]["x-api-key"] == HEADER_SECRET

    assert result["ok"] is False
    assert result["stage"] == "token_test"
    assert result["status_code"] == 302
    assert [s["stage"] for s in result["steps"]] == ["token", "token_test"]
    assert result["steps"][0]["ok"] is True
    shown = f"{echo_server.url}/landing?stolen=[redacted]"
    assert result["redirects"] == one_redirect(
        f"{redirector.url}/check?key=[redacted]", 302, shown, followed=False
    )
    assert result["steps"][1]["redirects"] == result["redirects"]
    assert "another origin" in result["detail"] and shown in result["detail"]
    assert result["response"]["headers"]["location"] == shown
    assert_absent(response, client.client_secret, HEADER_SECRET, QUERY_SECRET)


def test_a_redirect_within_the_token_test_urls_origin_is_followed(
    live: Live, idp: IdP, redirector: Redirector
) -> None:
    redirector.redirect("/me", "/me/", status=301)
    profile, client = credentialed_profile(live, idp, redirector.url + "/me")
    response = run_test(live, profile["id"])
    result = response.json()
    assert result["ok"] is True, result
    assert result["status_code"] == 200
    assert result["redirects"] == one_redirect(
        f"{redirector.url}/me?key=[redacted]", 301, f"{redirector.url}/me/", followed=True
    )
    assert "after a redirect within its origin" in result["detail"]
    assert [r["path"] for r in redirector.received] == ["/me", "/me/"]
    # The credentials went on within the origin, as the user's API asked.
    assert redirector.received[1]["headers"]["x-api-key"] == HEADER_SECRET
    assert_absent(response, client.client_secret, HEADER_SECRET, QUERY_SECRET)


def test_a_token_url_redirecting_elsewhere_is_not_followed_and_is_named(
    live: Live, idp: IdP, echo_server: EchoServer, redirector: Redirector
) -> None:
    redirector.redirect("/token", echo_server.url + "/token", status=307)
    profile, client = cc_profile(live, idp, token_url=redirector.url + "/token")
    response = run_test(live, profile["id"])
    result = response.json()
    assert echo_server.requests() == []
    assert redirector.received[0]["headers"]["authorization"].startswith("Basic ")
    assert result["ok"] is False
    assert result["stage"] == "token"
    assert result["status_code"] == 307
    assert result["redirects"] == one_redirect(
        f"{redirector.url}/token", 307, f"{echo_server.url}/token", followed=False
    )
    assert f"a redirect to {echo_server.url}/token" in result["detail"]
    assert_absent(response, client.client_secret)


def test_a_password_profile_without_a_token_test_url_passes_at_the_token_stage(
    live: Live, idp: IdP, user: tuple[str, str]
) -> None:
    # The password grant's token test URL is optional: the test is then the token alone.
    profile, client = oauth_profile(
        live,
        idp,
        "password",
        token_test_url=None,
        token_test_method=None,
        token_test_content_type=None,
    )
    assert profile["token_test_url"] is None
    response = run_test(live, profile["id"], username=user[0], password=user[1])
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["ok"] is True, result
    assert result["stage"] == "token"
    assert [s["stage"] for s in result["steps"]] == ["token"]
    assert result["redirects"] == []
    assert_absent(response, user[1], client.client_secret)
