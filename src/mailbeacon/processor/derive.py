"""Turning the hit log into events and aggregates.

A round reads the hits after the cursor that no later commit can get behind
(processor/reading.py), judges each one (`core.hits.classify`) and attributes
it to the recipient and link its token named, all without a lock. Then it
claims the cursor (one writer at a time, however many processors run:
processor/cursor.py) and, if no other processor moved it meanwhile, writes
the events, the notifications, the aggregates' increments
(processor/aggregates.py) and the new cursor position in one transaction. A
crash leaves either the whole round or nothing, so the numbers never drift
from the events, and a `rebuild` from scratch gives the same result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mailbeacon.core.hits import COUNTED_VERDICTS, Hit, HitKind, classify
from mailbeacon.processor import aggregates, cursor
from mailbeacon.processor.reading import START, position_after, ready_hits
from mailbeacon.store.db import sessions
from mailbeacon.store.tables import Event, Link, Message, Notification, Recipient, User

log = logging.getLogger(__name__)

# How long a round keeps retrying while SQLite stays locked by other writers
# (each attempt already waits the engine's busy timeout).
BUSY_PATIENCE = 60.0

# Inserted through Core, one executemany per batch: the ORM's bulk insert
# starts a new statement whenever a row's set of NULL columns changes.
EVENTS = cast(Table, Event.__table__)
NOTIFICATIONS = cast(Table, Notification.__table__)


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


async def process_batch(engine: AsyncEngine, limit: int = 1000) -> int:
    """Derive events from up to `limit` new hits; returns how many hits were read.

    0 means nothing was ready, or another processor is writing its round right
    now (it has these hits). On SQLite a round that finds the database locked
    by another writer is retried, never failed.
    """
    deadline = time.monotonic() + BUSY_PATIENCE
    while True:
        try:
            read = await _round(engine, limit)
        except Exception as exc:
            if not cursor.is_busy(exc) or time.monotonic() > deadline:
                raise
            log.info("the database is busy; retrying the processor round")
            continue
        if read is not None:
            return read


@dataclass
class Derived:
    """What one batch of hits adds: rows to insert and aggregate increments."""

    events: list[dict[str, Any]] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    totals: aggregates.BatchTotals = field(default_factory=aggregates.BatchTotals)


async def _round(engine: AsyncEngine, limit: int) -> int | None:
    """One round in two transactions; None when another processor moved the
    cursor between them (the work is dropped and the caller reads again).

    Reading and judging take no lock; only the writing holds the cursor (and
    on SQLite the database's one write lock, which the hit writer waits for),
    so that part is kept to the inserts and updates themselves.
    """
    dialect = engine.dialect.name
    async with sessions(engine)() as db:
        start = await cursor.peek(db)
        rows = (await db.execute(ready_hits(dialect, start, limit))).all()
        if not rows:
            return 0
        derived = await _derive(db, rows)
    async with sessions(engine)() as db, db.begin():
        position = await cursor.claim(db, dialect)
        if position is None:
            return 0
        if position != start:
            return None
        await _write(db, derived)
        await cursor.advance(db, position_after(rows[-1]))
    return len(rows)


async def _derive(db: AsyncSession, rows: Sequence[Any]) -> Derived:
    """Judge and attribute one batch of hits (reads only)."""
    recipients = await _recipients(db, {row.recipient_id for row in rows})
    links = await _links(db, {row.link_id for row in rows if row.link_id})
    listeners = await _listeners(db, {row.message_id for row in rows})
    notified = await _already_notified(db, [row.seq for row in rows])
    derived = Derived()
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
        derived.events.append(
            event
            | {"verdict": verdict.value, "counted": counted, "ip": row.ip}
            | {"user_agent": row.user_agent}
        )
        if counted:
            derived.totals.add(
                HitKind(row.kind), row.received_at, row.message_id, row.recipient_id, link_id
            )
            user_id = listeners.get(row.message_id)
            if user_id is not None and row.seq not in notified:
                derived.notifications.append(event | {"user_id": user_id})
    if len(derived.events) < len(rows):
        log.info("%d hits named no known recipient or link", len(rows) - len(derived.events))
    return derived


async def _write(db: AsyncSession, derived: Derived) -> None:
    if derived.events:
        await db.execute(insert(EVENTS), derived.events)
    if derived.notifications:
        await db.execute(insert(NOTIFICATIONS), derived.notifications)
    await aggregates.apply(db, derived.totals)


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


async def process_all(engine: AsyncEngine, limit: int = 1000) -> int:
    """Process until nothing is ready (or another processor has the cursor);
    returns the number of hits this call read."""
    total = 0
    while count := await process_batch(engine, limit):
        total += count
    return total


async def rebuild(engine: AsyncEngine) -> int:
    """Forget every derived fact and derive them again from the hit log.

    Safe beside running processors: it waits for the cursor, then resets
    events, aggregates and cursor in one transaction; whichever processor
    claims the cursor next starts again from the first hit. Notifications
    stay (they are keyed by hit, and their read marks are the user's).
    Returns the hits this call read; on PostgreSQL, hits whose writers were
    still open are left to the next round of any worker.
    """
    dialect = engine.dialect.name
    deadline = time.monotonic() + BUSY_PATIENCE
    while True:
        try:
            async with sessions(engine)() as db, db.begin():
                await cursor.claim(db, dialect, wait=True)
                await db.execute(delete(Event))
                await aggregates.reset(db)
                await cursor.advance(db, START)
            break
        except Exception as exc:
            if not cursor.is_busy(exc) or time.monotonic() > deadline:
                raise
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
