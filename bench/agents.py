"""Issue 7 (B3): describe_agent throughput on one core, against a plain regex in the same run.

Prints agents per second for unique strings (nothing cached: each one goes through our
rules and, when none matches, ua-parser), for repeats (the cache), and for the reference,
one `re.search` for a bot-ish word over the same strings. The ratio says how many plain
regex searches one uncached description costs; the absolute figures move with the
machine. Run: .venv/bin/python bench/agents.py [--count 20000]
"""

from __future__ import annotations

import argparse
import random
import re
import string
import time
from collections.abc import Callable

from mailbeacon.core.agents import _describe, describe_agent

# A realistic mix for a tracking pixel: mostly mail clients, proxies and browsers, some
# software. Unique strings are made by appending a random token.
MIX = [
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
    "Mozilla/5.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148",
    "Mozilla/4.0 (compatible; ms-office; MSOffice 16)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/127.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/127.0.0.0 Safari/537.36 Edg/127.0.2651.98",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/12.1.2 Safari/605.1.15",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/127.0.6533.103 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.4.2",
    "Barracuda Sentinel (EE)",
    "python-requests/2.31.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
]
REFERENCE = re.compile(r"bot|crawler|spider|proxy|curl|python", re.IGNORECASE)


def unique_agents(count: int) -> list[str]:
    rng = random.Random(7)
    letters = string.ascii_letters
    return [f"{MIX[i % len(MIX)]} x{''.join(rng.choices(letters, k=10))}" for i in range(count)]


def per_second(work: Callable[[str], object], agents: list[str]) -> float:
    started = time.process_time()
    for agent in agents:
        work(agent)
    return len(agents) / max(time.process_time() - started, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000, help="unique agents to describe")
    count = parser.parse_args().count

    describe_agent(MIX[0])  # load the parser's regexes outside the measurement
    _describe.cache_clear()
    agents = unique_agents(count)
    uncached = per_second(describe_agent, agents)
    repeats = [MIX[i % len(MIX)] for i in range(count)]
    per_second(describe_agent, MIX)  # warm the cache
    cached = per_second(describe_agent, repeats)
    reference = per_second(REFERENCE.search, agents)

    print(f"{'what':44} {'agents/s':>12} {'µs each':>9} {'vs re.search':>13}")
    for label, rate in (
        ("describe_agent, unique strings (uncached)", uncached),
        ("describe_agent, repeated strings (cached)", cached),
        ("reference: one re.search, same strings", reference),
    ):
        print(f"{label:44} {rate:12,.0f} {1e6 / rate:9.2f} {reference / rate:12.2f}x")


if __name__ == "__main__":
    main()
