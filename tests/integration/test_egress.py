"""Seed 003 "Access using a Connector": a profile's ``egress_proxy_url`` carries every
request made for it (token, refresh, test, proxy) through that forward proxy.

The real forward proxy (proxy.py in a subprocess) records what it forwarded: that
record is the proof.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.app import Live, oauth_profile
from tests.support.echo import EchoServer, expected_sha256
from tests.support.forward_proxy import ForwardProxy
from tests.support.idp import IdP
from tests.support.tls import HttpsUpstream, issue_certificates

pytestmark = pytest.mark.idp


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'egress.db'}"


def cc_profile(live: Live, idp: IdP, echo_server: EchoServer, **overrides: Any) -> dict[str, Any]:
    profile, _ = oauth_profile(
        live,
        idp,
        "client-credentials",
        api_base_url=echo_server.url,
        token_test_url=echo_server.url + "/check",
        token_test_method="GET",
        token_test_content_type="json",
        **overrides,
    )
    return profile


def test_token_refresh_test_and_proxy_all_pass_the_connector(
    live: Live,
    idp: IdP,
    echo_server: EchoServer,
    forward_proxy: ForwardProxy,
    developer_headers: dict[str, str],
) -> None:
    profile = cc_profile(live, idp, echo_server, egress_proxy_url=forward_proxy.url)

    connection_id = live.connect(profile["id"])["connection_id"]
    assert forward_proxy.forwarded_requests() == [f"POST {idp.token_url}"]

    forward_proxy.clear()
    tested = live.http.post(f"/api/v1/profiles/{profile['id']}/test").json()
    assert tested["ok"] is True, tested
    assert forward_proxy.forwarded_requests() == [
        f"POST {idp.token_url}",
        f"GET {echo_server.url}/check",
    ]

    forward_proxy.clear()
    live.expire(connection_id)
    assert live.token(connection_id).status_code == 200  # renewed, through the connector
    assert forward_proxy.forwarded_requests() == [f"POST {idp.token_url}"]

    forward_proxy.clear()
    with httpx.Client(
        base_url=live.url, headers=developer_headers, timeout=30, trust_env=False
    ) as api:
        echoed = api.post(f"/api/v1/proxy/{connection_id}/orders?x=1", json={"a": 1}).json()
        assert echoed["path"] == "/orders"
        assert "proxy.py" in echoed["headers"]["via"]
        size = 4 * 1024 * 1024
        digest = hashlib.sha256()
        with api.stream("GET", f"/api/v1/proxy/{connection_id}/bytes/{size}") as response:
            assert response.status_code == 200
            for chunk in response.iter_raw():
                digest.update(chunk)
    assert forward_proxy.forwarded_requests() == [
        f"POST {echo_server.url}/orders?x=1",
        f"GET {echo_server.url}/bytes/{size}",
    ]
    assert digest.hexdigest() == expected_sha256(size)


def test_the_authorization_code_test_passes_the_connector(
    live: Live, idp: IdP, forward_proxy: ForwardProxy
) -> None:
    profile, _ = oauth_profile(live, idp, "authorization-code", egress_proxy_url=forward_proxy.url)
    tested = live.http.post(f"/api/v1/profiles/{profile['id']}/test").json()
    assert tested["ok"] is True, tested
    methods_and_paths = [
        (line.split(" ")[0], line.split(" ")[1].split("?")[0])
        for line in forward_proxy.forwarded_requests()
    ]
    assert methods_and_paths == [("GET", idp.authorization_url), ("POST", idp.token_url)]


def test_a_profile_without_a_connector_goes_direct(
    live: Live,
    idp: IdP,
    echo_server: EchoServer,
    forward_proxy: ForwardProxy,
    developer_headers: dict[str, str],
) -> None:
    profile = cc_profile(live, idp, echo_server)
    connection_id = live.connect(profile["id"])["connection_id"]
    assert live.http.post(f"/api/v1/profiles/{profile['id']}/test").json()["ok"] is True
    proxied = httpx.get(
        f"{live.url}/api/v1/proxy/{connection_id}/x", headers=developer_headers, trust_env=False
    )
    assert proxied.status_code == 200
    assert "via" not in proxied.json()["headers"]
    assert forward_proxy.forwarded_requests() == []


def test_an_unreachable_connector_is_a_502(
    live: Live, idp: IdP, echo_server: EchoServer, developer_headers: dict[str, str]
) -> None:
    from tests.support.live import free_port

    profile = cc_profile(live, idp, echo_server)
    connection_id = live.connect(profile["id"])["connection_id"]
    dead = f"http://127.0.0.1:{free_port()}"
    patched = live.http.patch(f"/api/v1/profiles/{profile['id']}", json={"egress_proxy_url": dead})
    assert patched.status_code == 200, patched.text
    response = httpx.get(
        f"{live.url}/api/v1/proxy/{connection_id}/x", headers=developer_headers, trust_env=False
    )
    assert response.status_code == 502
    assert response.json()["upstream_host"] == "127.0.0.1"
    tested = live.http.post(f"/api/v1/profiles/{profile['id']}/test").json()
    assert tested["ok"] is False
    assert tested["stage"] == "token"
    assert tested["response"]["error"].startswith(("ProxyError", "ConnectError"))


def test_an_https_api_is_tunnelled_through_the_connector(
    live: Live,
    idp: IdP,
    forward_proxy: ForwardProxy,
    developer_headers: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    certificates = issue_certificates(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates.ca))
    with HttpsUpstream(certificates) as upstream:
        profile, _ = oauth_profile(
            live,
            idp,
            "client-credentials",
            api_base_url=upstream.url,
            egress_proxy_url=forward_proxy.url,
        )
        connection_id = live.connect(profile["id"])["connection_id"]
        forward_proxy.clear()
        answer = httpx.get(
            f"{live.url}/api/v1/proxy/{connection_id}/me",
            headers=developer_headers,
            trust_env=False,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["tls"] is True
        # The connector saw a tunnel to the API, never the request (nor the token) in it.
        assert forward_proxy.forwarded_requests() == [f"CONNECT 127.0.0.1:{upstream.port}"]
