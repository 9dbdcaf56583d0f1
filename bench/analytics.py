"""Analytics benchmark (B6): how long the analytics page's numbers and charts take for a
user with a long history.

Run as `.venv/bin/python bench/analytics.py` (a temporary SQLite database) or with
`--database-url postgresql+asyncpg://user@host/db` (an existing, empty database; it is
migrated and filled). It seeds one user with `--messages` emails (default 10,000) of one
to three recipients each, spread over the last 120 days, with counted opens, clicks
(events) and replies, plus a second user with the same amount (whose rows the queries
must skip, S7). Then it times, for the last 7, 30 and 90 days grouped by day, and 90
days by week:

- `report`: every query of the page (store/analytics.py), and
- `page`: the report plus the tables, both SVG versions of every chart and the CSV of
  every chart (web/pages/analytics.py), that is everything but the HTTP round trip
  and the Jinja layout.

Each figure is the minimum and the median of `--repeats` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from mailbeacon.store.analytics import Period, last_days, report
from mailbeacon.store.db import make_engine, migrate_async, sessions
from mailbeacon.store.tables import Event, Link, Message, Recipient, User
from mailbeacon.web.i18n import Localizer
from mailbeacon.web.pages.analytics import Choice, blocks, tables

DAYS = 120
CHUNK = 2_000


async def seed_user(engine: AsyncEngine, email: str, messages: int, now: datetime, seq: int) -> int:
    """One user and their history, inserted in chunks; returns the next free hit seq."""
    rng = random.Random(email)
    async with sessions(engine)() as db, db.begin():
        user = User(email=email, password_hash="!")  # noqa: S106 - never signs in
        db.add(user)
        await db.flush()
        user_id = user.id
    for start in range(0, messages, CHUNK):
        async with sessions(engine)() as db, db.begin():
            rows = []
            for n in range(start, min(messages, start + CHUNK)):
                sent = now - timedelta(seconds=rng.randrange(DAYS * 86400))
                rows.append(
                    {
                        "user_id": user_id,
                        "message_id_header": f"<{email}-{n}@bench>",
                        "from_address": email,
                        "subject": f"Offer {n}",
                        "requested_opens": True,
                        "requested_links": True,
                        "track_opens": True,
                        "track_links": True,
                        "untracked_reasons": [],
                        "status": "sent",
                        "created_at": sent - timedelta(seconds=2),
                        "sent_at": sent,
                    }
                )
            ids = (await db.scalars(insert(Message).returning(Message.id), rows)).all()
            links = (
                await db.scalars(
                    insert(Link).returning(Link.id),
                    [{"message_id": m, "url": f"https://example.com/p{m % 40}"} for m in ids],
                )
            ).all()
            copies = []
            for message_id, row in zip(ids, rows, strict=True):
                for r in range(rng.randint(1, 3)):
                    opened = rng.random() < 0.55
                    first = row["sent_at"] + timedelta(minutes=rng.expovariate(1 / 600))
                    copies.append(
                        {
                            "message_id": message_id,
                            "address": f"contact{rng.randrange(800)}@example.com",
                            "name": "",
                            "field": "to" if r == 0 else "cc",
                            "status": "sent" if rng.random() > 0.02 else "bounced",
                            "error": "",
                            "sent_at": row["sent_at"],
                            "open_count": rng.randint(1, 4) if opened else 0,
                            "first_open_at": first if opened else None,
                            "last_open_at": first if opened else None,
                            "click_count": 1 if opened and rng.random() < 0.3 else 0,
                            "reply_count": 1 if opened and rng.random() < 0.1 else 0,
                        }
                    )
            recipients = (
                await db.scalars(
                    insert(Recipient).returning(
                        Recipient.id, Recipient.message_id, Recipient.click_count
                    ),
                    copies,
                )
            ).all()
            link_of = dict(zip(ids, links, strict=True))
            result = await db.execute(
                select(Recipient.id, Recipient.message_id, Recipient.sent_at).where(
                    Recipient.message_id.in_(ids), Recipient.click_count > 0
                )
            )
            events = []
            for recipient_id, message_id, sent in result:
                seq += 1
                events.append(
                    {
                        "hit_seq": seq,
                        "message_id": message_id,
                        "recipient_id": recipient_id,
                        "link_id": link_of[message_id],
                        "kind": "click",
                        "verdict": "human",
                        "counted": True,
                        "occurred_at": sent + timedelta(hours=1),
                        "ip": "192.0.2.0",
                        "user_agent": "Mozilla/5.0",
                    }
                )
            if events:
                await db.execute(insert(Event), events)
            del recipients
    return seq


async def only_report(engine: AsyncEngine, user_id: int, period: Period) -> None:
    async with sessions(engine)() as db:
        await report(db, user_id, period)


async def whole_page(engine: AsyncEngine, user_id: int, period: Period) -> None:
    """The report, both drawings of every chart, every table's cells and CSV."""
    l10n = Localizer("en", "Europe/Stockholm")
    async with sessions(engine)() as db:
        data = await report(db, user_id, period)
    blocks(data, l10n, Choice(by=period.by), "")
    for table in tables(data, l10n).values():
        table.csv()


async def timed(
    runs: int,
    work: Callable[[AsyncEngine, int, Period], Awaitable[None]],
    *args: Any,
) -> tuple[float, float]:
    took = []
    for _ in range(runs):
        started = time.perf_counter()
        await work(*args)
        took.append((time.perf_counter() - started) * 1000)
    return min(took), statistics.median(took)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--reuse", action="store_true", help="time a database this benchmark filled before"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        await migrate_async(url)
        engine = make_engine(url)
        try:
            async with sessions(engine)() as db:
                filled = bool(await db.scalar(select(func.count(Message.id))))
            if filled and not args.reuse:
                print("the database is not empty; give an empty one", file=sys.stderr)
                return 2
            now = datetime.now(UTC)
            started = time.perf_counter()
            if not filled:
                seq = await seed_user(engine, "bench@example.com", args.messages, now, 0)
                await seed_user(engine, "other@example.com", args.messages, now, seq)
            async with sessions(engine)() as db:
                user_id = await db.scalar(select(User.id).where(User.email == "bench@example.com"))
                copies = await db.scalar(select(func.count(Recipient.id)))
            assert user_id is not None
            print(
                f"seeded {2 * args.messages:,} messages, {copies:,} copies for two users "
                f"in {time.perf_counter() - started:.1f} s ({engine.dialect.name})"
            )
            l10n = Localizer("en", "Europe/Stockholm")
            today: date = now.astimezone(l10n.tz).date()
            print(f"{'period':<14}{'report min':>12}{'median':>10}{'page min':>12}{'median':>10}")
            for days, by in ((7, "day"), (30, "day"), (90, "day"), (90, "week")):
                period = last_days(days, today, l10n.tz, by)  # type: ignore[arg-type]
                r_min, r_med = await timed(args.repeats, only_report, engine, user_id, period)
                p_min, p_med = await timed(args.repeats, whole_page, engine, user_id, period)
                print(
                    f"{f'{days} days/{by}':<14}{r_min:>10.1f}ms{r_med:>8.1f}ms"
                    f"{p_min:>10.1f}ms{p_med:>8.1f}ms"
                )
        finally:
            await engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
