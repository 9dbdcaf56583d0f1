"""What the network tag costs the collector per hit, and what loading a full list costs.

    .venv/bin/python bench/networks.py [--ranges 300000] [--lookups 200000]

A full-size table (by default 300,000 generated ranges shaped like Apple's relay list:
small IPv4 blocks and IPv6 /64s, plus the packaged known.csv) is built; then
`NetworkTable.tag_of` is timed against `core.hits.truncate_ip`, which every hit already
pays, on unique addresses (every lookup misses the caches: the worst case) and on
addresses seen before (a reader's client hitting again: the cache answers). Also timed:
building the table, writing a refreshed list collapsed, and loading it as `serve` does.
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mailbeacon.core.hits import truncate_ip
from mailbeacon.core.networks import APPLE_RELAY, Network, NetworkTable
from mailbeacon.settings import load_settings
from mailbeacon.store.networks import load_network_table, write_list


def relay_like(count: int, rng: random.Random) -> list[Network]:
    """Apple-shaped ranges: 60 % IPv4 /27../31 within 172.224.0.0/12, 40 % IPv6 /64."""
    networks: list[Network] = []
    for _ in range(count):
        if rng.random() < 0.6:
            prefix = rng.choice((27, 28, 29, 30, 31))
            value = (0xAC_E0_00_00 + rng.getrandbits(20)) >> (32 - prefix) << (32 - prefix)
            networks.append(ipaddress.IPv4Network((value, prefix)))
        else:
            value = (0x2A02_26F7 << 96) | (rng.getrandbits(32) << 64)
            networks.append(ipaddress.IPv6Network((value, 64)))
    return networks


def addresses(count: int, rng: random.Random) -> list[str]:
    """Half inside the relay-shaped space, half anywhere, both families."""
    found = []
    for i in range(count):
        if i % 4 == 0:
            found.append(str(ipaddress.IPv4Address(0xAC_E0_00_00 + rng.getrandbits(20))))
        elif i % 4 == 1:
            found.append(str(ipaddress.IPv4Address(rng.getrandbits(32))))
        elif i % 4 == 2:
            found.append(str(ipaddress.IPv6Address((0x2A02_26F7 << 96) | rng.getrandbits(96))))
        else:
            found.append(str(ipaddress.IPv6Address(rng.getrandbits(128))))
    return found


def per_call(function: Callable[[str], str], inputs: list[str]) -> float:
    """Seconds per call, best of three passes."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for value in inputs:
            function(value)
        best = min(best, (time.perf_counter() - start) / len(inputs))
    return best


def timed(label: str, action: Callable[[], object]) -> object:
    start = time.perf_counter()
    result = action()
    print(f"{label:<52} {time.perf_counter() - start:8.3f} s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranges", type=int, default=300_000)
    parser.add_argument("--lookups", type=int, default=200_000)
    args = parser.parse_args()
    rng = random.Random(7)
    networks = relay_like(args.ranges, rng)
    with tempfile.TemporaryDirectory() as folder:
        settings = load_settings(var_dir=Path(folder))
        table = timed(
            f"build NetworkTable from {args.ranges} ranges",
            lambda: NetworkTable((n, APPLE_RELAY) for n in networks),
        )
        assert isinstance(table, NetworkTable)
        _, written = timed(
            "refresh: collapse and write the list",
            lambda: write_list(settings, APPLE_RELAY, networks, "bench", "apple"),
        )  # type: ignore[misc]
        loaded = timed(
            f"load as serve does ({written} collapsed ranges)", lambda: load_network_table(settings)
        )
        assert isinstance(loaded, NetworkTable)
        print(f"intervals in the loaded table: {len(loaded)}")

        unique = addresses(args.lookups, rng)
        # Cold: the uncached functions behind both caches, every address once.
        cold_truncate = per_call(truncate_ip.__wrapped__, unique)
        cold_tag = per_call(loaded._lookup, unique)
        repeat = unique[:1000] * (args.lookups // 1000)
        loaded.tag_of(repeat[0])
        warm_truncate = per_call(truncate_ip, repeat)
        warm_tag = per_call(loaded.tag_of, repeat)

    print()
    print(f"{'per hit':<30} {'tag_of':>10} {'truncate_ip':>12} {'ratio':>7}")
    for label, tag, truncate in (
        ("new address (no cache)", cold_tag, cold_truncate),
        ("address seen before (cached)", warm_tag, warm_truncate),
    ):
        print(f"{label:<30} {tag * 1e6:8.2f} us {truncate * 1e6:10.2f} us {tag / truncate:6.2f}x")


if __name__ == "__main__":
    main()
