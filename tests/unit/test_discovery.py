"""RFC 8414 / OpenID Connect discovery read from odd servers (httpx MockTransport, no
sockets): what is taken, what makes a document unusable, and when to try again later."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, cast

import httpx
import pytest

from authprofiles.oauth.discovery import DiscoveryFailed, ServerMetadata, discover
from authprofiles.oauth.errors import IdPUnavailable
from authprofiles.oauth.transport import Transports

ISSUER = "https://idp.example.com"
RFC8414_URL = ISSUER + "/.well-known/oauth-authorization-server"
OIDC_URL = ISSUER + "/.well-known/openid-configuration"

Handler = Callable[[httpx.Request], httpx.Response]


class FakeTransports:
    """``Transports.client`` over a MockTransport; remembers the egress routes asked for."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.routes: list[str | None] = []
        self.requests: list[httpx.Request] = []
        self._clients: list[httpx.Client] = []

    def client(self, egress_proxy_url: str | None) -> httpx.Client:
        self.routes.append(egress_proxy_url)

        def record(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return self.handler(request)

        client = httpx.Client(transport=httpx.MockTransport(record))
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()


def discover_at(transports: FakeTransports, **options: Any) -> ServerMetadata:
    return discover(cast(Transports, transports), ISSUER, **options)


def document(**members: Any) -> dict[str, Any]:
    return {
        "issuer": ISSUER,
        "authorization_endpoint": ISSUER + "/authorize",
        "token_endpoint": ISSUER + "/token",
        **members,
    }


def serving(documents: dict[str, httpx.Response]) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        return documents.get(str(request.url), httpx.Response(404))

    return handle


@pytest.fixture
def transports_for() -> Iterator[Callable[[Handler], FakeTransports]]:
    made: list[FakeTransports] = []

    def make(handler: Handler) -> FakeTransports:
        made.append(FakeTransports(handler))
        return made[-1]

    yield make
    for transports in made:
        transports.close()


def test_the_new_members_are_read_and_the_auth_methods_kept_as_listed(
    transports_for: Callable[[Handler], FakeTransports],
) -> None:
    methods = ["private_key_jwt", "none", "client_secret_basic", "tls_client_auth"]
    transports = transports_for(
        serving(
            {
                RFC8414_URL: httpx.Response(
                    200,
                    json=document(
                        device_authorization_endpoint=ISSUER + "/device",
                        token_endpoint_auth_methods_supported=methods,
                        authorization_response_iss_parameter_supported=True,
                    ),
                )
            }
        )
    )
    found = discover_at(transports)
    assert found.issuer == ISSUER
    assert found.device_authorization_url == ISSUER + "/device"
    assert found.client_auth_methods == methods
    assert found.authorization_response_iss_parameter_supported is True
    assert found.source == RFC8414_URL


def test_absent_members_take_the_rfc_defaults(
    transports_for: Callable[[Handler], FakeTransports],
) -> None:
    transports = transports_for(serving({OIDC_URL: httpx.Response(200, json=document())}))
    found = discover_at(transports)
    # RFC 8414 section 2 and RFC 9207 section 3.
    assert found.client_auth_methods == ["client_secret_basic"]
    assert found.authorization_response_iss_parameter_supported is False
    assert found.device_authorization_url is None
    assert found.source == OIDC_URL


@pytest.mark.parametrize(
    "members",
    [
        {"scopes_supported": "openid profile"},
        {"token_endpoint_auth_methods_supported": [1, 2]},
        {"device_authorization_endpoint": 42},
        {"token_endpoint": {"url": "x"}},
        {"authorization_response_iss_parameter_supported": "true"},
        {"issuer": 7},
    ],
)
def test_a_member_of_the_wrong_type_makes_the_document_unusable(
    transports_for: Callable[[Handler], FakeTransports], members: dict[str, Any]
) -> None:
    transports = transports_for(
        serving({RFC8414_URL: httpx.Response(200, json=document(**members))})
    )
    with pytest.raises(DiscoveryFailed, match="no usable metadata"):
        discover_at(transports)


def test_a_document_for_another_issuer_is_not_used(
    transports_for: Callable[[Handler], FakeTransports],
) -> None:
    other = document(issuer="https://evil.example.com")
    transports = transports_for(serving({RFC8414_URL: httpx.Response(200, json=other)}))
    with pytest.raises(DiscoveryFailed, match="names issuer"):
        discover_at(transports)


def test_a_server_error_with_no_usable_document_is_worth_retrying(
    transports_for: Callable[[Handler], FakeTransports],
) -> None:
    transports = transports_for(lambda request: httpx.Response(503))
    with pytest.raises(IdPUnavailable) as failed:
        discover_at(transports)
    assert failed.value.host == "idp.example.com"


def test_a_server_error_on_one_path_does_not_hide_the_other(
    transports_for: Callable[[Handler], FakeTransports],
) -> None:
    transports = transports_for(
        serving(
            {
                RFC8414_URL: httpx.Response(500),
                OIDC_URL: httpx.Response(200, json=document()),
            }
        )
    )
    assert discover_at(transports).source == OIDC_URL


def test_not_json_and_not_an_object_are_named(
    transports_for: Callable[[Handler], FakeTransports],
) -> None:
    transports = transports_for(
        serving(
            {
                RFC8414_URL: httpx.Response(200, text="<html>"),
                OIDC_URL: httpx.Response(200, json=[document()]),
            }
        )
    )
    with pytest.raises(DiscoveryFailed) as failed:
        discover_at(transports)
    assert "is not JSON" in failed.value.detail
    assert "is not a JSON object" in failed.value.detail


def test_the_egress_proxy_given_is_the_route_taken(
    transports_for: Callable[[Handler], FakeTransports],
) -> None:
    transports = transports_for(serving({RFC8414_URL: httpx.Response(200, json=document())}))
    discover_at(transports, egress_proxy_url="http://connector:3128")
    assert transports.routes == ["http://connector:3128"]
