"""The durable hit writer: group commit, with a local spool when the database is away.

Every hit the collector answers is first made durable here. Concurrent hits
join one batch and share one transaction, so durability costs one commit per
batch rather than one per request. If the database cannot take a batch, the
batch is appended to a spool file and fsynced instead; a background task
replays the spool once the database answers again. Hits carry an id made at
the collector and the insert ignores ids it already has, so a replay never
counts a hit twice (DESIGN rule 3; B10).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import Insert, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from mailbeacon.core.hits import Hit
from mailbeacon.store.sqlite_writer import SqliteHitWriter
from mailbeacon.store.tables import HitRow

log = logging.getLogger(__name__)


def insert_ignoring_duplicates(engine: AsyncEngine) -> Insert:
    """INSERT ... ON CONFLICT (hit_id) DO NOTHING, in the engine's dialect."""
    if engine.dialect.name == "postgresql":
        return postgresql.insert(HitRow).on_conflict_do_nothing(index_elements=["hit_id"])
    return sqlite.insert(HitRow).on_conflict_do_nothing(index_elements=["hit_id"])


class HitLog:
    """Records hits durably; `record` returns once the hit is in the database or spool."""

    def __init__(
        self,
        engine: AsyncEngine,
        spool_path: Path,
        *,
        max_batch: int = 2000,
        replay_interval: float = 1.0,
    ) -> None:
        self._engine = engine
        self._insert = insert_ignoring_duplicates(engine)
        self._sqlite: SqliteHitWriter | None = None
        if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
            self._sqlite = SqliteHitWriter(str(engine.url.database))
        self._spool_path = spool_path
        self._max_batch = max_batch
        self._replay_interval = replay_interval
        self._pending: list[tuple[Hit, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._database_ok = True
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self.spooled_total = 0
        self.replayed_total = 0

    @property
    def database_ok(self) -> bool:
        """False while hits are being spooled rather than committed."""
        return self._database_ok

    async def start(self) -> None:
        """Replay whatever a previous run left in the spool, then start writing."""
        self._spool_path.parent.mkdir(parents=True, exist_ok=True)
        self._tasks = [
            asyncio.create_task(self._flush_forever(), name="hitlog-flush"),
            asyncio.create_task(self._replay_forever(), name="hitlog-replay"),
        ]

    async def stop(self) -> None:
        """Write out every pending hit, then stop the background tasks."""
        self._closing = True
        self._wake.set()
        if not self._tasks:
            return
        flusher, *others = self._tasks
        for task in others:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await flusher
        self._tasks = []
        if self._sqlite is not None:
            await self._sqlite.close()

    async def record(self, hit: Hit) -> None:
        """Return once `hit` is durable; raise only if neither database nor disk took it."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((hit, future))
        self._wake.set()
        await future

    async def _flush_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                await self._flush(batch)
            if self._closing:
                return

    async def _flush(self, batch: Sequence[tuple[Hit, asyncio.Future[None]]]) -> None:
        hits = [hit for hit, _ in batch]
        error: BaseException | None = None
        async with self._write_lock:
            if self._database_ok:
                try:
                    await self._insert_hits(hits)
                except Exception as exc:  # the database is away: spool instead
                    log.warning("database refused %d hits, spooling them: %s", len(hits), exc)
                    self._database_ok = False
            if not self._database_ok:
                try:
                    await asyncio.to_thread(self._append_to_spool, hits)
                    self.spooled_total += len(hits)
                except Exception as exc:
                    log.error("could not spool %d hits either: %s", len(hits), exc)
                    error = exc
        for _, future in batch:
            if future.done():
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

    async def _insert_hits(self, hits: Sequence[Hit]) -> None:
        if self._sqlite is not None:
            await self._sqlite.write(hits)
            return
        async with self._engine.begin() as connection:
            await connection.execute(self._insert, [hit.to_row() for hit in hits])

    def _append_to_spool(self, hits: Sequence[Hit]) -> None:
        data = "".join(json.dumps(hit.to_record()) + "\n" for hit in hits).encode("utf-8")
        fd = os.open(self._spool_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    async def _replay_forever(self) -> None:
        while True:
            try:
                await self.replay_spool()
            except Exception as exc:
                log.info("spool replay must wait, the database is still away: %s", exc)
            await asyncio.sleep(self._replay_interval)

    async def replay_spool(self) -> int:
        """Move spooled hits into the database; returns how many lines were replayed.

        The spool is only truncated after the database committed its content,
        so a crash at any point loses nothing (a repeat is ignored by hit id).
        """
        async with self._write_lock:
            if not self._spool_path.exists() or self._spool_path.stat().st_size == 0:
                self._database_ok = await self._database_answers()
                return 0
            hits, bad_lines = await asyncio.to_thread(self._read_spool)
            for start in range(0, len(hits), self._max_batch):
                await self._insert_hits(hits[start : start + self._max_batch])
            if bad_lines:
                await asyncio.to_thread(self._keep_bad_lines, bad_lines)
            self._spool_path.unlink()
            self._database_ok = True
            self.replayed_total += len(hits)
            log.info("replayed %d spooled hits", len(hits))
            return len(hits)

    async def _database_answers(self) -> bool:
        if self._database_ok:
            return True
        async with self._engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return True

    def _read_spool(self) -> tuple[list[Hit], list[str]]:
        hits: list[Hit] = []
        bad: list[str] = []
        with self._spool_path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if not line.strip():
                    continue
                try:
                    hits.append(Hit.from_record(json.loads(line)))
                except (ValueError, KeyError, TypeError):
                    # A torn last line after a crash: keep it aside for a human.
                    bad.append(line)
        return hits, bad

    def _keep_bad_lines(self, lines: list[str]) -> None:
        rejected = self._spool_path.with_suffix(".rejected")
        with rejected.open("a", encoding="utf-8") as handle:
            handle.writelines(line if line.endswith("\n") else line + "\n" for line in lines)
        log.error("kept %d unreadable spool lines in %s", len(lines), rejected)
