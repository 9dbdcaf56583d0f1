"""Turning the hit log into events and aggregates.

A round reads the hits after the cursor that no later commit can get behind
(processor/reading.py) and have settled (no hit of a burst is judged before
the hits right after it could arrive), judges each one (`core.signals.judge`,
with what processor/context.py loads about its copy) and attributes it to the
recipient and link its token named, all without a lock. Then it
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
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mailbeacon.core.hits import HitKind
from mailbeacon.core.signals import DEFAULT_RULES, Rules, judge, record
from mailbeacon.processor import aggregates, cursor, notifying
from mailbeacon.processor.context import load_copies, sighting_of
from mailbeacon.processor.notifying import Bells
from mailbeacon.processor.reading import START, position_after, ready_hits
from mailbeacon.store.db import sessions
from mailbeacon.store.tables import Event, Link, NotifiedHit

log = logging.getLogger(__name__)

# How long a round keeps retrying while SQLite stays locked by other writers
# (each attempt already waits the engine's busy timeout).
BUSY_PATIENCE = 60.0

# Inserted through Core, one executemany per batch: the ORM's bulk insert
# starts a new statement whenever a row's set of NULL columns changes.
EVENTS = cast(Table, Event.__table__)

# A hit stamped this far in the future (another collector's clock) is not
# waited for: it is judged now rather than holding up every hit behind it.
CLOCK_SKEW = timedelta(seconds=60)


# Direct callers (tests, a rebuild by hand) judge at once, looking at no hit
# after the one judged; the worker lets hits settle (`judging_rules`).
AT_ONCE = replace(DEFAULT_RULES, lookahead=timedelta(0))


def judging_rules(settle_seconds: float, scanner_click_seconds: float) -> Rules:
    """The settings' thresholds (MAILBEACON_SIGNAL_SETTLE_SECONDS, ..._SCANNER_CLICK_SECONDS).

    Settling lets the rules see the hits that follow within seconds (a
    scanner clicking every link, a client that then follows the honeypot),
    at the price of that much delay before an event and its notification.
    """
    return replace(
        DEFAULT_RULES,
        lookahead=timedelta(seconds=settle_seconds),
        delivery_click_window=timedelta(seconds=scanner_click_seconds),
    )


async def process_batch(engine: AsyncEngine, limit: int = 1000, rules: Rules = AT_ONCE) -> int:
    """Derive events from up to `limit` new hits; returns how many hits were read.

    0 means nothing was ready, or another processor is writing its round right
    now (it has these hits). On SQLite a round that finds the database locked
    by another writer is retried, never failed.
    """
    deadline = time.monotonic() + BUSY_PATIENCE
    while True:
        try:
            read = await _round(engine, limit, rules)
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
    bells: Bells = field(default_factory=Bells)
    totals: aggregates.BatchTotals = field(default_factory=aggregates.BatchTotals)


async def _round(engine: AsyncEngine, limit: int, rules: Rules) -> int | None:
    """One round in two transactions; None when another processor moved the
    cursor between them (the work is dropped and the caller reads again).

    Reading and judging take no lock; only the writing holds the cursor (and
    on SQLite the database's one write lock, which the hit writer waits for),
    so that part is kept to the inserts and updates themselves.
    """
    dialect = engine.dialect.name
    async with sessions(engine)() as db:
        start = await cursor.peek(db)
        rows = _settled((await db.execute(ready_hits(dialect, start, limit))).all(), rules)
        if not rows:
            return 0
        derived = await _derive(db, rows, rules)
    async with sessions(engine)() as db, db.begin():
        position = await cursor.claim(db, dialect)
        if position is None:
            return 0
        if position != start:
            return None
        await _write(db, derived)
        await cursor.advance(db, position_after(rows[-1]))
    return len(rows)


def _settled(rows: Sequence[Any], rules: Rules) -> Sequence[Any]:
    """The rows up to the first one still settling (cursor order is kept)."""
    if not rules.lookahead:
        return rows
    now = datetime.now(UTC)
    cutoff, skewed = now - rules.lookahead, now + CLOCK_SKEW
    for index, row in enumerate(rows):
        if cutoff < row.received_at <= skewed:
            return rows[:index]
    return rows


async def _derive(db: AsyncSession, rows: Sequence[Any], rules: Rules) -> Derived:
    """Judge and attribute one batch of hits (reads only)."""
    copies = await load_copies(db, rows, rules)
    links = await _links(db, {row.link_id for row in rows if row.link_id})
    notified = await _already_notified(db, [row.seq for row in rows])
    bells = Bells(await notifying.recent_click_groups(db, copies))
    derived = Derived()
    for row in rows:
        copy = copies.get(row.recipient_id)
        link_id = row.link_id if row.kind == HitKind.CLICK else None
        if (
            copy is None
            or copy.message_id != row.message_id
            or (link_id is not None and links.get(link_id) != row.message_id)
        ):
            # Signed by us, but naming nothing we hold (deleted, or another
            # installation's token): the fact stays in the log, no event.
            continue
        hit = sighting_of(row)
        judgement = judge(hit, copy.facts, copy.history, rules)
        record(hit, judgement, copy.history)
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
            | {
                "verdict": judgement.signal.value,
                "reason": judgement.reason.value,
                "counted": judgement.counted,
                "duplicate": judgement.duplicate,
                "forwarded": judgement.forwarded,
                "inferred_open": judgement.inferred_open,
                "ip": row.ip,
                "network": row.network or "",
                "user_agent": row.user_agent,
            }
        )
        derived.totals.judged(row.recipient_id, hit, judgement)
        if judgement.counted:
            kind = HitKind(row.kind)
            derived.totals.add(kind, row.received_at, row.message_id, row.recipient_id, link_id)
            if judgement.inferred_open:
                derived.totals.add(
                    HitKind.OPEN, row.received_at, row.message_id, row.recipient_id, None
                )
            if copy.notify and row.seq not in notified:
                bells.ring(copy, row, link_id, judgement)
            if kind is HitKind.OPEN or judgement.inferred_open:
                # The newest, as the stored aggregate keeps it: a hit replayed late
                # must not make the copy look quieter than it is.
                last = copy.last_counted_open
                copy.last_counted_open = (
                    row.received_at if last is None else max(last, row.received_at)
                )
    derived.bells = bells
    if len(derived.events) < len(rows):
        log.info("%d hits named no known recipient or link", len(rows) - len(derived.events))
    return derived


async def _write(db: AsyncSession, derived: Derived) -> None:
    if derived.events:
        await db.execute(insert(EVENTS), derived.events)
    await notifying.write(db, derived.bells)
    await aggregates.apply(db, derived.totals)


async def _already_notified(db: AsyncSession, seqs: list[int]) -> set[int]:
    """Hits a notification stands for already (a rebuild must not raise them again)."""
    result = await db.scalars(select(NotifiedHit.hit_seq).where(NotifiedHit.hit_seq.in_(seqs)))
    return set(result)


async def _links(db: AsyncSession, ids: set[int | None]) -> dict[int, int]:
    result = await db.execute(select(Link.id, Link.message_id).where(Link.id.in_(ids)))
    return {link_id: message_id for link_id, message_id in result}


async def process_all(engine: AsyncEngine, limit: int = 1000, rules: Rules = AT_ONCE) -> int:
    """Process until nothing is ready (or another processor has the cursor);
    returns the number of hits this call read."""
    total = 0
    while count := await process_batch(engine, limit, rules):
        total += count
    return total


async def rebuild(engine: AsyncEngine, rules: Rules = AT_ONCE) -> int:
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
    return await process_all(engine, rules=rules)


async def run_forever(
    engine: AsyncEngine, interval: float, stop: asyncio.Event, rules: Rules = AT_ONCE
) -> None:
    """Poll the log until `stop` is set; a failing round is logged and retried."""
    while not stop.is_set():
        try:
            await process_all(engine, rules=rules)
        except Exception:
            log.exception("processing hits failed; retrying")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
