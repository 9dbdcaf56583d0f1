"""Who is really asking: the client address behind trusted reverse proxies.

A reverse proxy appends the address it saw to `X-Forwarded-For` (or adds a
`Forwarded: for=` element). Everything to the left of what our own proxies
appended was written by the client and proves nothing, so the client is the
right-most address that is *not* one of our trusted proxies: walk from the
peer leftwards while the current hop is trusted. Taking the left-most entry
instead would let anyone choose the address their hits are recorded under and
the network their wrong passwords are counted against.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from enum import StrEnum

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class ProxyHeader(StrEnum):
    """The header a deployment's proxies write the client chain into."""

    X_FORWARDED_FOR = "x-forwarded-for"
    FORWARDED = "forwarded"


def parse_networks(value: str) -> tuple[Network, ...]:
    """Comma-separated IPs and CIDRs; raises ValueError naming the first bad entry."""
    networks: list[Network] = []
    for raw in value.split(","):
        entry = raw.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(
                f"{entry!r} is not an IP address or network (e.g. 10.0.0.0/8, ::1)"
            ) from None
    return tuple(networks)


def _address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def x_forwarded_for_chain(values: Iterable[str]) -> list[str]:
    """The hops of every X-Forwarded-For line, left to right, as written."""
    return [hop.strip() for value in values for hop in value.split(",")]


def forwarded_chain(values: Iterable[str]) -> list[str]:
    """The `for=` node of every element of every Forwarded line (RFC 7239), left to right.

    Ports and IPv6 brackets are dropped; an element without `for=` counts as a
    hop that is not an address, so the walk stops there.
    """
    hops: list[str] = []
    for value in values:
        for element in value.split(","):
            node = ""
            for pair in element.split(";"):
                name, _, raw = pair.partition("=")
                if name.strip().lower() == "for":
                    node = _node_address(raw.strip().strip('"'))
            hops.append(node)
    return hops


def _node_address(node: str) -> str:
    if node.startswith("["):
        return node[1 : node.find("]")] if "]" in node else ""
    host, colon, _port = node.partition(":")
    return host if colon and "." in host else node


def client_address(peer: str, chain: Sequence[str], trusted: Sequence[Network]) -> str:
    """The right-most address of `chain` + [peer] that is not a trusted proxy.

    When every hop is trusted, the left-most one is the answer (a request from
    inside). An entry that is not an address ends the walk at the trusted hop
    that passed it on: garbage to the left of our proxies is the client's own.
    """
    current = peer
    for hop in reversed(chain):
        address = _address(current)
        if address is None or not any(address in network for network in trusted):
            return current
        if _address(hop) is None:
            return current
        current = str(_address(hop))
    return current


def is_trusted(peer: str, trusted: Sequence[Network]) -> bool:
    address = _address(peer)
    return address is not None and any(address in network for network in trusted)
