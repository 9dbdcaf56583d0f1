"""The durable hit writer: group commit, with a local spool when the database is away.

Every hit the collector answers is first made durable here. Concurrent hits
join one batch and share one transaction, so durability costs one commit per
batch rather than one per request. If the database cannot take a batch within
`database_timeout`, the batch is appended to this process's spool segment and
fsynced instead (store/spool.py); a background task replays spooled hits in
bounded chunks once the database answers again, while live hits go straight
to the database. Hits carry an id made at the collector and the insert
ignores ids it already has, so a replay, even one repeated after a crash,
never counts a hit twice (DESIGN rule 3; B10).

A reader is never kept waiting longer than `confirm_timeout` (DESIGN rule 1
wins over rule 3): a hit still unconfirmed by then is answered anyway, logged
and counted in `unconfirmed_total`, and stays queued to be written.

A database that answers, but slowly, is hedged rather than waited for: when a
batch's commit has not finished within `hedge_after` (another writer holds
SQLite's one write lock while it stores a 5 MB message, a slow fsync), the
batch is also appended to the spool and its readers are answered from there,
and later batches go to the spool until that commit is over. Whichever copy
lands first makes the hit durable; the replay of the other is ignored by hit
id. A pixel then waits about `hedge_after` plus one fsync, not the length of
someone else's transaction.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Insert, exc, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from mailbeacon.core.hits import Hit
from mailbeacon.store.spool import Gap, Record, Segment, Spool, take
from mailbeacon.store.sqlite_writer import SqliteHitWriter
from mailbeacon.store.tables import HitRow

log = logging.getLogger(__name__)

# Errors that say "this row is bad", not "the database is away": retrying the
# row can never help, so a replay sets it aside instead of stopping on it.
DATA_ERRORS: tuple[type[BaseException], ...] = (
    sqlite3.IntegrityError,
    sqlite3.DataError,
    OverflowError,
    ValueError,
    TypeError,
    exc.DataError,
    exc.IntegrityError,
)
REJECTED_FILE = "rejected.jsonl"
FLUSHER_RESTART_DELAY = 0.1  # seconds


def insert_ignoring_duplicates(engine: AsyncEngine) -> Insert:
    """INSERT ... ON CONFLICT (hit_id) DO NOTHING, in the engine's dialect."""
    if engine.dialect.name == "postgresql":
        return postgresql.insert(HitRow).on_conflict_do_nothing(index_elements=["hit_id"])
    return sqlite.insert(HitRow).on_conflict_do_nothing(index_elements=["hit_id"])


def is_data_error(error: BaseException) -> bool:
    """True when the database refused the rows themselves rather than being unavailable.

    Drivers wrap their errors (SQLAlchemy around asyncpg around a value
    error), so the whole chain of causes is looked at; PostgreSQL's own
    classes 22 (data exception) and 23 (integrity) count too.
    """
    seen: BaseException | None = error
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, DATA_ERRORS):
            return True
        sqlstate = getattr(seen, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate[:2] in ("22", "23"):
            return True
        seen = seen.__cause__
    return False


def encode_hit(hit: Hit) -> bytes:
    """A hit as a spool record payload (JSON, ASCII only)."""
    return json.dumps(hit.to_record(), separators=(",", ":")).encode("ascii")


class HitLog:
    """Records hits durably; `record` returns once the hit is in the database or spool."""

    def __init__(
        self,
        engine: AsyncEngine,
        spool_dir: Path,
        *,
        legacy_spool: Path | None = None,
        max_batch: int = 2000,
        replay_chunk: int = 2000,
        replay_interval: float = 1.0,
        confirm_timeout: float = 2.0,
        hedge_after: float = 0.05,
    ) -> None:
        self._engine = engine
        self._insert = insert_ignoring_duplicates(engine)
        # A batch the database has not taken by then goes to the spool, early
        # enough that spooling (an fsync) still fits in the time a reader may wait.
        self._database_timeout = confirm_timeout * 0.75
        self._sqlite: SqliteHitWriter | None = None
        if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
            self._sqlite = SqliteHitWriter(
                str(engine.url.database), busy_timeout_ms=int(self._database_timeout * 800)
            )
        self.spool = Spool(spool_dir, legacy=legacy_spool)
        self._max_batch = max_batch
        self._replay_chunk = replay_chunk
        self._replay_interval = replay_interval
        self._confirm_timeout = confirm_timeout
        self._hedge_after = hedge_after
        self._slow_insert: asyncio.Task[None] | None = None  # a commit we stopped waiting for
        self._pending: list[tuple[Hit, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._spool_lock = asyncio.Lock()  # the active segment: appends and retiring
        self._replay_lock = asyncio.Lock()
        self._database_ok = True
        self._flusher: asyncio.Task[None] | None = None
        self._replayer: asyncio.Task[None] | None = None
        self._closing = False
        # Metrics: read by tests, health checks and whoever debugs an outage.
        self.spooled_total = 0  # hits made durable in the spool
        self.replayed_total = 0  # spooled hits committed to the database
        self.rejected_total = 0  # spooled records the database refused as bad data
        self.unconfirmed_total = 0  # answered before durability was confirmed
        self.undurable_total = 0  # neither the database nor the spool took them
        self.flusher_restarts = 0
        self.hedged_total = 0  # spooled because the database was slow, not away
        self._last_unconfirmed_log = float("-inf")

    @property
    def database_ok(self) -> bool:
        """False while hits are being spooled rather than committed."""
        return self._database_ok

    async def start(self) -> None:
        """Start writing; spool files left by processes that are gone get replayed."""
        await asyncio.to_thread(self.spool.open)
        self._start_flusher()
        self._replayer = asyncio.create_task(self._replay_forever(), name="hitlog-replay")

    async def stop(self) -> None:
        """Write out every pending hit, then stop the background tasks."""
        self._closing = True
        self._wake.set()
        if self._replayer is not None:
            self._replayer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replayer
            self._replayer = None
        if self._flusher is not None:
            try:
                await self._flusher
            except (Exception, asyncio.CancelledError) as died:
                log.error("the hit flusher died while stopping: %r", died)
            self._flusher = None
        if self._slow_insert is not None:  # a hedged commit still under way
            with contextlib.suppress(Exception):
                await self._slow_insert
        if self._pending:  # the flusher died on the way out: write them here
            await self._flush_pending()
        await asyncio.to_thread(self.spool.close)
        if self._sqlite is not None:
            await self._sqlite.close()

    async def record(self, hit: Hit) -> None:
        """Return once `hit` is durable, or after `confirm_timeout` at the latest.

        Raises only if neither the database nor the spool took it.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((hit, future))
        self._wake.set()
        # One timer per hit, cheaper on the hot path than wait_for + shield.
        timer = loop.call_later(self._confirm_timeout, self._give_up_waiting, hit, future)
        try:
            await future
        finally:
            timer.cancel()

    def _give_up_waiting(self, hit: Hit, future: asyncio.Future[None]) -> None:
        """Rule 1 wins: answer the reader; the hit stays queued and is written later."""
        if future.done():
            return
        future.set_result(None)
        self.unconfirmed_total += 1
        now = asyncio.get_running_loop().time()
        if now - self._last_unconfirmed_log >= 1.0:  # one line a second, not one a hit
            self._last_unconfirmed_log = now
            log.warning(
                "hit %s answered before it was durable (waited %.1fs, %d so far); it stays queued",
                hit.hit_id,
                self._confirm_timeout,
                self.unconfirmed_total,
            )

    def _start_flusher(self) -> None:
        self._flusher = asyncio.create_task(self._flush_forever(), name="hitlog-flush")
        self._flusher.add_done_callback(self._flusher_ended)

    def _flusher_ended(self, task: asyncio.Task[None]) -> None:
        if self._closing:
            return
        error = None if task.cancelled() else task.exception()
        log.error("the hit flusher stopped (%r); starting a new one", error or "cancelled")
        self.flusher_restarts += 1
        # A moment's pause, so a flusher that keeps failing cannot spin the loop.
        asyncio.get_running_loop().call_later(FLUSHER_RESTART_DELAY, self._restart_flusher)

    def _restart_flusher(self) -> None:
        if not self._closing:
            self._start_flusher()
            self._wake.set()

    async def _flush_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._flush_pending()
            if self._closing:
                return

    async def _flush_pending(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                await self._flush(batch)
            except BaseException:
                # Cancelled or broken mid-batch: the whole batch goes back to the
                # front of the queue, answered or not (a reader may have been
                # answered by the timer; writing a hit twice is harmless, by its id).
                self._pending[:0] = batch
                raise

    async def _flush(self, batch: Sequence[tuple[Hit, asyncio.Future[None]]]) -> None:
        hits = [hit for hit, _ in batch]
        error: BaseException | None = None
        stored = False
        if self._database_ok and self._slow_insert is None:
            insert = asyncio.ensure_future(
                asyncio.wait_for(self._insert_hits(hits), self._database_timeout)
            )
            await asyncio.wait({insert}, timeout=self._hedge_after)
            if not insert.done():
                await self._hedge(batch, insert)
                return
            try:
                insert.result()
                stored = True
            except Exception as refused:
                self._database_refused(len(hits), refused)
        if not stored:
            try:
                await self._spool_hits(hits, hedged=self._slow_insert is not None)
            except Exception as failed:
                self.undurable_total += len(hits)
                log.error("could not spool %d hits either: %s", len(hits), failed)
                error = failed
        for _, future in batch:
            if future.done():
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

    def _database_refused(self, count: int, refused: BaseException) -> None:
        # Bad rows leave the database usable for the next batch; the replay sets
        # them aside. Anything else: spool until it is back.
        self._database_ok = is_data_error(refused)
        log.warning("database refused %d hits, spooling them: %r", count, refused)

    async def _hedge(
        self, batch: Sequence[tuple[Hit, asyncio.Future[None]]], insert: asyncio.Future[None]
    ) -> None:
        """The commit is slow: spool the batch too, answer its readers, let the commit finish.

        Until it does, batches go to the spool (`_slow_insert` is set), so no reader
        queues behind it; the replay moves them into the database afterwards.
        """
        self._slow_insert = asyncio.ensure_future(self._finish_slow_insert(len(batch), insert))
        hits = [hit for hit, _ in batch]
        error: BaseException | None = None
        try:
            await self._spool_hits(hits, hedged=True)
        except Exception as failed:
            # Not durable on disk: the readers wait for the commit (or their timer).
            log.error("could not spool %d hits while the database was slow: %s", len(hits), failed)
            try:
                await insert
            except Exception as refused:
                self.undurable_total += len(hits)
                error = refused
        for _, future in batch:
            if not future.done():
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)

    async def _finish_slow_insert(self, count: int, insert: asyncio.Future[None]) -> None:
        try:
            await insert
        except Exception as refused:
            self._database_refused(count, refused)
        finally:
            self._slow_insert = None
            self._wake.set()

    async def _spool_hits(self, hits: Sequence[Hit], *, hedged: bool = False) -> None:
        """Append and fsync `hits`; `hedged`: the database is slow, not away."""
        payloads = [encode_hit(hit) for hit in hits]
        async with self._spool_lock:
            await asyncio.to_thread(self.spool.append, payloads)
        if hedged:
            self.hedged_total += len(hits)
        else:
            self.spooled_total += len(hits)

    async def _insert_hits(self, hits: Sequence[Hit]) -> None:
        if self._sqlite is not None:
            await self._sqlite.write(hits)
            return
        async with self._engine.begin() as connection:
            await connection.execute(self._insert, [hit.to_row() for hit in hits])

    async def _replay_forever(self) -> None:
        while True:
            try:
                await self.replay_spool()
            except Exception as away:
                log.info("spool replay must wait, the database is still away: %r", away)
            await asyncio.sleep(self._replay_interval)

    async def replay_spool(self) -> int:
        """Move spooled hits into the database; returns how many records were replayed.

        Chunk by chunk, so memory stays bounded and live hits keep flowing in
        between. A segment is deleted only after all of it is committed, so a
        crash at any point loses nothing (a repeat is ignored by hit id).
        """
        async with self._replay_lock:
            segments = await asyncio.to_thread(self.spool.waiting)
            if not segments and not self.spool.active_bytes:
                if not self._database_ok:
                    await self._probe_database()
                    self._database_ok = True
                return 0
            await self._probe_database()
            self._database_ok = True  # live hits go to the database from now on
            try:
                return await self._replay_all(segments)
            except Exception:
                # It answered the probe but refused the writes (a read-only file):
                # still away for live hits, so they keep going to the spool.
                self._database_ok = False
                raise

    async def _replay_all(self, segments: list[Segment]) -> int:
        """Replay waiting segments, then the active one's content (replay lock held)."""
        replayed = 0
        for segment in segments:
            replayed += await self._replay_segment(segment)
            await asyncio.to_thread(self.spool.forget, segment)
        active = self.spool.active
        if active is not None and active.size:
            # What it holds now, while it may still grow; then, retired, the rest.
            # Retiring only after a write worked keeps an outage that passes the
            # probe from starting a new segment every round.
            done = active.size
            replayed += await self._replay_segment(active, end=done)
            async with self._spool_lock:
                await asyncio.to_thread(self.spool.retire_active)
            replayed += await self._replay_segment(active, start=done)
            await asyncio.to_thread(self.spool.forget, active)
        if replayed:
            log.info("replayed %d spooled hits", replayed)
        return replayed

    async def _probe_database(self) -> None:
        async def select_one() -> None:
            async with self._engine.connect() as connection:
                await connection.execute(text("SELECT 1"))

        await asyncio.wait_for(select_one(), max(self._database_timeout, 5.0))

    async def _replay_segment(
        self, segment: Segment, start: int = 0, end: int | None = None
    ) -> int:
        records = segment.records(start, end)
        replayed = 0
        try:
            while True:
                hits, seen = await asyncio.to_thread(self._read_chunk, segment, records)
                if not seen:
                    break
                if hits:
                    await self._insert_replayed(segment, hits)
                replayed += len(hits)
                self.replayed_total += len(hits)
        finally:
            records.close()
        return replayed

    def _read_chunk(
        self, segment: Segment, records: Iterator[Record | Gap]
    ) -> tuple[list[Hit], int]:
        """The next chunk's hits, and how many items it read (0 at the end). Blocking."""
        chunk = take(records, self._replay_chunk)
        hits: list[Hit] = []
        for item in chunk:
            if isinstance(item, Gap):
                reason = "torn tail, never reported durable" if item.at_end else "damaged bytes"
                self._set_aside(segment, item.offset, reason, raw=item.head, length=item.length)
                continue
            try:
                hits.append(Hit.from_record(json.loads(item.payload)))
            except (ValueError, KeyError, TypeError) as bad:
                self._set_aside(segment, item.offset, f"unreadable record: {bad}", raw=item.payload)
        return hits, len(chunk)

    async def _insert_replayed(self, segment: Segment, hits: list[Hit]) -> None:
        try:
            await self._insert_hits(hits)
            return
        except Exception as refused:
            if not is_data_error(refused):
                raise
        # Some row is bad: find it, one row at a time, and keep the rest.
        for hit in hits:
            try:
                await self._insert_hits([hit])
            except Exception as refused:
                if not is_data_error(refused):
                    raise
                self.rejected_total += 1
                await asyncio.to_thread(
                    self._set_aside,
                    segment,
                    -1,
                    f"refused by the database: {refused!r}",
                    raw=encode_hit(hit),
                )

    def _set_aside(
        self, segment: Segment, offset: int, reason: str, *, raw: bytes, length: int = 0
    ) -> None:
        """Keep what cannot be replayed in rejected.jsonl, for a human to look at. Blocking."""
        entry = {
            "at": datetime.now(UTC).isoformat(),
            "file": segment.path.name,
            "offset": offset,
            "reason": reason,
            "length": length or len(raw),
            "base64": base64.b64encode(raw).decode("ascii"),
        }
        rejected = self.spool.directory / REJECTED_FILE
        fd = os.open(rejected, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
        log.error("set aside %s of %s at %d in %s", reason, segment.path.name, offset, rejected)
