"""Issue 7 (B3): classifier throughput on one core, against the processor's own cost.

`judge` runs once per hit inside a processor round, with the copy's recent
history. This prints judged hits per second for a realistic stream (a few
hundred copies, each read by a mail client, fetched by proxies and prefetches,
some scanned: repeats, bursts, honeypot, forwards), first with every agent new
to the cache, then warm, and as the reference the processor's whole round
(reading, judging, writing on SQLite) measured in the same run. The classifier
must never be what limits the processor: the ratio judge/processor should stay
well above 1. Run: .venv/bin/python bench/classify.py [--hits 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mailbeacon.core.agents import _describe
from mailbeacon.core.hits import Hit, HitKind, new_hit_id
from mailbeacon.core.signals import CopyFacts, CopyHistory, Sighting, judge, record
from mailbeacon.processor.derive import AT_ONCE, process_all
from mailbeacon.store.db import make_engine, migrate_async, sessions
from mailbeacon.store.hitlog import insert_ignoring_duplicates
from mailbeacon.store.tables import Link, Message, Recipient, User

AGENTS = [
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17029; Pro)",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
    "Mozilla/5.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "python-requests/2.31.0",
]
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def stream(count: int, copies: int, rng: random.Random) -> list[tuple[int, Sighting]]:
    """(copy, hit) in time order: bursts of fetches and clicks around each copy's reads."""
    hits: list[tuple[int, Sighting]] = []
    at = T0
    for _ in range(count):
        at += timedelta(milliseconds=rng.randrange(1, 4000))
        copy = rng.randrange(copies)
        link = rng.choice([None, None, None, 1, 2, 3, 99])
        hits.append(
            (
                copy,
                Sighting(
                    hit_id=new_hit_id(),
                    kind=HitKind.OPEN if link is None else HitKind.CLICK,
                    at=at,
                    link_id=link,
                    user_agent=rng.choice(AGENTS)
                    + (f" u{rng.randrange(10**9)}" if rng.random() < 0.2 else ""),
                    ip=f"198.51.{rng.randrange(4)}.0",
                    network=rng.choice(["", "", "", "google", "apple-relay", "datacenter"]),
                ),
            )
        )
    return hits


def judge_all(hits: list[tuple[int, Sighting]]) -> float:
    """Judged hits per second of CPU, histories kept as the processor keeps them."""
    facts = CopyFacts(delivered_at=T0, link_ids=frozenset({1, 2, 3}), honeypot_ids=frozenset({99}))
    histories: dict[int, CopyHistory] = {}
    started = time.process_time()
    for copy, sighting in hits:
        history = histories.setdefault(copy, CopyHistory())
        # The processor keeps only the look-back's worth of a copy's history.
        if len(history.earlier) > 64:
            del history.earlier[:32]
        record(sighting, judge(sighting, facts, history, AT_ONCE), history)
    return len(hits) / max(time.process_time() - started, 1e-9)


async def process(hits: list[tuple[int, Sighting]], copies: int) -> float:
    """The processor's rounds over the same stream on SQLite: hits per second (wall)."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        await migrate_async(url)
        engine = make_engine(url)
        async with sessions(engine)() as db, db.begin():
            user = User(email="bench@example.com", password_hash="x")  # noqa: S106
            db.add(user)
            await db.flush()
            message = Message(
                user_id=user.id,
                message_id_header="<bench@example.com>",
                from_address="bench@example.com",
                html_body="<p>x</p>",
                requested_opens=True,
                requested_links=True,
                track_opens=True,
                track_links=True,
                recipients=[
                    Recipient(address=f"r{n}@example.com", field="to") for n in range(copies)
                ],
                links=[Link(url=f"https://example.com/{n}") for n in range(3)],
            )
            db.add(message)
            await db.flush()
            recipients = [r.id for r in message.recipients]
            links = [k.id for k in message.links]
            message_id = message.id
        rows = [
            Hit(
                new_hit_id(),
                s.at,
                s.kind,
                message_id,
                recipients[copy],
                None if s.link_id is None else links[s.link_id % 3],
                "GET",
                False,
                s.ip,
                s.user_agent[:512],
                s.network,
            ).to_row()
            for copy, s in hits
        ]
        async with engine.begin() as conn:
            await conn.execute(insert_ignoring_duplicates(engine), rows)
        started = time.perf_counter()
        await process_all(engine)
        elapsed = time.perf_counter() - started
        await engine.dispose()
    return len(hits) / max(elapsed, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hits", type=int, default=20000)
    parser.add_argument("--copies", type=int, default=300)
    args = parser.parse_args()
    hits = stream(args.hits, args.copies, random.Random(7))
    _describe.cache_clear()
    cold = judge_all(hits)
    warm = judge_all(hits)
    processor = asyncio.run(process(hits, args.copies))
    print(f"judge, agents new to the cache: {cold:12,.0f} hits/s (one core)")
    print(f"judge, agents cached:           {warm:12,.0f} hits/s (one core)")
    print(f"processor round on SQLite:      {processor:12,.0f} hits/s (reference, same run)")
    print(f"ratio judge (cold) / processor: {cold / processor:12.1f}x")


if __name__ == "__main__":
    main()
