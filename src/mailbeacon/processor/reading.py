"""Which hits the processor may read next, and in what order, on each backend.

The processor keeps a cursor and reads the hits after it. That is only
correct if no hit can later *appear* behind the cursor, i.e. if hits become
visible in the order the cursor walks.

- **SQLite** allows one writing transaction at a time, and `seq` is allocated
  inside it, so a hit with a lower `seq` has always committed before one with
  a higher `seq`: seq order is commit order and the cursor is `last_seq`.

- **PostgreSQL** allocates `seq` at insert, but with several hit writers
  (collector processes, a spool replay) the transactions commit in any order:
  seq 7 may commit after seq 8 was read, and a `seq > last_seq` cursor would
  skip it forever. So each hit records its writer's transaction id
  (`hits.xid`, DEFAULT `pg_current_xact_id()`), and a round reads only hits
  whose xid is below `pg_snapshot_xmin(pg_current_snapshot())`, the oldest
  transaction still running: every transaction below it has finished
  (committed or rolled back), and no new transaction can ever get an id below
  it. Those hits are read in (xid, seq) order with the cursor on
  (last_xid, last_seq): everything behind the cursor is final. The snapshot
  bound and the rows come from the same statement, so they agree.

  The price is latency, not correctness: a hit waits until every transaction
  older than its own has ended. A long-open transaction anywhere on the
  server (the bound is cluster-wide) delays processing until it ends; set
  `idle_in_transaction_session_timeout` on servers shared with other work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Select, func, literal, select, tuple_

from mailbeacon.store.tables import XID8, HitRow


@dataclass(frozen=True, slots=True)
class Position:
    """Where the cursor stands: after the hit (xid, seq); xid is None on SQLite
    and for a fresh cursor."""

    xid: int | None = None
    seq: int = 0


START = Position()


def _ready(dialect: str, position: Position) -> tuple[ColumnElement[bool], tuple[Any, ...]]:
    """The condition "ready and after `position`" and the order to read in."""
    if dialect == "postgresql":
        oldest_running = func.pg_snapshot_xmin(func.pg_current_snapshot(), type_=XID8())
        ready = HitRow.xid < oldest_running
        if position.xid is not None:
            ready &= tuple_(HitRow.xid, HitRow.seq) > tuple_(
                literal(position.xid, XID8()), literal(position.seq, BigInteger())
            )
        return ready, (HitRow.xid, HitRow.seq)
    return HitRow.seq > position.seq, (HitRow.seq,)


def ready_hits(dialect: str, position: Position, limit: int) -> Select[Any]:
    """Up to `limit` hits after `position`, each final, in cursor order."""
    ready, order = _ready(dialect, position)
    return select(*HitRow.__table__.c).where(ready).order_by(*order).limit(limit)


def position_after(row: Any) -> Position:
    """The cursor position once `row` (a hits row) has been processed."""
    return Position(xid=row.xid, seq=row.seq)
