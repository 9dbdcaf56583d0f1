"""A dedicated thread that appends hits to SQLite with the standard sqlite3 module.

On SQLite the group commit is the collector's bottleneck: each batch through
SQLAlchemy's async layer and aiosqlite costs several hops between threads and
about 4 ms, of which SQLite's own commit is 0.5 ms (measured in
bench/README.md). One thread owning one plain connection takes a batch in a
single hop, so the event loop keeps answering requests while the batch is
written and fsynced.

A batch is all or nothing: whatever refuses it (SQLite, or a value Python
cannot bind), it is rolled back and the write lock let go. Its busy timeout
is kept short (the hit log's database timeout): when another writer holds
the lock longer, the batch fails fast and goes to the spool instead of
keeping readers waiting (DESIGN rules 1 and 3).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from datetime import UTC

from mailbeacon.core.hits import Hit

COLUMNS = tuple(field.name for field in fields(Hit))  # Hit.to_row's keys
# Built from our own field names, never from input.
INSERT = (
    f"INSERT INTO hits ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "  # noqa: S608
    "ON CONFLICT (hit_id) DO NOTHING"
)
# SQLAlchemy's storage format for DateTime on SQLite (UTC, naive), so rows
# written here read back exactly like rows written through the ORM.
SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"


def _row(hit: Hit) -> tuple[object, ...]:
    row = hit.to_row()
    row["received_at"] = hit.received_at.astimezone(UTC).strftime(SQLITE_DATETIME)
    row["prefetch"] = int(hit.prefetch)
    return tuple(row[column] for column in COLUMNS)


class SqliteHitWriter:
    """Writes batches of hits on its own thread and connection."""

    def __init__(self, path: str, *, busy_timeout_ms: int = 5000) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hit-writer")
        self._connection: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
        return connection

    def _write(self, rows: list[tuple[object, ...]]) -> None:
        if self._connection is None:
            self._connection = self._connect()
        connection = self._connection
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(INSERT, rows)
            connection.execute("COMMIT")
        except BaseException:
            # Whatever failed (SQLite, or a value Python cannot bind), the batch
            # is all or nothing: roll back, so no row of it stays and the write
            # lock is not held on. A connection that failed mid-write may hold
            # a broken view of the file (an I/O error in the WAL): never reuse it.
            self._connection = None
            with contextlib.suppress(sqlite3.Error):
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
            with contextlib.suppress(sqlite3.Error):
                connection.close()
            raise

    async def write(self, hits: Sequence[Hit]) -> None:
        """Commit `hits` in one transaction; raises sqlite3.Error when SQLite refuses."""
        rows = [_row(hit) for hit in hits]
        await asyncio.get_running_loop().run_in_executor(self._executor, self._write, rows)

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)
