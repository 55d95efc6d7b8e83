"""Which addresses a webhook may be sent to.

A webhook URL is chosen by a workspace admin, and the server calls it: pointed at
loopback, a private network or a cloud metadata address, it would make this server a
way into places its admins cannot reach themselves (server-side request forgery). So
only globally routable addresses are called unless the operator allows private ones
(``AUTHPROFILES_WEBHOOK_ALLOW_PRIVATE``). Names are resolved and every address they
resolve to is checked, when the webhook is made and again at each delivery, where the
call then goes to the address that was checked (a name that resolves differently the
second time, DNS rebinding, gains nothing).
"""

from __future__ import annotations

import ipaddress
import socket

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for, when it is a mapped (``::ffff:a.b.c.d``),
    6to4, Teredo or NAT64 form of it: those reach the IPv4 host, and are judged as it."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: str) -> bool:
    """Whether ``address`` (an IPv4 or IPv6 literal) is globally routable: not loopback,
    private (RFC 1918, unique local), link local (cloud metadata services live there),
    shared (RFC 6598), multicast, reserved or unspecified."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            ip = embedded
    return ip.is_global and not ip.is_multicast


def literal_address(host: str) -> str | None:
    """``host`` as an IP address when it is one (an IPv6 one may come in brackets)."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(bare.split("%", 1)[0]))
    except ValueError:
        return None


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (itself when it is an address), in the
    resolver's order; raises ``OSError`` when it resolves to none."""
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
    if not addresses:
        raise OSError(f"{host} resolves to no address")
    return addresses


def first_refused(addresses: list[str]) -> str | None:
    """The first of ``addresses`` that is not public, or None when all are."""
    return next((a for a in addresses if not is_public(a)), None)


__all__ = ["first_refused", "is_public", "literal_address", "resolve"]
