"""The processor: events and aggregates from the hit log, and a rebuild gives the same."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from mailbeacon.core.hits import Hit, HitKind, new_hit_id
from mailbeacon.processor.derive import process_all, rebuild
from mailbeacon.store.db import make_engine, sessions
from mailbeacon.store.hitlog import insert_ignoring_duplicates
from mailbeacon.store.tables import Event, Link, Message, Recipient, User
from tests.helpers import eventually

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


async def seed(engine: Any) -> tuple[Message, list[Recipient], Link]:
    async with sessions(engine)() as db, db.begin():
        user = User(email="u@example.com", password_hash="x")
        db.add(user)
        await db.flush()
        message = Message(
            user_id=user.id,
            message_id_header="<m@example.com>",
            from_address="u@example.com",
            requested_opens=True,
            requested_links=True,
            track_opens=True,
            track_links=True,
            recipients=[
                Recipient(address="a@example.com", field="to"),
                Recipient(address="b@example.com", field="cc"),
            ],
            links=[Link(url="https://example.com/")],
        )
        db.add(message)
        await db.flush()
        return message, list(message.recipients), message.links[0]


def hit(kind: HitKind, message: Message, recipient: Recipient, minutes: int, **kw: Any) -> Hit:
    return Hit(
        hit_id=new_hit_id(),
        received_at=T0 + timedelta(minutes=minutes),
        kind=kind,
        message_id=message.id,
        recipient_id=recipient.id,
        link_id=kw.get("link_id"),
        method=kw.get("method", "GET"),
        prefetch=kw.get("prefetch", False),
        ip="203.0.113.0",
        user_agent="Mail",
    )


async def snapshot(engine: Any) -> Any:
    async with sessions(engine)() as db:
        messages = [
            (m.open_count, m.first_open_at, m.last_open_at, m.click_count, m.first_click_at)
            for m in await db.scalars(select(Message))
        ]
        recipients = [
            (r.address, r.open_count, r.first_open_at, r.last_open_at, r.click_count)
            for r in await db.scalars(select(Recipient).order_by(Recipient.id))
        ]
        links = [(link.click_count, link.last_click_at) for link in await db.scalars(select(Link))]
        events = [
            (e.kind, e.verdict, e.counted, e.recipient_id, e.occurred_at)
            for e in await db.scalars(select(Event).order_by(Event.hit_seq))
        ]
    return messages, recipients, links, events


OWNER_COLUMNS = (
    "open_count",
    "first_open_at",
    "last_open_at",
    "click_count",
    "first_click_at",
    "last_click_at",
)
LINK_COLUMNS = ("click_count", "first_click_at", "last_click_at")


async def read_at_least(engine: Any, count: int) -> int:
    """Process until `count` hits were read; returns how many were.

    Not always at once on PostgreSQL: a hit waits until every older writing
    transaction on the server has ended, other databases' included.
    """
    read = 0

    async def enough() -> bool:
        nonlocal read
        read += await process_all(engine)
        return read >= count

    await eventually(enough, timeout=30)
    return read


async def aggregate_columns(engine: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every aggregate column of every message, recipient and link, by id."""
    async with sessions(engine)() as db:
        return {
            table.__tablename__: [
                tuple(row)
                for row in await db.execute(
                    select(table.id, *(getattr(table, c) for c in columns)).order_by(table.id)
                )
            ]
            for table, columns in (
                (Message, OWNER_COLUMNS),
                (Recipient, OWNER_COLUMNS),
                (Link, LINK_COLUMNS),
            )
        }


async def recounted(engine: Any) -> dict[str, list[tuple[Any, ...]]]:
    """The aggregates as a full recount of the events gives them: the oracle."""
    stored = await aggregate_columns(engine)
    async with sessions(engine)() as db:
        events = list(await db.scalars(select(Event).where(Event.counted)))
    expected: dict[str, list[tuple[Any, ...]]] = {}
    for table, key, kinds in (
        ("messages", "message_id", ("open", "click")),
        ("recipients", "recipient_id", ("open", "click")),
        ("links", "link_id", ("click",)),
    ):
        rows = []
        for row_id, *_ in stored[table]:
            values: list[Any] = [row_id]
            for kind in kinds:
                # A counted click on a copy never seen opened counts as its open too.
                times = [
                    e.occurred_at
                    for e in events
                    if (e.kind == kind or (kind == "open" and e.inferred_open))
                    and getattr(e, key) == row_id
                ]
                values += [len(times), min(times, default=None), max(times, default=None)]
            rows.append(tuple(values))
        expected[table] = rows
    return expected


async def test_aggregates_and_rebuild(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        message, (a, b), link = await seed(engine)
        hits = [
            hit(HitKind.OPEN, message, a, 5),
            hit(HitKind.OPEN, message, a, 1, method="HEAD"),  # not a reader
            hit(HitKind.OPEN, message, b, 9, prefetch=True),  # not a reader
            hit(HitKind.OPEN, message, a, 30),
            hit(HitKind.CLICK, message, b, 12, link_id=link.id),
        ]
        async with engine.begin() as conn:
            await conn.execute(
                insert_ignoring_duplicates(engine),
                [h.to_row() for h in hits[:3]],
            )
        assert await read_at_least(engine, 3) == 3
        async with engine.begin() as conn:
            await conn.execute(
                insert_ignoring_duplicates(engine),
                [h.to_row() for h in hits[3:]],
            )
        assert await read_at_least(engine, 2) == 2
        assert await process_all(engine) == 0  # nothing new: nothing done

        messages, recipients, links, events = first = await snapshot(engine)
        # b's click, with no open before it, counts as b's open too (B3).
        assert messages == [
            (
                3,
                T0 + timedelta(minutes=5),
                T0 + timedelta(minutes=30),
                1,
                T0 + timedelta(minutes=12),
            )
        ]
        assert recipients == [
            ("a@example.com", 2, T0 + timedelta(minutes=5), T0 + timedelta(minutes=30), 0),
            ("b@example.com", 1, T0 + timedelta(minutes=12), T0 + timedelta(minutes=12), 1),
        ]
        assert links == [(1, T0 + timedelta(minutes=12))]
        assert [(kind, verdict, counted) for kind, verdict, counted, *_ in events] == [
            ("open", "human", True),
            ("open", "scanner", False),
            ("open", "scanner", False),
            ("open", "human", True),
            ("click", "human", True),
        ]

        read = await rebuild(engine)
        assert read + await read_at_least(engine, 5 - read) == 5
        assert await snapshot(engine) == first
    finally:
        await engine.dispose()
