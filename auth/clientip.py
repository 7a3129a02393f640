"""Resolves a request's client address behind trusted reverse proxies."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

__all__ = ["client_ip", "Network"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Parses one hop (`1.2.3.4`, `::1`, `[::1]`), or returns None if it is not an address."""
    text = text.strip().strip('"')
    if text.startswith("[") and "]" in text:
        text = text[1:text.index("]")]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
             networks: Iterable[Network]) -> bool:
    """Tells whether address lies in one of the trusted networks."""
    if address is None:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in networks)


def client_ip(
    peer: str, forwarded_for: Sequence[str], real_ip: str | None, trusted: Sequence[Network]
) -> str:
    """Returns the client address: the peer, or what a trusted peer says the client is.

    Only when the peer is a trusted proxy are the headers believed. X-Forwarded-For is walked
    right to left (each proxy appends the address it saw) skipping trusted hops, so the first
    untrusted hop is the client; anything left of it was written by the client and is ignored.
    Without X-Forwarded-For, a trusted peer's X-Real-IP is used.
    """
    if not trusted or not (forwarded_for or real_ip) or not _trusted(_address(peer), trusted):
        return peer  # without either header every path below ends at the peer too
    hops = [hop for header in forwarded_for for hop in header.split(",") if hop.strip()]
    if hops:
        nearest = peer
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                return nearest  # garbage from further left: stop at the last good hop
            nearest = str(address)
            if not _trusted(address, trusted):
                return nearest
        return nearest  # every hop is a trusted proxy: the leftmost is the best we know
    if real_ip:
        address = _address(real_ip)
        if address is not None:
            return str(address)
    return peer
