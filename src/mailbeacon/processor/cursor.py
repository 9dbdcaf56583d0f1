"""The processor's cursor row, and the lock that makes one writer at a time.

Several processors may run (a `worker` per machine, a `rebuild` by hand). A
round reads and judges its hits without any lock, then writes the events,
aggregates and the moved cursor in one transaction that first takes the
cursor row, and writes only if the cursor is still where its reading began
(`claim` returns the position; the caller compares). Two rounds can thus
never both write the same hits:

- **PostgreSQL**: `SELECT ... FOR UPDATE SKIP LOCKED`. If another processor
  holds the row, this round gives up (that one is writing these hits; no
  processor ever waits on another's round). A rebuild waits instead
  (`FOR UPDATE`): it must not reset the cursor under a round being written.
- **SQLite**: `BEGIN IMMEDIATE` takes the database's write lock before the
  cursor is read, so the check and the writes are one serial unit; a
  deferred transaction would read, then fail to upgrade to a writer when the
  hit writer committed in between (SQLITE_BUSY at once, without waiting). A
  busy database is waited for (the engine's busy timeout) and then retried by
  the caller (`is_busy`), so the hit writer holding the lock for a moment
  never fails a round; the lock is held only for the round's writes.

The row is created on first use by an insert that ignores an existing row,
so two processors starting together cannot collide.
"""

from __future__ import annotations

from sqlalchemy import Insert, Select, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from mailbeacon.processor.reading import START, Position
from mailbeacon.store.tables import ProcessorCursor

NAME = "events"


def _create_if_missing(dialect: str) -> Insert:
    values = {"name": NAME, "last_seq": 0, "last_xid": None}
    if dialect == "postgresql":
        return postgresql.insert(ProcessorCursor).values(values).on_conflict_do_nothing()
    return sqlite.insert(ProcessorCursor).values(values).on_conflict_do_nothing()


def _position_query(*, lock: bool, skip_locked: bool = False) -> Select[int | None, int]:
    query = select(ProcessorCursor.last_xid, ProcessorCursor.last_seq).where(
        ProcessorCursor.name == NAME
    )
    if lock:
        query = query.with_for_update(skip_locked=skip_locked)
    return query


async def peek(db: AsyncSession) -> Position:
    """The cursor as committed, without any lock: where a round's reading starts."""
    row = (await db.execute(_position_query(lock=False))).first()
    return START if row is None else Position(xid=row.last_xid, seq=row.last_seq)


async def claim(db: AsyncSession, dialect: str, *, wait: bool = False) -> Position | None:
    """Take the cursor for this transaction; None if another processor holds it.

    Must be the transaction's first statement. With `wait`, wait for the
    holder instead of giving up (a rebuild).
    """
    if dialect == "sqlite":
        await db.execute(text("BEGIN IMMEDIATE"))
    await db.execute(_create_if_missing(dialect))
    query = _position_query(lock=dialect == "postgresql", skip_locked=not wait)
    row = (await db.execute(query)).first()
    if row is None:
        return None
    return Position(xid=row.last_xid, seq=row.last_seq)


async def advance(db: AsyncSession, position: Position) -> None:
    """Move the claimed cursor to `position` (committed with the round's events)."""
    await db.execute(
        update(ProcessorCursor)
        .where(ProcessorCursor.name == NAME)
        .values(last_xid=position.xid, last_seq=position.seq)
    )


def is_busy(exc: BaseException) -> bool:
    """SQLite's "database is locked": another writer held it past the busy timeout."""
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig).lower()
