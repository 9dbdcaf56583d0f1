"""core.networks: parsing the published range files, and tagging an address (B3)."""

from __future__ import annotations

import ipaddress
import json
from importlib import resources

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbeacon.core.networks import (
    APPLE_RELAY,
    DATACENTER,
    GOOGLE,
    MICROSOFT,
    Network,
    NetworkTable,
    NoRanges,
    cidr_range,
    collapse,
    parse_apple_csv,
    parse_cidr_list,
    parse_json_ranges,
    parse_known_csv,
    parse_ranges,
    range_cidrs,
    to_range,
    valid_tag,
)

net = ipaddress.ip_network
BASE = 0x0A000000  # 10.0.0.0: generated ranges stay inside one /16 so they meet often

# Real rows of https://mask-api.icloud.com/egress-ip-ranges.csv (as in the packaged sample).
APPLE_ROWS = """172.224.226.0/27,GB,GB-EN,London,
172.224.226.32/31,GB,GB-SC,Aberdeen,
146.75.253.246/31,US,US-MA,BOSTON,
2a02:26f7:b3c0:4000::/64,GB,GB-EN,London,
"""


def table(*rows: tuple[str, str]) -> NetworkTable:
    return NetworkTable((net(cidr), tag) for cidr, tag in rows)


# -- parsers -----------------------------------------------------------------------------


def test_apple_csv_reads_v4_and_v6_rows() -> None:
    parsed = parse_apple_csv(APPLE_ROWS)
    assert [str(n) for n in parsed.networks] == [
        "172.224.226.0/27",
        "172.224.226.32/31",
        "146.75.253.246/31",
        "2a02:26f7:b3c0:4000::/64",
    ]
    assert parsed.skipped == 0


def test_apple_csv_counts_bad_lines_and_quotes_some_back() -> None:
    text = APPLE_ROWS + "nonsense,GB,,,\n10.0.0.0/33,US,US-CA,X,\n172.224.0.0/16\n\n"
    parsed = parse_apple_csv(text)
    assert len(parsed.networks) == 4
    assert parsed.skipped == 3  # a bad prefix, an impossible prefix, a line not in Apple's shape
    assert parsed.examples[0] == "nonsense,GB,,,"


def test_cidr_list_ignores_comments_headers_extra_columns_and_host_bits() -> None:
    text = (
        "# comment\ncidr,tag,source\n192.0.2.0/24,proofpoint,somewhere\n"
        " 198.51.100.7/24 \n2001:db8::1\nnot a range\n"
    )
    parsed = parse_cidr_list(text)
    assert [str(n) for n in parsed.networks] == [
        "192.0.2.0/24",
        "198.51.100.0/24",
        "2001:db8::1/128",
    ]
    assert parsed.skipped == 1


def test_json_ranges_read_aws_google_and_azure_shapes() -> None:
    aws = {
        "prefixes": [{"ip_prefix": "3.5.140.0/22"}],
        "ipv6_prefixes": [{"ipv6_prefix": "2600:1f14::/35"}],
    }
    google = {"prefixes": [{"ipv4Prefix": "8.8.4.0/24"}, {"ipv6Prefix": "2001:4860::/32"}]}
    azure = {"values": [{"properties": {"addressPrefixes": ["13.64.0.0/16", "2603:1000::/40"]}}]}
    found = [
        str(n) for doc in (aws, google, azure) for n in parse_json_ranges(json.dumps(doc)).networks
    ]
    assert sorted(found) == sorted(
        [
            "3.5.140.0/22",
            "2600:1f14::/35",
            "8.8.4.0/24",
            "2001:4860::/32",
            "13.64.0.0/16",
            "2603:1000::/40",
        ]
    )


def test_json_ranges_count_bad_values() -> None:
    parsed = parse_json_ranges(
        json.dumps({"prefixes": [{"ip_prefix": "x"}, {"ip_prefix": 7}, {"ip_prefix": "3.0.0.0/9"}]})
    )
    assert (len(parsed.networks), parsed.skipped) == (1, 2)


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        ("", "apple"),
        ("<html>not found</html>", "apple"),
        ("# only comments\n", "cidr"),
        ("{not json", "json"),
        ('{"prefixes": []}', "json"),
        ("1.2.3.0/24\n", "apple"),  # a plain list is not Apple's file
    ],
)
def test_a_file_with_no_ranges_is_an_error(text: str, fmt: str) -> None:
    with pytest.raises(NoRanges):
        parse_ranges(text, fmt)


def test_packaged_known_list_parses_completely_with_sources() -> None:
    text = resources.files("mailbeacon").joinpath("data", "networks", "known.csv").read_text()
    pairs, parsed = parse_known_csv(text)
    assert parsed.skipped == 0 and len(pairs) > 50
    rows = [line for line in text.splitlines() if line and not line.startswith(("#", "cidr,"))]
    assert all(
        len(row.split(",", 2)) == 3 and row.split(",", 2)[2] for row in rows
    )  # each has a source


def test_tags_are_checked() -> None:
    assert valid_tag("apple-relay") and valid_tag("trendmicro")
    assert not any(valid_tag(t) for t in ("", "Apple", "a/b", "../x", "-x", "x" * 33))


def test_collapse_merges_adjacent_and_nested_ranges_and_writes_few_cidrs() -> None:
    networks = [
        net("172.224.226.32/31"),
        net("172.224.226.34/31"),
        net("172.224.226.33/32"),
        net("172.224.226.36/31"),
        net("2001:db8::/33"),
        net("2001:db8:8000::/33"),
    ]
    cidrs = [cidr for merged in collapse(networks) for cidr in range_cidrs(merged)]
    assert cidrs == ["172.224.226.32/30", "172.224.226.36/31", "2001:db8::/32"]


@pytest.mark.parametrize(
    "text",
    [
        "172.224.226.0/27",
        "172.224.226.7/27",
        "2a02:26f7:b3c0:4000::/64",
        "192.0.2.1",
        "::/0",
        "0.0.0.0/0",
    ],
)
def test_the_fast_cidr_reader_agrees_with_ipaddress(text: str) -> None:
    assert cidr_range(text) == to_range(net(text, strict=False))


@pytest.mark.parametrize(
    "text", ["1.2.3.0/33", "1.2.3.0/-1", "1.2.3.0/+8", "1.2.3.0/x", "::/129", "x/8"]
)
def test_the_fast_cidr_reader_refuses_what_is_not_a_range(text: str) -> None:
    assert cidr_range(text) is None


@given(st.lists(st.tuples(st.integers(0, 2**16 - 1), st.integers(16, 32)), max_size=20))
def test_written_cidrs_cover_exactly_the_same_addresses(blocks: list[tuple[int, int]]) -> None:
    networks: list[Network] = [
        ipaddress.IPv4Network((BASE + value, length), strict=False) for value, length in blocks
    ]
    cidrs = [net(c) for merged in collapse(networks) for c in range_cidrs(merged)]
    assert cidrs == list(ipaddress.collapse_addresses(networks))  # type: ignore[arg-type]


# -- lookups -----------------------------------------------------------------------------


def test_lookup_edges_of_a_range() -> None:
    t = table(("172.224.226.0/27", APPLE_RELAY))
    assert t.tag_of("172.224.226.0") == APPLE_RELAY
    assert t.tag_of("172.224.226.31") == APPLE_RELAY
    assert t.tag_of("172.224.226.32") == ""
    assert t.tag_of("172.224.225.255") == ""


def test_v4_and_v6_are_kept_apart() -> None:
    # 1.0.0.0 and ::100:0 are the same integer; only the family tells them apart.
    t = table(("1.0.0.0/24", "datacenter"), ("2a02:26f7:b3c0:4000::/64", APPLE_RELAY))
    assert t.tag_of("::100:1") == ""
    assert t.tag_of("1.0.0.1") == "datacenter"
    assert t.tag_of("2a02:26f7:b3c0:4000:1234::1") == APPLE_RELAY
    assert t.tag_of("2a02:26f7:b3c0:4001::1") == ""


def test_ipv4_mapped_ipv6_is_looked_up_as_ipv4() -> None:
    assert table(("172.224.226.0/27", APPLE_RELAY)).tag_of("::ffff:172.224.226.5") == APPLE_RELAY


def test_the_more_specific_range_wins_whichever_order() -> None:
    rows = [("35.184.0.0/13", DATACENTER), ("35.190.247.0/24", GOOGLE), ("35.190.247.128/25", "x")]
    for ordering in (rows, rows[::-1]):
        t = table(*ordering)
        assert t.tag_of("35.184.0.1") == DATACENTER
        assert t.tag_of("35.190.246.255") == DATACENTER
        assert t.tag_of("35.190.247.1") == GOOGLE
        assert t.tag_of("35.190.247.200") == "x"
        assert t.tag_of("35.190.248.0") == DATACENTER
        assert t.tag_of("35.191.255.255") == DATACENTER
        assert t.tag_of("35.192.0.0") == ""


def test_microsoft_mail_ranges_inside_azure_are_microsoft() -> None:
    t = table(
        ("40.64.0.0/10", DATACENTER), ("40.92.0.0/15", MICROSOFT), ("40.107.0.0/16", MICROSOFT)
    )
    assert [t.tag_of(ip) for ip in ("40.65.0.1", "40.93.1.1", "40.107.9.9", "40.108.0.1")] == [
        DATACENTER,
        MICROSOFT,
        MICROSOFT,
        DATACENTER,
    ]


def test_the_same_range_twice_keeps_the_last_tag() -> None:
    assert table(("192.0.2.0/24", "a"), ("192.0.2.0/24", "b")).tag_of("192.0.2.9") == "b"


def test_adjacent_ranges_with_one_tag_become_one_interval() -> None:
    t = table(("192.0.2.0/25", "a"), ("192.0.2.128/25", "a"), ("198.51.100.0/24", "b"))
    assert len(t) == 2
    assert t.ranges_by_tag == {"a": 2, "b": 1}


def test_an_empty_table_tags_nothing() -> None:
    assert NetworkTable.empty().tag_of("172.224.226.5") == ""


@pytest.mark.parametrize(
    "ip",
    [
        "",
        "unknown",
        "999.1.1.1",
        "172.224.226.5 ",
        "fe80::1%eth0",
        "::",
        "0.0.0.0",  # noqa: S104
        "\x00",
        "1" * 10_000,
    ],
)
def test_odd_strings_are_untagged_not_errors(ip: str) -> None:
    assert table(("0.0.0.0/1", "a"), ("::/1", "b")).tag_of(ip) in ("", "a", "b")


def test_a_non_string_is_untagged_not_an_error() -> None:
    assert table(("0.0.0.0/0", "a")).tag_of([]) == ""  # type: ignore[arg-type]


@given(st.text(max_size=60))
def test_tag_of_never_raises_on_any_string(ip: str) -> None:
    table(("172.224.226.0/27", APPLE_RELAY), ("2a02:26f7::/32", APPLE_RELAY)).tag_of(ip)


# Ranges inside one /16 nest and overlap often, which is what the sweep must get right.
nested_ranges = st.lists(
    st.tuples(st.integers(0, 2**16 - 1), st.integers(16, 30), st.sampled_from("abc")), max_size=30
)


@given(nested_ranges, st.integers(0, 2**16 - 1))
def test_lookup_agrees_with_a_brute_force_longest_prefix_match(
    ranges: list[tuple[int, int, str]], probe: int
) -> None:
    pairs = [
        (ipaddress.IPv4Network((BASE + value, length), strict=False), tag)
        for value, length, tag in ranges
    ]
    address = ipaddress.IPv4Address(BASE + probe)
    best: dict[ipaddress.IPv4Network, str] = {}
    for network, tag in pairs:
        best[network] = tag  # the same range twice: the last wins
    matching = [n for n in best if address in n]
    expected = best[max(matching, key=lambda n: n.prefixlen)] if matching else ""
    assert NetworkTable(pairs).tag_of(str(address)) == expected
