"""RFC 9207: OAuth 2.0 Authorization Server Issuer Identification.

A client that uses more than one authorization server can be made to send a code issued
by one of them to another: the mix-up attack of RFC 9207 section 1. The defence is that
the server names itself in the authorization response (``iss``), and the client compares
that name with the issuer it expects before it redeems the code (section 2.4):

    "Clients MUST reject authorization responses without the iss parameter from
    authorization servers that do support the parameter according to the metadata ...
    If the value does not match the expected issuer identifier, clients MUST reject the
    authorization response and MUST NOT proceed with the authorization grant."

Whether a server "supports the parameter" is its metadata's
``authorization_response_iss_parameter_supported`` (section 3), read here once and kept
for a while, as every callback of a profile that names an issuer asks.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from authprofiles.oauth.discovery import DiscoveryFailed, discover
from authprofiles.oauth.errors import IdPUnavailable, IssuerMismatch
from authprofiles.oauth.transport import Transports

#: How long a server's answer to "do your responses carry iss?" is kept. Servers change
#: their metadata rarely; a deployment that starts sending ``iss`` is believed within this.
METADATA_TTL_SECONDS = 600.0
#: Issuers remembered at once (each entry is a few dozen bytes): the least recently used
#: goes first, so a flood of profiles naming made-up issuers cannot grow it without end.
METADATA_CACHE_ENTRIES = 256
#: How much of an unexpected ``iss`` is repeated in a reason: it comes from whoever sent
#: the person back, not from the server the profile trusts.
_SHOWN_ISS_LENGTH = 100


@dataclass(frozen=True)
class IssuerDecision:
    """Whether an authorization response may be redeemed, and why (for the person and
    the connection's ``last_error``)."""

    accepted: bool
    reason: str


class IssParameterLookup(Protocol):
    """Whether an issuer's authorization responses carry ``iss``, per its metadata."""

    def iss_parameter_supported(
        self, issuer: str, *, egress_proxy_url: str | None = None
    ) -> bool: ...


def check_response_issuer(
    expected_issuer: str | None,
    received_iss: str | None,
    *,
    metadata: IssParameterLookup,
    egress_proxy_url: str | None = None,
) -> IssuerDecision:
    """Decide on an authorization response (success or error alike: section 2 puts
    ``iss`` in both) given the profile's issuer and the response's ``iss`` (None when the
    response has none; an empty value is a value, and differs)."""
    if expected_issuer is None:
        return IssuerDecision(True, "the profile names no issuer to expect")
    if received_iss is not None:
        # Section 2.4: "comparing ... using simple string comparison as defined in
        # Section 6.2.1 of [RFC3986]": no normalising of case, slashes or ports.
        if received_iss == expected_issuer:
            return IssuerDecision(True, "the response names the expected issuer")
        shown = received_iss[:_SHOWN_ISS_LENGTH] + (
            "..." if len(received_iss) > _SHOWN_ISS_LENGTH else ""
        )
        return IssuerDecision(
            False,
            f"the authorization response names the issuer {shown!r}, not "
            f"{expected_issuer!r} (RFC 9207): it may come from another server",
        )
    try:
        required = metadata.iss_parameter_supported(
            expected_issuer, egress_proxy_url=egress_proxy_url
        )
    except IdPUnavailable as exc:
        # Not knowing whether the server sends iss, a response without one is not
        # redeemed: the person can try again once the server answers.
        return IssuerDecision(
            False,
            "the authorization response carries no iss, and the issuer's metadata "
            f"could not be read to know whether it must ({exc.detail})",
        )
    if required:
        return IssuerDecision(
            False,
            "the authorization response carries no iss, although the issuer's metadata "
            "says its responses do (RFC 9207): it may come from another server",
        )
    return IssuerDecision(True, "the issuer does not send iss, per its metadata")


def require_response_issuer(
    expected_issuer: str | None,
    received_iss: str | None,
    *,
    metadata: IssParameterLookup,
    egress_proxy_url: str | None = None,
) -> None:
    """:func:`check_response_issuer`, raising :class:`IssuerMismatch` on a refusal."""
    decision = check_response_issuer(
        expected_issuer, received_iss, metadata=metadata, egress_proxy_url=egress_proxy_url
    )
    if not decision.accepted:
        raise IssuerMismatch(decision.reason)


class IssuerMetadataCache:
    """:class:`IssParameterLookup` over RFC 8414 / OpenID Connect discovery, each answer
    kept ``ttl_seconds`` for at most ``max_entries`` issuers (per egress route).

    An issuer with no usable metadata document is taken not to send ``iss`` (nothing says
    it does) and that is kept too; a server that cannot be reached, or answers with a
    server error, raises :class:`IdPUnavailable` and nothing is kept.
    """

    def __init__(
        self,
        transports: Transports,
        *,
        ttl_seconds: float = METADATA_TTL_SECONDS,
        max_entries: int = METADATA_CACHE_ENTRIES,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.transports = transports
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._monotonic = monotonic
        #: (issuer, egress proxy) -> (good until, supported), least recently used first.
        self._entries: OrderedDict[tuple[str, str | None], tuple[float, bool]] = OrderedDict()
        self._lock = threading.Lock()

    def iss_parameter_supported(self, issuer: str, *, egress_proxy_url: str | None = None) -> bool:
        key = (issuer, egress_proxy_url)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] > self._monotonic():
                self._entries.move_to_end(key)
                return entry[1]
        # Fetched outside the lock: one slow server must not hold up every other callback.
        supported = self._fetch(issuer, egress_proxy_url)
        with self._lock:
            self._entries[key] = (self._monotonic() + self.ttl_seconds, supported)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return supported

    def _fetch(self, issuer: str, egress_proxy_url: str | None) -> bool:
        try:
            found = discover(self.transports, issuer, egress_proxy_url=egress_proxy_url)
        except DiscoveryFailed:
            return False
        return found.authorization_response_iss_parameter_supported


__all__ = [
    "METADATA_CACHE_ENTRIES",
    "METADATA_TTL_SECONDS",
    "IssParameterLookup",
    "IssuerDecision",
    "IssuerMetadataCache",
    "check_response_issuer",
    "require_response_issuer",
]
