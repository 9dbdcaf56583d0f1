"""Where a user's own mail server may be: public addresses only, checked after DNS.

A mailbox's host and port come from a user, and MailBeacon connects to them
from inside the operator's network. Left open, "send test email" would reach
the loopback interface, the private network and cloud metadata services, and
its answer would tell open ports from closed ones. So every address a name
resolves to must be public (all of them: a name with one public and one
private address is refused), the connection goes to an address that was
checked (never a second lookup that DNS rebinding could answer differently),
and failures are reported by kind, never with the other side's words.

An operator whose mail server really is on the private network allows it
with MAILBEACON_SMTP_ALLOW_PRIVATE=true (the test suite does, for its
loopback servers).

    sock = await connect_checked(host, port, allow_private=False, connect_seconds=20)
    client = aiosmtplib.SMTP(hostname=host, sock=sock, ...)  # TLS still checks `host`
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Names that lead inside whatever their address: metadata services and local names.
BLOCKED_NAMES = frozenset({"localhost", "metadata", "metadata.google.internal", "instance-data"})
BLOCKED_SUFFIXES = (".localhost", ".internal", ".local", ".localdomain", ".home.arpa")
# Networks Python's `is_global` does not exclude but that lead inside all the same.
EXTRA_BLOCKED = tuple(
    ipaddress.ip_network(n)
    for n in ("100.64.0.0/10", "192.0.0.0/24", "198.18.0.0/15", "fec0::/10", "64:ff9b:1::/48")
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class RefusedDestination(Exception):
    """The host is, or resolves to, an address MailBeacon does not connect to."""


class UnreachableDestination(Exception):
    """No connection could be made: one kind, whether refused, filtered, timed out or unknown."""


@dataclass(frozen=True, slots=True)
class CheckedAddress:
    """One resolved address that passed the check, ready to connect to."""

    family: int
    address: str
    port: int


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped, 6to4, Teredo or NAT64 address, if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(ip: IPAddress) -> bool:
    """Whether `ip` is a global unicast address on the public internet."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return False
        inner = _embedded_ipv4(ip)
        if inner is not None and not is_public(inner):
            return False
    if not ip.is_global or ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return False
    return not any(ip.version == net.version and ip in net for net in EXTRA_BLOCKED)


def name_is_blocked(host: str) -> bool:
    """Names refused before any lookup: local names and cloud metadata services."""
    name = host.strip().rstrip(".").lower()
    return name in BLOCKED_NAMES or name.endswith(BLOCKED_SUFFIXES)


async def check_destination(host: str, port: int, *, allow_private: bool) -> list[CheckedAddress]:
    """Every address `host` resolves to, all checked; RefusedDestination if any is not public.

    UnreachableDestination when the name does not resolve (said like any other failure).
    """
    if not allow_private and name_is_blocked(host):
        raise RefusedDestination(host)
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnreachableDestination(host) from exc
    checked: list[CheckedAddress] = []
    for family, _type, _proto, _name, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        text = str(sockaddr[0])
        if not allow_private and not is_public(ipaddress.ip_address(text.split("%", 1)[0])):
            raise RefusedDestination(host)
        address = CheckedAddress(family, text, port)
        if address not in checked:
            checked.append(address)
    if not checked:
        raise UnreachableDestination(host)
    return checked


async def connect_checked(
    host: str, port: int, *, allow_private: bool, connect_seconds: float
) -> socket.socket:
    """A connected socket to one of `host`'s checked addresses, tried in order.

    Raises RefusedDestination, or UnreachableDestination for every kind of
    failure to connect, so a caller cannot tell a closed port from a filtered one.
    """
    loop = asyncio.get_running_loop()
    for candidate in await check_destination(host, port, allow_private=allow_private):
        sock = socket.socket(candidate.family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            target = (candidate.address, port)
            if candidate.family == socket.AF_INET6:
                target = (candidate.address, port, 0, 0)  # type: ignore[assignment]
            await asyncio.wait_for(loop.sock_connect(sock, target), connect_seconds)
        except (OSError, TimeoutError):
            sock.close()
            continue
        return sock
    raise UnreachableDestination(host)
