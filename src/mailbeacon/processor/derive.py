"""Turning the hit log into events and aggregates.

The processor reads hits in log order after its cursor, judges each one
(`core.hits.classify`), attributes it to the recipient and link its token
named, and recomputes the aggregates of whatever it touched from the events
themselves. Recomputing rather than incrementing makes every step idempotent:
a crash between steps, or a `rebuild` from scratch, gives the same numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mailbeacon.core.hits import COUNTED_VERDICTS, Hit, HitKind, classify
from mailbeacon.store.db import sessions
from mailbeacon.store.tables import (
    Event,
    HitRow,
    Link,
    Message,
    Notification,
    ProcessorCursor,
    Recipient,
    User,
)

log = logging.getLogger(__name__)
CURSOR = "events"


def _hit_of(row: Any) -> Hit:
    return Hit(
        hit_id=row.hit_id,
        received_at=row.received_at,
        kind=HitKind(row.kind),
        message_id=row.message_id,
        recipient_id=row.recipient_id,
        link_id=row.link_id,
        method=row.method,
        prefetch=row.prefetch,
        ip=row.ip,
        user_agent=row.user_agent,
    )


async def _cursor(db: AsyncSession) -> ProcessorCursor:
    cursor = await db.get(ProcessorCursor, CURSOR, with_for_update=True)
    if cursor is None:
        cursor = ProcessorCursor(name=CURSOR, last_seq=0)
        db.add(cursor)
        await db.flush()
    return cursor


async def process_batch(engine: AsyncEngine, limit: int = 1000) -> int:
    """Derive events from up to `limit` new hits; returns how many hits were read.

    Hits are read as plain rows and events written with one bulk insert: the
    processor shares the database (and on SQLite its write lock) with the
    collector's hit writer, so its transactions must stay short.
    """
    async with sessions(engine)() as db, db.begin():
        cursor = await _cursor(db)
        rows = (
            await db.execute(
                select(*HitRow.__table__.c)
                .where(HitRow.seq > cursor.last_seq)
                .order_by(HitRow.seq)
                .limit(limit)
            )
        ).all()
        if not rows:
            return 0
        recipients = await _recipients(db, {row.recipient_id for row in rows})
        links = await _links(db, {row.link_id for row in rows if row.link_id})
        listeners = await _listeners(db, {row.message_id for row in rows})
        notified = await _already_notified(db, [row.seq for row in rows])
        events: list[dict[str, Any]] = []
        notifications: list[dict[str, Any]] = []
        touched_links: set[int] = set()
        for row in rows:
            link_id = row.link_id if row.kind == HitKind.CLICK else None
            if recipients.get(row.recipient_id) != row.message_id or (
                link_id is not None and links.get(link_id) != row.message_id
            ):
                # Signed by us, but naming nothing we hold (deleted, or another
                # installation's token): the fact stays in the log, no event.
                continue
            verdict = classify(_hit_of(row))
            counted = verdict in COUNTED_VERDICTS
            event = {
                "hit_seq": row.seq,
                "message_id": row.message_id,
                "recipient_id": row.recipient_id,
                "link_id": link_id,
                "kind": row.kind,
                "occurred_at": row.received_at,
            }
            events.append(
                event
                | {"verdict": verdict.value, "counted": counted, "ip": row.ip}
                | {"user_agent": row.user_agent}
            )
            user_id = listeners.get(row.message_id)
            if counted and user_id is not None and row.seq not in notified:
                notifications.append(event | {"user_id": user_id})
            if link_id is not None:
                touched_links.add(link_id)
        if len(events) < len(rows):
            log.info("%d hits named no known recipient or link", len(rows) - len(events))
        cursor.last_seq = rows[-1].seq
        if events:
            await db.execute(insert(Event), events)
        if notifications:
            await db.execute(insert(Notification), notifications)
        await refresh_aggregates(db, {e["recipient_id"] for e in events}, touched_links)
        return len(rows)


async def _recipients(db: AsyncSession, ids: set[int]) -> dict[int, int]:
    """recipient id -> message id."""
    result = await db.execute(
        select(Recipient.id, Recipient.message_id).where(Recipient.id.in_(ids))
    )
    return {recipient_id: message_id for recipient_id, message_id in result}


async def _listeners(db: AsyncSession, message_ids: set[int]) -> dict[int, int]:
    """message id -> its sender's user id, for senders with notifications on (S9)."""
    result = await db.execute(
        select(Message.id, Message.user_id)
        .join(User, User.id == Message.user_id)
        .where(Message.id.in_(message_ids), User.notify_tracking)
    )
    return {message_id: user_id for message_id, user_id in result}


async def _already_notified(db: AsyncSession, seqs: list[int]) -> set[int]:
    """Hits that raised a notification before (a rebuild must not raise them again)."""
    result = await db.scalars(select(Notification.hit_seq).where(Notification.hit_seq.in_(seqs)))
    return set(result)


async def _links(db: AsyncSession, ids: set[int | None]) -> dict[int, int]:
    result = await db.execute(select(Link.id, Link.message_id).where(Link.id.in_(ids)))
    return {link_id: message_id for link_id, message_id in result}


async def refresh_aggregates(
    db: AsyncSession, recipient_ids: Iterable[int], link_ids: Iterable[int]
) -> None:
    """Recompute counts and first/last times from events, for the rows given."""
    recipient_ids = set(recipient_ids)
    if recipient_ids:
        message_ids = set(
            await db.scalars(select(Recipient.message_id).where(Recipient.id.in_(recipient_ids)))
        )
        await _refresh_counts(db, Recipient, Event.recipient_id, recipient_ids)
        await _refresh_counts(db, Message, Event.message_id, message_ids)
    link_ids = set(link_ids)
    if link_ids:
        clicks = _counted(HitKind.CLICK)
        rows = await db.execute(
            select(Event.link_id, *clicks)
            .where(Event.link_id.in_(link_ids))
            .group_by(Event.link_id)
        )
        for link_id, count, first, last in rows:
            await db.execute(
                update(Link)
                .where(Link.id == link_id)
                .values(click_count=count, first_click_at=first, last_click_at=last)
            )


def _counted(kind: HitKind) -> tuple[Any, Any, Any]:
    """count, first and last of the counted events of one kind."""
    wanted = (Event.kind == kind.value) & Event.counted
    return (
        func.count(Event.id).filter(wanted),
        func.min(Event.occurred_at).filter(wanted),
        func.max(Event.occurred_at).filter(wanted),
    )


async def _refresh_counts(
    db: AsyncSession, owner: type[Recipient] | type[Message], column: Any, ids: set[int]
) -> None:
    rows = await db.execute(
        select(column, *_counted(HitKind.OPEN), *_counted(HitKind.CLICK))
        .where(column.in_(ids))
        .group_by(column)
    )
    for key, opens, first_open, last_open, clicks, first_click, last_click in rows:
        await db.execute(
            update(owner)
            .where(owner.id == key)
            .values(
                open_count=opens,
                first_open_at=first_open,
                last_open_at=last_open,
                click_count=clicks,
                first_click_at=first_click,
                last_click_at=last_click,
            )
        )


async def process_all(engine: AsyncEngine, limit: int = 1000) -> int:
    """Process until the log is drained; returns the number of hits read."""
    total = 0
    while count := await process_batch(engine, limit):
        total += count
    return total


async def rebuild(engine: AsyncEngine) -> int:
    """Forget every derived fact and derive them again from the hit log."""
    zeroes = {
        "open_count": 0,
        "first_open_at": None,
        "last_open_at": None,
        "click_count": 0,
        "first_click_at": None,
        "last_click_at": None,
    }
    async with sessions(engine)() as db, db.begin():
        await db.execute(delete(Event))
        await db.execute(update(Recipient).values(**zeroes))
        await db.execute(update(Message).values(**zeroes))
        await db.execute(
            update(Link).values(click_count=0, first_click_at=None, last_click_at=None)
        )
        await db.execute(delete(ProcessorCursor).where(ProcessorCursor.name == CURSOR))
    return await process_all(engine)


async def run_forever(engine: AsyncEngine, interval: float, stop: asyncio.Event) -> None:
    """Poll the log until `stop` is set; a failing round is logged and retried."""
    while not stop.is_set():
        try:
            await process_all(engine)
        except Exception:
            log.exception("processing hits failed; retrying")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
