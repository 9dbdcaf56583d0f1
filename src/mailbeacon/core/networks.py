"""Which network an address belongs to: Apple's relay, a mail provider, a scanner, a cloud.

The collector truncates every address to /24 or /48 before storing it, and several of the
ranges that matter (Apple's iCloud Private Relay egress list, security vendors' mail
ranges) are smaller or not aligned to that. So the network is looked up here on the full
address, in memory, at the collector, and only its tag is kept with the hit.

Two parts, both pure (no I/O):

- parsers from text: Apple's egress CSV, plain CIDR lists, and the JSON range files the
  clouds publish. A line that does not parse is counted and reported, never fatal; only a
  file in which nothing parses is an error (`NoRanges`), so a wrong file never replaces a
  good list.
- `NetworkTable`: the ranges as sorted, disjoint integer intervals per address family;
  `tag_of` is a bisect, O(log n), cached per address, and never raises.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TypeAlias

__all__ = [
    "ALL_TAGS",
    "APPLE_RELAY",
    "DATACENTER",
    "GOOGLE",
    "MAIL_SECURITY_TAGS",
    "MICROSOFT",
    "Network",
    "NetworkTable",
    "NoRanges",
    "Parsed",
    "parse_apple_csv",
    "parse_cidr_list",
    "parse_json_ranges",
    "parse_known_csv",
    "parse_ranges",
    "range_cidrs",
    "read_ranges",
    "valid_tag",
]

Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
Range: TypeAlias = tuple[int, int, int]
"""(IP version, first address, last address) as integers: what the table works with."""

# Tags. A tag names who operates a network, not what a hit from it means: that is the
# classifier's business (core.signals).
APPLE_RELAY = "apple-relay"  # iCloud Private Relay egress (Apple Mail Privacy Protection)
GOOGLE = "google"  # Gmail's image proxy and mail servers
YAHOO = "yahoo"  # Yahoo mail and its image proxy
MICROSOFT = "microsoft"  # Exchange Online Protection / Safe Links
PROOFPOINT = "proofpoint"
MIMECAST = "mimecast"
BARRACUDA = "barracuda"
CISCO = "cisco"  # Cisco Secure Email (IronPort) cloud
TRENDMICRO = "trendmicro"
SOPHOS = "sophos"
FORCEPOINT = "forcepoint"
FORTINET = "fortinet"
SYMANTEC = "symantec"
ZSCALER = "zscaler"
DATACENTER = "datacenter"  # cloud and hosting: AWS, Azure, GCP, DigitalOcean, OVH, ...

# The same names as core.signals.SCANNER_NETWORKS: a vendor's list is `var/networks/<tag>.csv`.
MAIL_SECURITY_TAGS = frozenset(
    {
        MICROSOFT,
        PROOFPOINT,
        MIMECAST,
        BARRACUDA,
        CISCO,
        TRENDMICRO,
        SOPHOS,
        FORCEPOINT,
        FORTINET,
        SYMANTEC,
        ZSCALER,
    }
)
ALL_TAGS = frozenset({APPLE_RELAY, GOOGLE, YAHOO, DATACENTER} | MAIL_SECURITY_TAGS)

MAX_TAG = 32  # the width of hits.network
_TAG_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
_HEADER_WORDS = frozenset({"cidr", "prefix", "network", "range", "ip_prefix"})
# Keys under which the clouds' JSON files list prefixes (AWS, Google, Azure service tags).
_JSON_PREFIX_KEYS = frozenset({"ip_prefix", "ipv6_prefix", "ipv4Prefix", "ipv6Prefix"})
_JSON_LIST_KEYS = frozenset({"addressPrefixes"})
_EXAMPLES = 5  # bad lines quoted back to the operator


class NoRanges(ValueError):
    """A file in which not one range parsed: almost certainly the wrong file."""


def valid_tag(tag: str) -> bool:
    """A tag fits the hits column and a file name: lowercase letters, digits and dashes."""
    return 0 < len(tag) <= MAX_TAG and set(tag) <= _TAG_CHARS and not tag.startswith("-")


@dataclass(slots=True)
class Parsed:
    """What a parser found: the networks, and how many lines it had to skip (with examples)."""

    networks: list[Network] = field(default_factory=list)
    skipped: int = 0
    examples: list[str] = field(default_factory=list)

    def skip(self, line: str) -> None:
        self.skipped += 1
        if len(self.examples) < _EXAMPLES:
            self.examples.append(line[:120])

    def checked(self) -> Parsed:
        """Self, or NoRanges when nothing parsed (an empty or wrong file)."""
        if not self.networks:
            raise NoRanges(f"no address ranges found ({self.skipped} lines skipped)")
        return self


def _network(text: str) -> Network | None:
    """A CIDR (or a bare address, as a /32 or /128), host bits allowed; None if not one."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None


def _lines(text: str) -> Iterator[str]:
    for raw in text.splitlines():
        line = raw.strip().lstrip("\ufeff")
        if line and not line.startswith("#"):
            yield line


def _first_field(line: str) -> str:
    return line.split(",", 1)[0].strip()


def parse_cidr_list(text: str) -> Parsed:
    """One CIDR per line; `#` comments, blank lines and a header line ignored.

    Extra comma-separated columns are ignored too, so Apple's CSV and our own
    `cidr,tag,source` files read as plain lists.
    """
    parsed = Parsed()
    for line in _lines(text):
        first = _first_field(line)
        network = _network(first)
        if network is not None:
            parsed.networks.append(network)
        elif first.lower() not in _HEADER_WORDS:
            parsed.skip(line)
    return parsed


def parse_apple_csv(text: str) -> Parsed:
    """Apple's egress-ip-ranges.csv: `prefix,country,region,city,` per line, v4 and v6.

    Source: https://mask-api.icloud.com/egress-ip-ranges.csv. A line must have Apple's
    shape (a prefix and the location columns), which tells this file apart from a list
    that merely happens to contain addresses.
    """
    parsed = Parsed()
    for line in _lines(text):
        columns = line.split(",")
        network = _network(columns[0]) if len(columns) >= 4 else None
        if network is None:
            parsed.skip(line)
        else:
            parsed.networks.append(network)
    return parsed


def parse_json_ranges(text: str) -> Parsed:
    """The clouds' published JSON: AWS ip-ranges.json (`ip_prefix`, `ipv6_prefix`), Google
    goog.json/cloud.json (`ipv4Prefix`, `ipv6Prefix`), Azure service tags (`addressPrefixes`).

    Every such key anywhere in the document counts, so a file filtered with jq reads too.
    Text that is not JSON at all raises NoRanges.
    """
    try:
        document: object = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise NoRanges(f"not a JSON file: {exc}") from None
    parsed = Parsed()
    for value in _json_prefixes(document):
        network = _network(value) if isinstance(value, str) else None
        if network is None:
            parsed.skip(repr(value))
        else:
            parsed.networks.append(network)
    return parsed


def _json_prefixes(document: object) -> Iterator[object]:
    """Every value under a prefix key, walking the document without recursion."""
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _JSON_PREFIX_KEYS:
                    yield value
                elif key in _JSON_LIST_KEYS and isinstance(value, list):
                    yield from value
                else:
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)


FORMATS = ("apple", "cidr", "json")


def parse_ranges(text: str, fmt: str) -> Parsed:
    """Parse in one of FORMATS; NoRanges when nothing parsed."""
    if fmt == "apple":
        return parse_apple_csv(text).checked()
    if fmt == "json":
        return parse_json_ranges(text).checked()
    if fmt == "cidr":
        return parse_cidr_list(text).checked()
    raise ValueError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")


def parse_known_csv(text: str) -> tuple[list[tuple[Network, str]], Parsed]:
    """`cidr,tag,source` rows (our packaged known.csv): (network, tag) pairs, and what was
    skipped (a bad range or a bad tag)."""
    pairs: list[tuple[Network, str]] = []
    parsed = Parsed()
    for line in _lines(text):
        columns = [column.strip() for column in line.split(",")]
        network = _network(columns[0])
        tag = columns[1] if len(columns) > 1 else ""
        if network is not None and valid_tag(tag):
            pairs.append((network, tag))
            parsed.networks.append(network)
        elif columns[0].lower() not in _HEADER_WORDS:
            parsed.skip(line)
    return pairs, parsed


def to_range(network: Network) -> Range:
    first = int(network.network_address)
    return (network.version, first, first | int(network.hostmask))


_FAMILY = {4: (socket.AF_INET, 32), 6: (socket.AF_INET6, 128)}


def cidr_range(text: str) -> Range | None:
    """A CIDR line as a Range, fast: the C address parsers first, `ipaddress` for the rest.

    Loading a full relay list is ~100,000 of these, so the common spelling must not pay
    for building `ipaddress` objects (about ten times slower).
    """
    address, _, length = text.partition("/")
    version = 6 if ":" in address else 4
    family, bits = _FAMILY[version]
    try:
        packed = socket.inet_pton(family, address)
        prefix = int(length) if length else bits
    except (OSError, ValueError):
        network = _network(text)
        return to_range(network) if network is not None else None
    if not 0 <= prefix <= bits or (not length.isdigit() and length):
        return None
    host = (1 << (bits - prefix)) - 1
    first = int.from_bytes(packed, "big") & ~host
    return (version, first, first | host)


def read_ranges(text: str) -> tuple[list[Range], Parsed]:
    """Like parse_cidr_list, but straight to Ranges (how written lists are loaded)."""
    ranges: list[Range] = []
    parsed = Parsed()
    for line in _lines(text):
        first = _first_field(line)
        found = cidr_range(first)
        if found is not None:
            ranges.append(found)
        elif first.lower() not in _HEADER_WORDS:
            parsed.skip(line)
    return ranges, parsed


def collapse(networks: Iterable[Network]) -> list[Range]:
    """The same addresses as the fewest disjoint ranges, v4 first, sorted."""
    ranges = sorted(to_range(network) for network in networks)
    merged: list[Range] = []
    for version, first, last in ranges:
        if merged and merged[-1][0] == version and first <= merged[-1][2] + 1:
            if last > merged[-1][2]:
                merged[-1] = (version, merged[-1][1], last)
        else:
            merged.append((version, first, last))
    return merged


def range_cidrs(found: Range) -> Iterator[str]:
    """A range written as the fewest CIDRs (largest aligned block first, repeatedly)."""
    version, first, last = found
    family, bits = _FAMILY[version]
    size = bits // 8
    while first <= last:
        span = (first & -first).bit_length() - 1 if first else bits
        while span > 0 and first + (1 << span) - 1 > last:
            span -= 1
        text = socket.inet_ntop(family, first.to_bytes(size, "big"))
        yield f"{text}/{bits - span}"
        first += 1 << span


class _Intervals:
    """Disjoint, sorted [start, end] integer intervals of one family, each with a tag."""

    __slots__ = ("ends", "starts", "tags")

    def __init__(self, ranges: list[tuple[int, int, str]]) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.tags: list[str] = []
        for start, end, tag in _flatten(ranges):
            if self.tags and self.tags[-1] == tag and self.ends[-1] + 1 == start:
                self.ends[-1] = end  # adjacent with the same tag: one interval
            else:
                self.starts.append(start)
                self.ends.append(end)
                self.tags.append(tag)

    def tag_of(self, value: int) -> str:
        i = bisect_right(self.starts, value) - 1
        if i >= 0 and value <= self.ends[i]:
            return self.tags[i]
        return ""

    def __len__(self) -> int:
        return len(self.starts)


def _flatten(ranges: list[tuple[int, int, str]]) -> Iterator[tuple[int, int, str]]:
    """Turn nested CIDR ranges into disjoint pieces where the innermost (longest prefix) wins.

    CIDR blocks are either disjoint or nested, so one sweep with a stack of the enclosing
    blocks does it: sorted by start and widest first, each block interrupts the one around
    it. The same block given twice keeps the tag given last.
    """
    unique: dict[tuple[int, int], str] = {}
    for start, end, tag in ranges:
        unique[(start, end)] = tag
    ordered = sorted(unique.items(), key=lambda item: (item[0][0], -item[0][1]))
    stack: list[tuple[int, str]] = []  # (end, tag) of the enclosing blocks, innermost last
    cursor = 0
    for (start, end), tag in ordered:
        while stack and stack[-1][0] < start:
            top_end, top_tag = stack.pop()
            if cursor <= top_end:
                yield cursor, top_end, top_tag
                cursor = top_end + 1
        if stack and cursor < start:
            yield cursor, start - 1, stack[-1][1]
        cursor = start
        stack.append((end, tag))
    while stack:
        top_end, top_tag = stack.pop()
        if cursor <= top_end:
            yield cursor, top_end, top_tag
            cursor = top_end + 1


class NetworkTable:
    """Tagged address ranges; `tag_of(ip)` says whose network an address is in.

    Built once from (network, tag) pairs; overlapping ranges resolve to the more specific
    (longer prefix) one. Lookups are cached per address string, like core.hits.truncate_ip,
    since one reader's client hits the collector many times.
    """

    def __init__(self, pairs: Iterable[tuple[Network, str]], cache_size: int = 65536) -> None:
        self._build(((to_range(network), tag) for network, tag in pairs), cache_size)

    @classmethod
    def from_ranges(
        cls, ranges: Iterable[tuple[Range, str]], cache_size: int = 65536
    ) -> NetworkTable:
        """Built from (Range, tag) pairs, as lists are loaded (see read_ranges)."""
        table = cls.__new__(cls)
        table._build(ranges, cache_size)
        return table

    def _build(self, ranges: Iterable[tuple[Range, str]], cache_size: int) -> None:
        v4: list[tuple[int, int, str]] = []
        v6: list[tuple[int, int, str]] = []
        counts: dict[str, int] = {}
        for (version, first, last), tag in ranges:
            (v4 if version == 4 else v6).append((first, last, tag))
            counts[tag] = counts.get(tag, 0) + 1
        self._v4 = _Intervals(v4)
        self._v6 = _Intervals(v6)
        self.ranges_by_tag = counts
        self._cached = lru_cache(maxsize=cache_size)(self._lookup)

    @classmethod
    def empty(cls) -> NetworkTable:
        return cls(())

    def current(self) -> NetworkTable:
        """A fixed table is its own source (see store.networks.NetworkSource)."""
        return self

    def __len__(self) -> int:
        """Disjoint intervals held (after flattening and merging)."""
        return len(self._v4) + len(self._v6)

    def tag_of(self, ip: str) -> str:
        """The tag of the network `ip` is in, or "" for none or for anything not an address."""
        try:
            return self._cached(ip)
        except Exception:  # an unhashable or otherwise odd argument: never break a hit
            return ""

    def _lookup(self, ip: str) -> str:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return ""
        if isinstance(address, ipaddress.IPv6Address):
            mapped = address.ipv4_mapped
            if mapped is None:
                return self._v6.tag_of(int(address))
            address = mapped
        return self._v4.tag_of(int(address))
