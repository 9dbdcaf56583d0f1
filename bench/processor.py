"""Processor benchmark: does a batch cost the same however long a message's history?

Run as `.venv/bin/python bench/processor.py` (a temporary SQLite database) or
with `--database-url postgresql+asyncpg://user@host/db` (an existing, empty
database; it is migrated and filled). It fills one message with a small
history of events, times processor rounds of `--batch` new hits on that
message, grows the history to `--large` events, times the same rounds again,
and prints both and their ratio. Aggregates kept incrementally make the ratio
about 1; recounting a message's whole history on every batch made it grow with
the history (158 ms -> 772 ms per 1,000 hits at 600k events on this machine).

Each figure is the minimum and the median of `--repeats` rounds; every round
reads exactly `--batch` hits (a shorter one is retried and not counted). On
SQLite a round holds the database's write lock for its whole duration, so the
figure is also how long the hit writer may have to wait.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from mailbeacon.core.hits import Hit, HitKind, new_hit_id
from mailbeacon.processor.derive import process_all, process_batch
from mailbeacon.store.db import make_engine, migrate_async, sessions
from mailbeacon.store.hitlog import insert_ignoring_duplicates
from mailbeacon.store.tables import Event, Link, Message, Recipient, User

T0 = datetime(2026, 1, 1, tzinfo=UTC)
FILL_CHUNK = 10_000


async def seed(engine: AsyncEngine) -> tuple[int, list[int], int]:
    """One user, one message with ten recipients and one link; returns their ids."""
    async with sessions(engine)() as db, db.begin():
        if await db.scalar(select(func.count(Message.id))):
            raise SystemExit("the database is not empty; give an empty one")
        user = User(email="bench@example.com", password_hash="!")  # noqa: S106 - no sign-in
        db.add(user)
        await db.flush()
        message = Message(
            user_id=user.id,
            message_id_header="<bench@example.com>",
            from_address="bench@example.com",
            requested_opens=True,
            requested_links=True,
            track_opens=True,
            track_links=True,
            recipients=[Recipient(address=f"r{n}@example.com", field="to") for n in range(10)],
            links=[Link(url="https://example.com/")],
        )
        db.add(message)
        await db.flush()
        return message.id, [r.id for r in message.recipients], message.links[0].id


class Hits:
    """Human opens and clicks on the one message, at increasing times."""

    def __init__(self, message_id: int, recipient_ids: list[int], link_id: int) -> None:
        self.message_id, self.recipient_ids, self.link_id = message_id, recipient_ids, link_id
        self.made = 0

    def make(self, count: int) -> list[dict[str, object]]:
        rows = []
        for _ in range(count):
            n = self.made
            self.made += 1
            click = n % 4 == 0
            rows.append(
                Hit(
                    new_hit_id(),
                    T0 + timedelta(seconds=n),
                    HitKind.CLICK if click else HitKind.OPEN,
                    self.message_id,
                    self.recipient_ids[n % len(self.recipient_ids)],
                    self.link_id if click else None,
                    "GET",
                    False,
                    "203.0.113.0",
                    "Mozilla/5.0",
                ).to_row()
            )
        return rows


async def insert(engine: AsyncEngine, rows: list[dict[str, object]]) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert_ignoring_duplicates(engine), rows)


async def events(engine: AsyncEngine) -> int:
    async with sessions(engine)() as db:
        return int(await db.scalar(select(func.count(Event.id))) or 0)


async def fill_to(engine: AsyncEngine, hits: Hits, target: int) -> None:
    """Grow the message's history to `target` events (not timed)."""
    pending = 0
    while (have := await events(engine)) < target:
        if not pending:
            rows = hits.make(min(FILL_CHUNK, target - have))
            await insert(engine, rows)
            pending = len(rows)
        read = await process_all(engine, limit=5000)
        pending -= read
        if not read:  # PostgreSQL: not ready until older transactions end
            await asyncio.sleep(0.01)


async def timed_rounds(engine: AsyncEngine, hits: Hits, batch: int, repeats: int) -> list[float]:
    """Seconds per round of exactly `batch` new hits, `repeats` times."""
    times: list[float] = []
    while len(times) < repeats:
        await insert(engine, hits.make(batch))
        while True:
            started = time.perf_counter()
            read = await process_batch(engine, limit=batch)
            elapsed = time.perf_counter() - started
            if read == batch:
                times.append(elapsed)
                break
            if read:  # only part was ready (PostgreSQL): finish it, measure again
                await process_all(engine)
                break
            await asyncio.sleep(0.01)
    return times


def describe(times: list[float]) -> str:
    return f"min {min(times) * 1000:7.1f} ms   median {statistics.median(times) * 1000:7.1f} ms"


async def run(args: argparse.Namespace, url: str) -> None:
    await migrate_async(url)
    engine = make_engine(url)
    try:
        hits = Hits(*await seed(engine))
        await fill_to(engine, hits, args.small)
        small_history = await events(engine)
        small = await timed_rounds(engine, hits, args.batch, args.repeats)
        print(f"history {small_history:>8,} events: {describe(small)}", flush=True)
        await fill_to(engine, hits, args.large)
        large_history = await events(engine)
        large = await timed_rounds(engine, hits, args.batch, args.repeats)
        print(f"history {large_history:>8,} events: {describe(large)}")
        ratio = min(large) / min(small)
        print(
            f"ratio large/small (min): {ratio:.2f}  "
            f"({args.batch:,}-hit rounds, {engine.dialect.name}; about 1 means O(batch))"
        )
    finally:
        await engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    parser.add_argument("--small", type=int, default=1_000, help="small history, events")
    parser.add_argument("--large", type=int, default=200_000, help="large history, events")
    parser.add_argument("--batch", type=int, default=1_000, help="hits per timed round")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds per history")
    args = parser.parse_args()
    if not 0 < args.small < args.large or args.batch < 1 or args.repeats < 1:
        parser.error("need 0 < --small < --large, --batch >= 1 and --repeats >= 1")
    with tempfile.TemporaryDirectory(prefix="mailbeacon-bench-") as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        try:
            asyncio.run(run(args, url))
        except KeyboardInterrupt:
            return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
