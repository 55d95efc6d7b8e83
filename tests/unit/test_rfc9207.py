"""RFC 9207 issuer identification: which authorization responses are redeemed, and the
cached metadata lookup behind "does this server send iss?" (no sockets)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import httpx
import pytest

from authprofiles.oauth.errors import IdPUnavailable, IssuerMismatch
from authprofiles.oauth.rfc9207 import (
    IssuerMetadataCache,
    check_response_issuer,
    require_response_issuer,
)
from authprofiles.oauth.transport import Transports

ISSUER = "https://idp.example.com"
RFC8414_PATH = "/.well-known/oauth-authorization-server"


class Lookup:
    """What the issuer's metadata says, with the questions asked of it."""

    def __init__(self, supported: bool | Exception) -> None:
        self.supported = supported
        self.asked: list[tuple[str, str | None]] = []

    def iss_parameter_supported(self, issuer: str, *, egress_proxy_url: str | None = None) -> bool:
        self.asked.append((issuer, egress_proxy_url))
        if isinstance(self.supported, Exception):
            raise self.supported
        return self.supported


# -- the decision ------------------------------------------------------------------------


def test_the_expected_issuer_is_accepted_without_reading_metadata() -> None:
    lookup = Lookup(True)
    assert check_response_issuer(ISSUER, ISSUER, metadata=lookup).accepted
    assert lookup.asked == []


@pytest.mark.parametrize(
    "received",
    [
        "https://evil.example.com",
        ISSUER + "/",  # section 2.4: simple string comparison, no normalising
        "https://IDP.example.com",
        "https://idp.example.com:443",
        "",
    ],
)
def test_any_other_iss_is_refused(received: str) -> None:
    decision = check_response_issuer(ISSUER, received, metadata=Lookup(False))
    assert not decision.accepted
    assert "RFC 9207" in decision.reason


def test_a_long_forged_iss_is_cut_short_in_the_reason() -> None:
    decision = check_response_issuer(ISSUER, "https://x/" + "a" * 5000, metadata=Lookup(False))
    assert not decision.accepted
    assert len(decision.reason) < 400


def test_a_missing_iss_is_refused_where_the_metadata_says_it_is_sent() -> None:
    lookup = Lookup(True)
    decision = check_response_issuer(
        ISSUER, None, metadata=lookup, egress_proxy_url="http://connector:3128"
    )
    assert not decision.accepted
    assert "metadata says" in decision.reason
    assert lookup.asked == [(ISSUER, "http://connector:3128")]


def test_a_missing_iss_is_accepted_where_the_server_does_not_send_it() -> None:
    assert check_response_issuer(ISSUER, None, metadata=Lookup(False)).accepted


def test_a_missing_iss_is_refused_when_the_metadata_cannot_be_read() -> None:
    down = Lookup(IdPUnavailable("idp.example.com answered HTTP 503"))
    decision = check_response_issuer(ISSUER, None, metadata=down)
    assert not decision.accepted
    assert "HTTP 503" in decision.reason


def test_a_profile_without_an_issuer_checks_nothing() -> None:
    lookup = Lookup(True)
    assert check_response_issuer(None, "https://anyone.example.com", metadata=lookup).accepted
    assert check_response_issuer(None, None, metadata=lookup).accepted
    assert lookup.asked == []


def test_a_refusal_raises_issuer_mismatch() -> None:
    with pytest.raises(IssuerMismatch, match="evil"):
        require_response_issuer(ISSUER, "https://evil.example.com", metadata=Lookup(False))
    require_response_issuer(ISSUER, ISSUER, metadata=Lookup(False))


# -- the cached metadata lookup ----------------------------------------------------------


class Server:
    """Metadata documents by issuer host, served through a MockTransport."""

    def __init__(self) -> None:
        self.documents: dict[str, httpx.Response] = {}
        self.requests: list[httpx.Request] = []
        self.routes: list[str | None] = []
        self._clients: list[httpx.Client] = []

    def serve(self, issuer: str, response: httpx.Response | None = None, **members: Any) -> None:
        self.documents[issuer + RFC8414_PATH] = response or httpx.Response(
            200, json={"issuer": issuer, "token_endpoint": issuer + "/token", **members}
        )

    def client(self, egress_proxy_url: str | None) -> httpx.Client:
        self.routes.append(egress_proxy_url)
        client = httpx.Client(transport=httpx.MockTransport(self._answer))
        self._clients.append(client)
        return client

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.documents.get(str(request.url), httpx.Response(404))

    def fetches(self) -> int:
        """Metadata documents asked for (each lookup may try more than one path)."""
        return sum(1 for r in self.requests if r.url.path == RFC8414_PATH)

    def close(self) -> None:
        for client in self._clients:
            client.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server() -> Iterator[Server]:
    server = Server()
    yield server
    server.close()


def cache_over(server: Server, clock: Clock, **options: Any) -> IssuerMetadataCache:
    return IssuerMetadataCache(cast(Transports, server), monotonic=clock, **options)


def test_the_answer_is_read_once_and_kept_for_the_ttl(server: Server) -> None:
    server.serve(ISSUER, authorization_response_iss_parameter_supported=True)
    clock = Clock()
    cache = cache_over(server, clock, ttl_seconds=60)
    assert cache.iss_parameter_supported(ISSUER) is True
    clock.now += 59
    assert cache.iss_parameter_supported(ISSUER) is True
    assert server.fetches() == 1
    # The server stops sending iss; once the entry is stale, that is believed.
    server.serve(ISSUER, authorization_response_iss_parameter_supported=False)
    clock.now += 2
    assert cache.iss_parameter_supported(ISSUER) is False
    assert server.fetches() == 2


def test_an_issuer_without_metadata_sends_no_iss_and_that_is_kept(server: Server) -> None:
    cache = cache_over(server, Clock())
    assert cache.iss_parameter_supported(ISSUER) is False
    asked = len(server.requests)
    assert cache.iss_parameter_supported(ISSUER) is False
    assert len(server.requests) == asked


def test_an_unavailable_server_is_asked_again_next_time(server: Server) -> None:
    server.serve(ISSUER, httpx.Response(503))
    cache = cache_over(server, Clock())
    with pytest.raises(IdPUnavailable):
        cache.iss_parameter_supported(ISSUER)
    server.serve(ISSUER, authorization_response_iss_parameter_supported=True)
    assert cache.iss_parameter_supported(ISSUER) is True


def test_the_least_recently_used_issuer_goes_when_full(server: Server) -> None:
    issuers = [f"https://idp{i}.example.com" for i in range(3)]
    for issuer in issuers:
        server.serve(issuer, authorization_response_iss_parameter_supported=True)
    cache = cache_over(server, Clock(), max_entries=2)
    cache.iss_parameter_supported(issuers[0])
    cache.iss_parameter_supported(issuers[1])
    cache.iss_parameter_supported(issuers[0])  # now the most recently used
    cache.iss_parameter_supported(issuers[2])  # evicts issuers[1]
    assert server.fetches() == 3
    cache.iss_parameter_supported(issuers[0])
    assert server.fetches() == 3
    cache.iss_parameter_supported(issuers[1])
    assert server.fetches() == 4


def test_each_egress_route_is_asked_and_kept_apart(server: Server) -> None:
    server.serve(ISSUER, authorization_response_iss_parameter_supported=True)
    cache = cache_over(server, Clock())
    cache.iss_parameter_supported(ISSUER)
    cache.iss_parameter_supported(ISSUER, egress_proxy_url="http://connector:3128")
    cache.iss_parameter_supported(ISSUER, egress_proxy_url="http://connector:3128")
    assert server.routes == [None, "http://connector:3128"]


def test_a_string_true_is_not_a_promise_of_iss(server: Server) -> None:
    # RFC 9207 section 3 makes the member a boolean: a document with "true" in it is not
    # usable metadata, so nothing says the server sends iss.
    server.serve(ISSUER, authorization_response_iss_parameter_supported="true")
    assert cache_over(server, Clock()).iss_parameter_supported(ISSUER) is False


def test_the_cache_decides_a_callback_end_to_end(server: Server) -> None:
    server.serve(ISSUER, authorization_response_iss_parameter_supported=True)
    cache = cache_over(server, Clock())
    assert not check_response_issuer(ISSUER, None, metadata=cache).accepted
    assert check_response_issuer(ISSUER, ISSUER, metadata=cache).accepted
