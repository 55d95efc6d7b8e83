"""The loopback test servers themselves work: IdP, FaultProxy, echo upstream, forward proxy,
and the second authorization server (oidc-provider).

Plain httpx only (no authprofiles code): if these fail, the other integration tests
cannot be trusted.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import secrets
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.support.echo import EchoServer, expected_bytes, expected_sha256
from tests.support.faults import FaultProxy
from tests.support.forward_proxy import ForwardProxy
from tests.support.idp import DEVICE_CODE_GRANT, Client, IdP, IdPError
from tests.support.oidc_provider import (
    CLIENT_ASSERTION_TYPE,
    Authorization,
    OidcProvider,
    OidcProviderError,
    client_assertion,
    new_signing_key,
)

pytest_plugins = ["tests.support.fixtures"]

pytestmark = pytest.mark.idp

CALLBACK = "http://127.0.0.1:9/callback"  # never requested: log_in_and_consent stops before


def http(**kwargs: object) -> httpx.Client:
    return httpx.Client(trust_env=False, timeout=30.0, **kwargs)  # type: ignore[arg-type]


def new_user(idp: IdP) -> tuple[str, str]:
    username, password = f"user-{secrets.token_hex(4)}", secrets.token_urlsafe(12)
    idp.create_user(username, password)
    return username, password


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_url(idp: IdP, client: Client, challenge: str | None, scope: str = "read") -> str:
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": CALLBACK,
        "state": "state-123",
        "scope": scope,
    }
    if challenge:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    return f"{idp.authorization_url}?{urlencode(params)}"


def password_tokens(idp: IdP, url: str | None = None) -> tuple[Client, dict[str, str]]:
    client = idp.register_client("password")
    username, password = new_user(idp)
    with http() as h:
        response = h.post(
            url or idp.token_url,
            data={"grant_type": "password", "username": username, "password": password},
            auth=(client.client_id, client.client_secret),
        )
    assert response.status_code == 200, response.text
    return client, response.json()


def refresh(idp: IdP, client: Client, refresh_token: str, url: str | None = None) -> httpx.Response:
    with http() as h:
        return h.post(
            url or idp.token_url,
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            auth=(client.client_id, client.client_secret),
        )


# --- IdP -------------------------------------------------------------------------


def test_discovery_documents(idp: IdP) -> None:
    with http() as h:
        rfc8414 = h.get(idp.base_url + "/.well-known/oauth-authorization-server").json()
        oidc = h.get(idp.base_url + "/.well-known/openid-configuration").json()
        jwks = h.get(oidc["jwks_uri"]).json()
    for doc in (rfc8414, oidc):
        assert doc["issuer"] == idp.issuer == idp.base_url
        assert doc["authorization_endpoint"] == idp.authorization_url
        assert doc["token_endpoint"] == idp.token_url
        assert "S256" in doc["code_challenge_methods_supported"]
        assert {"client_secret_basic", "client_secret_post"} <= set(
            doc["token_endpoint_auth_methods_supported"]
        )
    assert rfc8414["revocation_endpoint"] == idp.revocation_url
    assert rfc8414["introspection_endpoint"] == idp.introspection_url
    assert {"authorization_code", "client_credentials", "password", "refresh_token"} <= set(
        rfc8414["grant_types_supported"]
    )
    assert jwks["keys"][0]["kty"] == "RSA"


def test_client_credentials_basic_and_post(idp: IdP) -> None:
    client = idp.register_client("client-credentials")
    assert client.client_secret  # the plain secret, although DOT stores a hash
    with http() as h:
        basic = h.post(
            idp.token_url,
            data={"grant_type": "client_credentials"},
            auth=(client.client_id, client.client_secret),
        )
        post = h.post(
            idp.token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": client.client_id,
                "client_secret": client.client_secret,
                "scope": "read",
            },
        )
        wrong = h.post(
            idp.token_url,
            data={"grant_type": "client_credentials"},
            auth=(client.client_id, "not-the-secret"),
        )
    assert basic.status_code == 200, basic.text
    assert basic.json()["token_type"] == "Bearer"
    assert basic.json()["expires_in"] == 3600
    assert "refresh_token" not in basic.json()
    assert post.status_code == 200, post.text
    assert post.json()["scope"] == "read"
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    assert idp.is_active(basic.json()["access_token"])


def test_password_grant(idp: IdP) -> None:
    _, tokens = password_tokens(idp)
    assert tokens["access_token"] and tokens["refresh_token"]
    assert idp.is_active(tokens["access_token"])
    assert idp.is_active(tokens["refresh_token"])
    assert not idp.is_active("no-such-token")


def test_authorization_code_with_pkce(idp: IdP) -> None:
    client = idp.register_client("authorization-code", [CALLBACK])
    username, password = new_user(idp)
    verifier, challenge = pkce_pair()
    location = idp.log_in_and_consent(
        authorize_url(idp, client, challenge, scope="openid read"), username, password
    )
    assert location.startswith(CALLBACK + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["state-123"]
    exchange = {
        "grant_type": "authorization_code",
        "code": query["code"][0],
        "redirect_uri": CALLBACK,
        "code_verifier": verifier,
    }
    with http() as h:
        wrong_verifier = h.post(
            idp.token_url,
            data={**exchange, "code_verifier": pkce_pair()[0]},
            auth=(client.client_id, client.client_secret),
        )
        # client_secret_post this time
        tokens = h.post(
            idp.token_url,
            data={**exchange, "client_id": client.client_id, "client_secret": client.client_secret},
        )
        replay = h.post(idp.token_url, data=exchange, auth=(client.client_id, client.client_secret))
    assert wrong_verifier.status_code == 400
    assert wrong_verifier.json()["error"] == "invalid_grant"
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    assert body["refresh_token"] and body["id_token"]
    claims = json.loads(base64.urlsafe_b64decode(body["id_token"].split(".")[1] + "=="))
    assert claims["iss"] == idp.issuer
    assert claims["aud"] == client.client_id
    assert replay.json()["error"] == "invalid_grant"  # a code is single-use


def test_consent_page_approve_and_deny(idp: IdP) -> None:
    client = idp.register_client("authorization-code", [CALLBACK], skip_authorization=False)
    username, password = new_user(idp)
    _, challenge = pkce_pair()
    with http() as browser:
        approved = idp.log_in_and_consent(
            authorize_url(idp, client, challenge), username, password, client=browser
        )
        # Same browser session: already signed in, the consent page is shown again.
        denied = idp.log_in_and_consent(
            authorize_url(idp, client, challenge), username, password, consent=False, client=browser
        )
    assert "code" in parse_qs(urlsplit(approved).query)
    assert parse_qs(urlsplit(denied).query)["error"] == ["access_denied"]


def test_pkce_is_required_and_bad_password_is_refused(idp: IdP) -> None:
    client = idp.register_client("authorization-code", [CALLBACK])
    username, password = new_user(idp)
    location = idp.log_in_and_consent(authorize_url(idp, client, None), username, password)
    assert parse_qs(urlsplit(location).query)["error"] == ["invalid_request"]
    with pytest.raises(IdPError, match="sign-in rejected"):
        idp.log_in_and_consent(
            authorize_url(idp, client, pkce_pair()[1]), username, "wrong-password"
        )


def test_refresh_rotation_and_counters(idp: IdP) -> None:
    client, tokens = password_tokens(idp)
    idp.reset_counters()
    first = refresh(idp, client, tokens["refresh_token"])
    assert first.status_code == 200, first.text
    rotated = first.json()
    assert rotated["refresh_token"] != tokens["refresh_token"]
    assert not idp.is_active(tokens["refresh_token"])
    assert not idp.is_active(tokens["access_token"])  # the old access token goes too
    assert idp.is_active(rotated["refresh_token"])
    reused = refresh(idp, client, tokens["refresh_token"])
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    assert refresh(idp, client, rotated["refresh_token"]).status_code == 200
    assert idp.token_requests("refresh_token") == 3
    assert idp.token_requests("password") == 0
    assert idp.token_requests() == 3
    assert idp.counters() == {"refresh_token": 3}
    idp.reset_counters()
    assert idp.token_requests() == 0


def test_revocation_and_introspection_endpoints(idp: IdP) -> None:
    client, tokens = password_tokens(idp)
    auth = (client.client_id, client.client_secret)
    with http() as h:
        live = h.post(idp.introspection_url, data={"token": tokens["access_token"]}, auth=auth)
        assert live.json()["active"] is True
        assert live.json()["client_id"] == client.client_id
        # RFC 7009: revoking the refresh token also revokes its access token
        revoked = h.post(
            idp.revocation_url,
            data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token"},
            auth=auth,
        )
        assert revoked.status_code == 200
        dead = h.post(idp.introspection_url, data={"token": tokens["access_token"]}, auth=auth)
    assert dead.json() == {"active": False}
    assert not idp.is_active(tokens["refresh_token"])
    assert refresh(idp, client, tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_revoke_all_tokens(idp: IdP) -> None:
    client, tokens = password_tokens(idp)
    _, other = password_tokens(idp)  # another client: untouched
    idp.revoke_all_tokens(client.client_id)
    assert not idp.is_active(tokens["access_token"])
    assert not idp.is_active(tokens["refresh_token"])
    assert idp.is_active(other["refresh_token"])
    response = refresh(idp, client, tokens["refresh_token"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_access_token_lifetime(idp: IdP) -> None:
    client = idp.register_client("client-credentials")
    idp.set_access_token_lifetime(1)
    try:
        with http() as h:
            response = h.post(
                idp.token_url,
                data={"grant_type": "client_credentials"},
                auth=(client.client_id, client.client_secret),
            )
    finally:
        idp.set_access_token_lifetime(3600)
    assert response.json()["expires_in"] == 1
    token = response.json()["access_token"]
    deadline = time.monotonic() + 5
    while idp.is_active(token) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not idp.is_active(token)


def test_concurrent_token_requests(idp: IdP) -> None:
    client = idp.register_client("client-credentials")
    idp.reset_counters()
    barrier = threading.Barrier(50)

    def one(_: int) -> int:
        with http() as h:
            barrier.wait(timeout=30)
            return h.post(
                idp.token_url,
                data={"grant_type": "client_credentials"},
                auth=(client.client_id, client.client_secret),
            ).status_code

    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(one, range(50)))
    assert statuses == [200] * 50
    assert idp.token_requests("client_credentials") == 50


# --- IdP: device authorization grant (RFC 8628) ---------------------------------------


def device_poll(
    idp: IdP,
    device_code: str,
    *,
    client_id: str | None = None,
    auth: tuple[str, str] | None = None,
) -> httpx.Response:
    """One device-code poll: a public client names itself, a confidential one uses Basic."""
    data = {"grant_type": DEVICE_CODE_GRANT, "device_code": device_code}
    if client_id is not None:
        data["client_id"] = client_id
    with http() as h:
        return h.post(idp.token_url, data=data, auth=auth)


def test_device_grant_public_client(idp: IdP, approve_device_in_idp: Callable[..., str]) -> None:
    client = idp.register_client("device-code", client_type="public")
    assert client.client_secret == ""
    with http() as h:
        metadata = h.get(idp.metadata_url).json()
        started = h.post(idp.device_authorization_url, data={"client_id": client.client_id})
    assert metadata["device_authorization_endpoint"] == idp.device_authorization_url
    assert DEVICE_CODE_GRANT in metadata["grant_types_supported"]
    assert started.status_code == 200, started.text
    answer = started.json()
    assert answer["verification_uri"] == idp.device_verification_url
    assert answer["verification_uri_complete"].endswith(f"?user_code={answer['user_code']}")
    assert answer["interval"] == 1
    assert answer["expires_in"] > 0
    pending = device_poll(idp, answer["device_code"], client_id=client.client_id)
    assert pending.status_code == 400
    assert pending.json()["error"] == "authorization_pending"

    assert approve_device_in_idp(answer["user_code"]) == "Authorized"
    tokens = device_poll(idp, answer["device_code"], client_id=client.client_id)
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "read write"
    assert idp.is_active(body["access_token"])
    # A device code is redeemed once (DOT then no longer knows it).
    assert device_poll(idp, answer["device_code"], client_id=client.client_id).status_code == 404
    with http() as h:
        renewed = h.post(
            idp.token_url,
            data={
                "grant_type": "refresh_token",
                "refresh_token": body["refresh_token"],
                "client_id": client.client_id,
            },
        )
    assert renewed.status_code == 200, renewed.text


def test_device_grant_confidential_client_denied(
    idp: IdP, approve_device_in_idp: Callable[..., str]
) -> None:
    client = idp.register_client("device-code")
    auth = (client.client_id, client.client_secret)
    with http() as h:
        anonymous = h.post(idp.device_authorization_url, data={"client_id": client.client_id})
        # oauthlib wants client_id in the body even beside HTTP Basic (RFC 8628 3.1 not).
        started = h.post(
            idp.device_authorization_url,
            data={"client_id": client.client_id, "scope": "read"},
            auth=auth,
        )
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "invalid_client"
    assert started.status_code == 200, started.text
    answer = started.json()
    assert answer["scope"] == "read"

    assert approve_device_in_idp(answer["user_code"], approve=False) == "Denied"
    wrong_secret = device_poll(idp, answer["device_code"], auth=(client.client_id, "nope"))
    denied = device_poll(idp, answer["device_code"], auth=auth)
    assert denied.status_code == 400
    assert denied.json()["error"] == "access_denied"
    # DOT answers a refused grant before it authenticates the client.
    assert wrong_secret.json()["error"] == "access_denied"
    with pytest.raises(IdPError, match="already been used"):
        approve_device_in_idp(answer["user_code"])


def test_device_grant_slow_down_expiry_and_interval(
    idp: IdP, approve_device_in_idp: Callable[..., str]
) -> None:
    client = idp.register_client("device-code", client_type="public")

    def start() -> dict[str, object]:
        with http() as h:
            response = h.post(idp.device_authorization_url, data={"client_id": client.client_id})
        assert response.status_code == 200, response.text
        return dict(response.json())

    answer = start()
    device_code = str(answer["device_code"])
    idp.answer_slow_down(1)
    slow = device_poll(idp, device_code, client_id=client.client_id)
    assert slow.status_code == 400
    assert slow.json() == {"error": "slow_down"}
    assert (
        device_poll(idp, device_code, client_id=client.client_id).json()["error"]
        == "authorization_pending"
    )

    idp.expire_device_code(str(answer["user_code"]))
    expired = device_poll(idp, device_code, client_id=client.client_id)
    assert expired.status_code == 400
    assert expired.json()["error"] == "expired_token"
    with pytest.raises(IdPError, match="Expired user code"):
        approve_device_in_idp(str(answer["user_code"]))

    idp.set_device_interval(0)
    try:
        assert start()["interval"] == 0
    finally:
        idp.set_device_interval(1)
    assert start()["interval"] == 1


# --- FaultProxy ------------------------------------------------------------------


def test_fault_proxy_pass_preserves_paths(idp: IdP, faults: FaultProxy) -> None:
    client = idp.register_client("client-credentials")
    with http() as h:
        metadata = h.get(faults.url + "/.well-known/oauth-authorization-server")
        token = h.post(
            faults.url + "/o/token/",
            data={"grant_type": "client_credentials"},
            auth=(client.client_id, client.client_secret),
        )
    assert metadata.json()["issuer"] == idp.issuer
    assert token.status_code == 200, token.text
    assert faults.requests == 2
    assert [s.mode for s in faults.seen()] == ["pass", "pass"]


def test_fault_modes(idp: IdP, faults: FaultProxy) -> None:
    client = idp.register_client("client-credentials")
    url = faults.url + "/o/token/"
    data = {"grant_type": "client_credentials"}
    auth = (client.client_id, client.client_secret)
    idp.reset_counters()
    with http() as h:
        faults.mode = "status_500"
        failed = h.post(url, data=data, auth=auth)
        assert failed.status_code == 500

        faults.set_mode("bad_json")
        bad = h.post(url, data=data, auth=auth)
        assert bad.status_code == 200
        assert bad.headers["content-type"] == "application/json"
        assert bad.text == "{not json"
        with pytest.raises(ValueError):
            bad.json()

        faults.set_mode("truncated")
        with pytest.raises(httpx.RemoteProtocolError):
            h.post(url, data=data, auth=auth)

        faults.set_mode("timeout", hold_seconds=5)
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            h.post(url, data=data, auth=auth, timeout=0.5)
        assert time.monotonic() - started < 3

        faults.mode = "pass"
        assert h.post(url, data=data, auth=auth).status_code == 200
    assert faults.requests == 5
    assert idp.token_requests() == 1  # faults were answered by the relay itself


def test_fault_times_path_prefix_and_forward(idp: IdP, faults: FaultProxy) -> None:
    client, tokens = password_tokens(idp)
    idp.reset_counters()
    # The IdP rotates the refresh token, but the client never sees the answer.
    faults.set_mode("truncated", times=1, path_prefix="/o/token/", forward=True)
    with http() as h:
        assert h.get(faults.url + "/.well-known/openid-configuration").status_code == 200
    with pytest.raises(httpx.RemoteProtocolError):
        refresh(idp, client, tokens["refresh_token"], url=faults.url + "/o/token/")
    assert faults.mode == "pass"  # times=1 used up
    assert idp.token_requests("refresh_token") == 1
    assert not idp.is_active(tokens["refresh_token"])
    retry = refresh(idp, client, tokens["refresh_token"], url=faults.url + "/o/token/")
    assert retry.json()["error"] == "invalid_grant"
    assert [s.mode for s in faults.seen()] == ["pass", "truncated", "pass"]


# --- echo upstream ---------------------------------------------------------------


def test_echo_reflects_requests(echo_server: EchoServer) -> None:
    with http() as h:
        as_json = h.post(
            echo_server.url + "/api/items?b=2&a=1&a=3",
            json={"x": [1, 2]},
            headers={"X-Custom": "yes"},
        ).json()
        as_form = h.put(echo_server.url + "/form", data={"k": "v", "e": ""}).json()
        raw = h.get(echo_server.url + "/a%2Fb/c").json()
        teapot = h.get(echo_server.url + "/status/418")
        no_content = h.delete(echo_server.url + "/status/204")
    assert as_json["method"] == "POST"
    assert as_json["path"] == "/api/items"
    assert as_json["query"] == "b=2&a=1&a=3"
    assert as_json["headers"]["x-custom"] == "yes"
    assert as_json["json"] == {"x": [1, 2]}
    assert json.loads(as_json["body"]) == {"x": [1, 2]}
    assert as_json["form"] is None
    assert as_form["form"] == {"k": "v", "e": ""}
    assert as_form["json"] is None
    assert raw["raw_path"] == "/a%2Fb/c"
    assert teapot.status_code == 418
    assert teapot.json()["path"] == "/status/418"
    assert no_content.status_code == 204
    assert [r["path"] for r in echo_server.requests()] == [
        "/api/items",
        "/form",
        "/a/b/c",
        "/status/418",
        "/status/204",
    ]


def test_echo_protected_and_introspected(idp: IdP, echo_server: EchoServer) -> None:
    echo_server.accept_tokens("good-token")
    with http() as h:
        missing = h.get(echo_server.url + "/protected/me")
        wrong = h.get(echo_server.url + "/protected/me", headers={"Authorization": "Bearer bad"})
        right = h.get(
            echo_server.url + "/protected/me", headers={"Authorization": "Bearer good-token"}
        )
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert right.status_code == 200
    assert right.json()["headers"]["authorization"] == "Bearer good-token"

    # A real resource server: tokens checked at the IdP's RFC 7662 endpoint.
    resource = idp.register_client("client-credentials")
    echo_server.use_introspection(idp.introspection_url, resource.client_id, resource.client_secret)
    client, tokens = password_tokens(idp)
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    with http() as h:
        assert h.get(echo_server.url + "/introspected/x", headers=bearer).status_code == 200
        idp.revoke_all_tokens(client.client_id)
        assert h.get(echo_server.url + "/introspected/x", headers=bearer).status_code == 401


def test_echo_streams_bytes(echo_server: EchoServer) -> None:
    size = 8 * 1024 * 1024 + 123
    digest = hashlib.sha256()
    received = 0
    with http() as h:
        assert h.get(echo_server.url + "/bytes/1000").content == expected_bytes(1000)
        with h.stream("GET", echo_server.url + f"/bytes/{size}") as response:
            assert response.headers["content-length"] == str(size)
            for chunk in response.iter_raw():
                received += len(chunk)
                digest.update(chunk)
    assert received == size
    assert digest.hexdigest() == expected_sha256(size)


def test_echo_delay(echo_server: EchoServer) -> None:
    with http() as h:
        with pytest.raises(httpx.ReadTimeout):
            h.get(echo_server.url + "/delay/2", timeout=0.3)
        assert h.get(echo_server.url + "/delay/0.1").status_code == 200


def test_fault_proxy_in_front_of_echo_streams(
    echo_server: EchoServer, make_fault_proxy: Callable[[str], FaultProxy]
) -> None:
    relay = make_fault_proxy(echo_server.url)
    size = 4 * 1024 * 1024
    with http() as h:
        body = h.get(relay.url + f"/bytes/{size}").content
        echoed = h.post(relay.url + "/p?q=1", content=b"abc", headers={"X-A": "1"}).json()
    assert hashlib.sha256(body).hexdigest() == expected_sha256(size)
    assert echoed["query"] == "q=1"
    assert echoed["body"] == "abc"
    assert echoed["headers"]["host"] == echo_server.url.removeprefix("http://")


# --- forward proxy ---------------------------------------------------------------


def test_forward_proxy_forwards_and_records(
    idp: IdP, echo_server: EchoServer, forward_proxy: ForwardProxy
) -> None:
    client = idp.register_client("client-credentials")
    size = 16 * 1024 * 1024
    with http(proxy=forward_proxy.url) as h:
        echoed = h.post(echo_server.url + "/via/proxy?x=1", json={"a": 1}).json()
        token = h.post(
            idp.token_url,
            data={"grant_type": "client_credentials"},
            auth=(client.client_id, client.client_secret),
        )
        again = h.get(echo_server.url + "/again")
        digest = hashlib.sha256()
        with h.stream("GET", echo_server.url + f"/bytes/{size}") as response:
            for chunk in response.iter_raw():
                digest.update(chunk)
    assert echoed["path"] == "/via/proxy"
    assert echoed["json"] == {"a": 1}
    assert "proxy.py" in echoed["headers"]["via"]
    assert token.status_code == 200, token.text
    assert again.json()["path"] == "/again"
    assert digest.hexdigest() == expected_sha256(size)
    assert forward_proxy.forwarded_requests() == [
        f"POST {echo_server.url}/via/proxy?x=1",
        f"POST {idp.token_url}",
        f"GET {echo_server.url}/again",
        f"GET {echo_server.url}/bytes/{size}",
    ]
    # A direct request leaves no trace in the proxy.
    with http() as h:
        h.get(echo_server.url + "/direct")
    assert forward_proxy.forwarded() == [
        f"{echo_server.url}/via/proxy?x=1",
        idp.token_url,
        f"{echo_server.url}/again",
        f"{echo_server.url}/bytes/{size}",
    ]


def test_forward_proxy_closes_after_each_request(
    idp: IdP, echo_server: EchoServer, forward_proxy: ForwardProxy
) -> None:
    # proxy.py alone sends every request of a kept-alive client connection to the
    # FIRST request's upstream, whatever its URL. The recorder plugin makes the proxy
    # close after each answer, so a client cannot reuse the connection for another origin.
    host, port = forward_proxy.url.removeprefix("http://").split(":")
    request = (
        f"GET {echo_server.url}/first HTTP/1.1\r\n"
        f"Host: {echo_server.url.removeprefix('http://')}\r\n"
        "Connection: keep-alive\r\n\r\n"
    )
    received = b""
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request.encode())
        while chunk := sock.recv(65536):  # returns b"" once the proxy closes
            received += chunk
    assert b'"path": "/first"' in received
    assert b"connection: close" in received.lower()
    with http(proxy=forward_proxy.url) as h:
        for _ in range(3):
            assert h.get(echo_server.url + "/e").json()["path"] == "/e"
            assert h.get(idp.base_url + "/_test/health").json() == {"ok": True}
    assert [r["path"] for r in echo_server.requests()] == ["/first", "/e", "/e", "/e"]


# --- oidc-provider: private_key_jwt, RFC 9207 iss, device grant --------------------------

LOOPBACK_CALLBACK = "http://127.0.0.1:9/oauth/callback"  # a native client's, any port


def op_authorize_url(
    op: OidcProvider,
    client_id: str,
    *,
    redirect_uri: str = LOOPBACK_CALLBACK,
    scope: str = "openid read",
    challenge: str | None = None,
) -> str:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": "state-op",
    }
    if challenge:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    return f"{op.authorization_url}?{urlencode(params)}"


def assertion_fields(assertion: str) -> dict[str, str]:
    return {"client_assertion_type": CLIENT_ASSERTION_TYPE, "client_assertion": assertion}


def test_oidc_provider_metadata(oidc_provider: OidcProvider) -> None:
    with http() as h:
        metadata = h.get(oidc_provider.openid_configuration_url).json()
        rfc8414 = h.get(oidc_provider.metadata_url).json()
        jwks = h.get(metadata["jwks_uri"]).json()
    assert rfc8414 == metadata
    assert metadata["issuer"] == oidc_provider.issuer == oidc_provider.base_url
    # RFC 9207 section 3: the server says it sends `iss` in authorization responses.
    assert metadata["authorization_response_iss_parameter_supported"] is True
    assert {"private_key_jwt", "client_secret_basic", "client_secret_post", "none"} <= set(
        metadata["token_endpoint_auth_methods_supported"]
    )
    assert {"RS256", "ES256"} <= set(metadata["token_endpoint_auth_signing_alg_values_supported"])
    assert {"authorization_code", "client_credentials", "refresh_token", DEVICE_CODE_GRANT} <= set(
        metadata["grant_types_supported"]
    )
    assert metadata["device_authorization_endpoint"] == oidc_provider.device_authorization_url
    assert metadata["token_endpoint"] == oidc_provider.token_url
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert jwks["keys"][0]["kty"] == "RSA"


def test_oidc_provider_private_key_jwt_client_credentials(oidc_provider: OidcProvider) -> None:
    op = oidc_provider
    client = op.clients["private_key_jwt"]
    assert client.private_key_pem.startswith("-----BEGIN PRIVATE KEY-----")
    assert client.key_id == "pkjwt-key-1"
    op.reset_counters()

    def token(assertion: str, scope: str = "read") -> httpx.Response:
        with http() as h:
            return h.post(
                op.token_url,
                data={"grant_type": "client_credentials", "scope": scope}
                | assertion_fields(assertion),
            )

    first = client_assertion(client, op.token_url)
    granted = token(first)
    assert granted.status_code == 200, granted.text
    assert granted.json()["scope"] == "read"
    assert granted.json()["token_type"] == "Bearer"
    # A jti is good once (RFC 7523 section 3: the server may refuse a replay).
    replay = token(first)
    assert replay.status_code == 401
    assert replay.json()["error"] == "invalid_client"
    # aud: the token endpoint or the issuer; anything else is refused.
    assert token(client_assertion(client, op.issuer), "read write").status_code == 200
    assert token(client_assertion(client, op.base_url + "/elsewhere")).status_code == 401
    # Signed with a key the server does not know.
    stranger = dataclasses.replace(client, key=new_signing_key(client.key_id))
    assert token(client_assertion(stranger, op.token_url)).status_code == 401
    assert op.token_requests("client_credentials") == 5

    # A registered client with an EC key (ES256), introspecting its own token.
    ec_client = op.register_client(
        "private_key_jwt",
        grant_types=["client_credentials"],
        key=new_signing_key(kind="EC"),
    )
    issued = token(client_assertion(ec_client, op.token_url))
    assert issued.status_code == 200, issued.text
    with http() as h:
        introspected = h.post(
            op.introspection_url,
            data={"token": issued.json()["access_token"]}
            | assertion_fields(client_assertion(ec_client, op.introspection_url)),
        ).json()
    assert introspected["active"] is True
    assert introspected["client_id"] == ec_client.client_id
    assert introspected["aud"] == op.api_resource


def test_oidc_provider_authorization_code_carries_iss(
    oidc_provider: OidcProvider, authorize_in_oidc_provider: Callable[..., Authorization]
) -> None:
    op = oidc_provider
    client = op.clients["private_key_jwt"]
    verifier, challenge = pkce_pair()
    result = authorize_in_oidc_provider(
        op_authorize_url(op, client.client_id, scope="openid read", challenge=challenge)
    )
    # RFC 9207 section 2: "iss" beside "code" and "state".
    assert result.iss == op.issuer
    assert result.state == "state-op"
    assert result.code and result.error is None
    assert result.redirect_url.startswith(LOOPBACK_CALLBACK + "?")
    exchange = {
        "grant_type": "authorization_code",
        "code": result.code,
        "redirect_uri": LOOPBACK_CALLBACK,
        "code_verifier": verifier,
    }
    with http() as h:
        tokens = h.post(
            op.token_url, data=exchange | assertion_fields(client_assertion(client, op.token_url))
        )
        assert tokens.status_code == 200, tokens.text
        body = tokens.json()
        assert body["scope"] == "read" and body["id_token"] and body["refresh_token"]
        renewed = h.post(
            op.token_url,
            data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
            | assertion_fields(client_assertion(client, op.token_url)),
        )
        assert renewed.status_code == 200, renewed.text
        revoked = h.post(
            op.revocation_url,
            data={"token": renewed.json()["refresh_token"]}
            | assertion_fields(client_assertion(client, op.revocation_url)),
        )
        assert revoked.status_code == 200

    # Denied: the error response carries iss too.
    denied = op.authorize(op_authorize_url(op, client.client_id), consent=False)
    assert denied.error == "access_denied"
    assert denied.iss == op.issuer
    assert denied.code is None


def test_oidc_provider_public_and_registered_clients(
    oidc_provider: OidcProvider, callback_from_oidc_provider: Callable[..., str]
) -> None:
    op = oidc_provider
    public = op.clients["none"]
    # A public client must use PKCE: refused at the redirect, with iss.
    refused = op.authorize(op_authorize_url(op, public.client_id, scope="read"))
    assert refused.error == "invalid_request"
    assert refused.iss == op.issuer
    verifier, challenge = pkce_pair()
    location = callback_from_oidc_provider(
        op_authorize_url(op, public.client_id, scope="read write", challenge=challenge)
    )
    query = parse_qs(urlsplit(location).query)
    with http() as h:
        tokens = h.post(
            op.token_url,
            data={
                "grant_type": "authorization_code",
                "code": query["code"][0],
                "redirect_uri": LOOPBACK_CALLBACK,
                "code_verifier": verifier,
                "client_id": public.client_id,
            },
        )
    assert tokens.status_code == 200, tokens.text
    assert tokens.json()["scope"] == "read write"

    # A web client registered with an exact redirect URI, client_secret_basic.
    callback = "http://127.0.0.1:8/oauth/callback"
    web = op.register_client("client_secret_basic", [callback])
    assert web.client_secret
    verifier, challenge = pkce_pair()
    result = op.authorize(
        op_authorize_url(op, web.client_id, redirect_uri=callback, challenge=challenge)
    )
    assert result.redirect_url.startswith(callback + "?")
    with http() as h:
        exchanged = h.post(
            op.token_url,
            data={
                "grant_type": "authorization_code",
                "code": result.code,
                "redirect_uri": callback,
                "code_verifier": verifier,
            },
            auth=(web.client_id, web.client_secret),
        )
        wrong_user = h.get(
            op_authorize_url(op, web.client_id, redirect_uri="http://127.0.0.1:7/oauth/callback")
        )
    assert exchanged.status_code == 200, exchanged.text
    # Not a registered redirect URI: an error page, no redirect.
    assert wrong_user.status_code == 400
    with pytest.raises(OidcProviderError, match="invalid username or password"):
        op.authorize(op_authorize_url(op, web.client_id, redirect_uri=callback), password="no")


def test_oidc_provider_device_grant(
    oidc_provider: OidcProvider, approve_device_in_oidc_provider: Callable[..., str]
) -> None:
    op = oidc_provider
    client = op.clients["none"]

    def start() -> dict[str, str]:
        with http() as h:
            response = h.post(
                op.device_authorization_url, data={"client_id": client.client_id, "scope": "read"}
            )
        assert response.status_code == 200, response.text
        return dict(response.json())

    def poll(device_code: str) -> httpx.Response:
        with http() as h:
            return h.post(
                op.token_url,
                data={
                    "grant_type": DEVICE_CODE_GRANT,
                    "device_code": device_code,
                    "client_id": client.client_id,
                },
            )

    answer = start()
    assert answer["verification_uri"] == op.device_verification_url
    assert answer["interval"] == 1
    assert poll(answer["device_code"]).json()["error"] == "authorization_pending"
    assert approve_device_in_oidc_provider(answer["user_code"]) == "authorized"
    tokens = poll(answer["device_code"])
    assert tokens.status_code == 200, tokens.text
    assert tokens.json()["scope"] == "read"
    assert tokens.json()["refresh_token"]
    assert poll(answer["device_code"]).json()["error"] == "invalid_grant"  # used once

    denied = start()
    assert approve_device_in_oidc_provider(denied["user_code"], approve=False) == "denied"
    assert poll(denied["device_code"]).json()["error"] == "access_denied"
