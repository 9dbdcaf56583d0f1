"""The hit spool and the durable hit writer, one test per way they used to lose or stall
hits (DESIGN rules 1 and 3)."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
import tracemalloc
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from mailbeacon.core.hits import Hit, HitKind, new_hit_id
from mailbeacon.store.db import make_engine, sessions
from mailbeacon.store.hitlog import HitLog, encode_hit
from mailbeacon.store.spool import Gap, NotDurable, Record, Segment, frame, scan
from mailbeacon.store.sqlite_writer import SqliteHitWriter
from mailbeacon.store.tables import HitRow
from tests.helpers import eventually
from tests.test_outage import count_hits

UNREACHABLE_DB = "postgresql+asyncpg://postgres@127.0.0.1:1/nothing"
SRC = str(Path(__file__).resolve().parents[1] / "src")


def a_hit(n: int, message_id: int = 1) -> Hit:
    return Hit(
        new_hit_id(), datetime.now(UTC), HitKind.OPEN, message_id, n, None, "GET", False, "", ""
    )


async def stored_ids(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        async with sessions(engine)() as db:
            return set((await db.scalars(select(HitRow.hit_id))).all())
    finally:
        await engine.dispose()


def records_in(path: Path) -> list[bytes]:
    with path.open("rb") as file:
        return [item.payload for item in scan(file) if isinstance(item, Record)]


def orphan_segment(directory: Path, hits: list[Hit], per_append: int = 1000) -> Path:
    """A spool file left by a process that is gone."""
    directory.mkdir(parents=True, exist_ok=True)
    segment = Segment.create(directory)
    for start in range(0, len(hits), per_append):
        segment.append([encode_hit(hit) for hit in hits[start : start + per_append]])
    segment.close()
    return segment.path


@pytest.fixture
async def hit_log(database_url: str, tmp_path: Path) -> AsyncIterator[HitLog]:
    engine = make_engine(database_url)
    log = HitLog(engine, tmp_path / "spool", replay_interval=3600)
    await log.start()
    yield log
    await log.stop()
    await engine.dispose()


# Defect 1: a torn tail swallowed the next batch ------------------------------------


def test_spool_torn_tail_at_every_byte_never_swallows_a_later_record(tmp_path: Path) -> None:
    first, torn, later = (encode_hit(a_hit(n)) for n in range(3))
    whole = frame(torn)
    for cut in range(len(whole)):
        path = tmp_path / f"cut{cut}.spool"
        path.write_bytes(frame(first) + whole[:cut] + frame(later))
        assert records_in(path) == [first, later], f"cut at byte {cut}"
        with path.open("rb") as file:
            gaps = [item for item in scan(file) if isinstance(item, Gap)]
        assert [(gap.length, gap.at_end) for gap in gaps] == ([(cut, False)] if cut else [])


def test_spool_torn_tail_alone_is_reported_as_never_durable(tmp_path: Path) -> None:
    record = frame(encode_hit(a_hit(1)))
    for cut in range(1, len(record)):
        path = tmp_path / "torn.spool"
        path.write_bytes(record + record[:cut])
        with path.open("rb") as file:
            items = list(scan(file))
        assert isinstance(items[0], Record)
        assert items[1:] == [Gap(len(record), cut, record[:cut], at_end=True)]


def test_spool_corrupt_byte_loses_only_its_own_record(tmp_path: Path) -> None:
    payloads = [encode_hit(a_hit(n)) for n in range(3)]
    data = bytearray(b"".join(frame(p) for p in payloads))
    data[len(frame(payloads[0])) + 20] ^= 0x01  # inside the second record
    path = tmp_path / "flipped.spool"
    path.write_bytes(bytes(data))
    assert records_in(path) == [payloads[0], payloads[2]]


async def test_spool_torn_tail_then_more_appends_replays_every_durable_hit(
    hit_log: HitLog, database_url: str
) -> None:
    """A crash mid-append, then more records after the torn bytes: the replay stores
    every complete record once and keeps the torn one aside."""
    directory = hit_log.spool.directory
    before, after = [a_hit(n) for n in range(5)], [a_hit(n) for n in range(5, 9)]
    path = orphan_segment(directory, before)
    torn = frame(encode_hit(a_hit(99)))
    with path.open("ab") as file:
        file.write(torn[:30] + b"".join(frame(encode_hit(hit)) for hit in after))
    await hit_log.replay_spool()
    assert hit_log.replayed_total == 9
    assert await stored_ids(database_url) == {hit.hit_id for hit in before + after}
    assert not path.exists()
    lines = (directory / "rejected.jsonl").read_text().splitlines()
    rejected = [json.loads(line) for line in lines]
    assert [entry["length"] for entry in rejected] == [30]


async def test_legacy_spool_torn_line_keeps_the_next_record(
    database_url: str, tmp_path: Path
) -> None:
    """The JSON-lines spool of earlier versions: the hit appended to a torn line is kept."""
    legacy = tmp_path / "hits.spool"
    first, second = a_hit(1), a_hit(2)
    legacy.write_text(
        json.dumps(first.to_record())
        + "\n"
        + '{"hit_id": "abc", "recei'
        # the next batch, appended to the torn line after a crash
        + json.dumps(second.to_record())
        + "\n"
    )
    engine = make_engine(database_url)
    log = HitLog(engine, tmp_path / "spool", legacy_spool=legacy, replay_interval=3600)
    await log.start()
    try:
        await log.replay_spool()
        assert log.replayed_total == 2
    finally:
        await log.stop()
        await engine.dispose()
    assert await stored_ids(database_url) == {first.hit_id, second.hit_id}
    assert not legacy.exists()


# Defect 2: a short write on a full disk was reported durable -------------------------

SHORT_WRITE = textwrap.dedent(
    """
    import json, resource, signal, sys
    from pathlib import Path
    from mailbeacon.store.spool import NotDurable, Segment

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead
    segment = Segment.create(Path(sys.argv[1]))
    segment.append([b'{"n":1}'])
    before = segment.size
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (before + 25, hard))  # the disk is full
    try:
        segment.append([b'{"n":2}', b'{"n":3}', b'{"n":4}'])
        outcome = "reported durable"
    except NotDurable as exc:
        outcome = "not durable: " + str(exc)
    after_failure = Path(segment.path).stat().st_size
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space again
    segment.append([b'{"n":5}'])
    print(json.dumps({"outcome": outcome, "before": before, "after": after_failure,
                      "path": str(segment.path)}))
    """
)


def test_spool_short_write_on_full_disk_is_not_durable_and_leaves_no_partial_record(
    tmp_path: Path,
) -> None:
    """A real short write (RLIMIT_FSIZE, in a child process): the batch is reported not
    durable, cut off whole, and the next batch follows the last good record."""
    result = subprocess.run(
        [sys.executable, "-c", SHORT_WRITE, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    report = json.loads(result.stdout)
    assert report["outcome"].startswith("not durable"), report
    assert "File too large" in report["outcome"]
    assert report["after"] == report["before"]
    assert records_in(Path(report["path"])) == [b'{"n":1}', b'{"n":5}']


async def test_spool_failure_is_reported_not_durable_to_the_caller(tmp_path: Path) -> None:
    """Neither the database nor the spool can take the hit: `record` says so."""
    engine = make_engine(UNREACHABLE_DB)
    spool_dir = tmp_path / "spool"
    log = HitLog(engine, spool_dir, replay_interval=3600)
    await log.start()
    spool_dir.rmdir()
    spool_dir.write_text("not a directory")  # no segment can be created here
    try:
        with pytest.raises(NotDurable):
            await log.record(a_hit(1))
        assert log.undurable_total == 1
    finally:
        await log.stop()
        await engine.dispose()


# Defect 3: replay read the whole spool into memory and blocked live hits -------------


def test_spool_scan_memory_is_bounded(tmp_path: Path) -> None:
    payload = encode_hit(a_hit(1))
    path = tmp_path / "big.spool"
    with path.open("wb") as file:
        file.write(frame(payload) * 40_000)  # about 9 MB
        file.write(b"\x00" * 3_000_000)  # and a long damaged stretch
    tracemalloc.start()
    try:
        with path.open("rb") as file:
            count = sum(1 for item in scan(file) if isinstance(item, Record))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 40_000
    assert peak < 1_000_000, peak


async def test_replay_is_chunked_and_live_hits_are_stored_between_chunks(
    database_url: str, tmp_path: Path
) -> None:
    spooled = [a_hit(n) for n in range(20_000)]
    orphan_segment(tmp_path / "spool", spooled, per_append=2000)
    engine = make_engine(database_url)
    log = HitLog(engine, tmp_path / "spool", replay_chunk=500, replay_interval=3600)
    await log.start()
    try:
        replay = asyncio.create_task(log.replay_spool())  # or the one started with the log

        async def some_replayed() -> bool:
            return log.replayed_total >= 500

        await eventually(some_replayed, interval=0.001)
        live = a_hit(1, message_id=2)
        await log.record(live)  # committed while the replay is still going
        assert log.database_ok
        assert log.replayed_total < len(spooled)
        await replay
        assert log.replayed_total == len(spooled)
    finally:
        await log.stop()
        await engine.dispose()
    assert await count_hits(database_url) == (20_001, 20_001)
    assert log.spooled_total == 0  # the live hit went to the database, not the spool


REPLAYER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from mailbeacon.store.db import make_engine
    from mailbeacon.store.hitlog import HitLog

    async def main():
        log = HitLog(make_engine(sys.argv[1]), Path(sys.argv[2]), replay_chunk=200,
                     replay_interval=3600)
        await log.start()
        await log.replay_spool()
        print("finished", flush=True)

    asyncio.run(main())
    """
)


async def test_replay_killed_midway_replays_again_exactly_once(
    database_url: str, tmp_path: Path
) -> None:
    """Spool content is dropped only once committed: kill -9 a replaying process after
    some chunks, and the next process stores every hit exactly once."""
    spooled = [a_hit(n) for n in range(20_000)]
    path = orphan_segment(tmp_path / "spool", spooled, per_append=2000)
    replayer = subprocess.Popen(
        [sys.executable, "-c", REPLAYER, database_url, str(tmp_path / "spool")],
        env={**os.environ, "PYTHONPATH": SRC},
        stdout=subprocess.PIPE,
    )
    try:

        async def some_committed() -> bool:
            rows = (await count_hits(database_url))[0]
            return rows > 0

        await eventually(some_committed, timeout=30, interval=0.01)
    finally:
        replayer.kill()
        replayer.wait()
    rows_at_kill = (await count_hits(database_url))[0]
    assert rows_at_kill < len(spooled), "the replay finished before it could be killed"
    assert path.exists()
    engine = make_engine(database_url)
    log = HitLog(engine, tmp_path / "spool", replay_interval=3600)
    await log.start()
    try:
        await log.replay_spool()
        assert log.replayed_total == len(spooled)
    finally:
        await log.stop()
        await engine.dispose()
    assert await count_hits(database_url) == (20_000, 20_000)
    assert not path.exists()


# Defect 4: a dead flusher hung every pixel -------------------------------------------


async def test_dead_flusher_is_restarted_and_no_hit_waits_for_it(
    hit_log: HitLog, database_url: str
) -> None:
    real_flush = hit_log._flush
    calls = 0

    async def broken_once(batch: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug in the flusher")
        await real_flush(batch)  # type: ignore[arg-type]

    hit_log._flush = broken_once  # type: ignore[method-assign]
    hit = a_hit(1)
    await asyncio.wait_for(hit_log.record(hit), 10)
    assert hit_log.flusher_restarts == 1
    assert hit_log.unconfirmed_total == 0  # the new flusher wrote it within the bound
    assert await stored_ids(database_url) == {hit.hit_id}


async def test_wedged_flusher_answers_within_the_bound_and_writes_later(
    database_url: str, tmp_path: Path
) -> None:
    engine = make_engine(database_url)
    log = HitLog(engine, tmp_path / "spool", replay_interval=3600, confirm_timeout=0.3)
    await log.start()
    release = asyncio.Event()
    real_flush = log._flush

    async def wedged(batch: object) -> None:
        await release.wait()  # e.g. a disk that stopped answering
        await real_flush(batch)  # type: ignore[arg-type]

    log._flush = wedged  # type: ignore[method-assign]
    try:
        hits = [a_hit(n) for n in range(20)]
        started = time.monotonic()
        await asyncio.gather(*(log.record(hit) for hit in hits))
        assert time.monotonic() - started < 5
        assert log.unconfirmed_total == 20
        release.set()

        async def written() -> bool:
            return await count_hits(database_url) == (20, 20)

        await eventually(written)
    finally:
        release.set()
        await log.stop()
        await engine.dispose()


# Defect 5: `mailbeacon send` replayed (and deleted) the web process's spool ----------

SPOOLER = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import UTC, datetime
    from pathlib import Path
    from mailbeacon.core.hits import Hit, HitKind
    from mailbeacon.store.db import make_engine
    from mailbeacon.store.hitlog import HitLog

    async def main():
        log = HitLog(make_engine(sys.argv[1]), Path(sys.argv[2]), replay_interval=3600)
        await log.start()
        for n in range(int(sys.argv[3])):
            hit = Hit(f"spooler-{n}", datetime.now(UTC), HitKind.OPEN, 1, n, None, "GET",
                      False, "", "")
            await log.record(hit)
        assert log.spooled_total == int(sys.argv[3]), log.spooled_total
        print("spooled", flush=True)
        await asyncio.to_thread(sys.stdin.read)  # live until killed

    asyncio.run(main())
    """
)


async def test_spool_of_a_live_process_is_never_replayed_or_deleted_by_another(
    database_url: str, tmp_path: Path
) -> None:
    """A web process spools (its database is away); a second process on the same var
    dir (as `mailbeacon send` is) leaves that spool alone until its owner is gone."""
    spool_dir = tmp_path / "spool"
    web = subprocess.Popen(
        [sys.executable, "-c", SPOOLER, UNREACHABLE_DB, str(spool_dir), "50"],
        env={**os.environ, "PYTHONPATH": SRC},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    engine = make_engine(database_url)
    other = HitLog(engine, spool_dir, replay_interval=3600)
    try:
        assert web.stdout is not None
        line = await asyncio.to_thread(web.stdout.readline)
        assert line.strip() == "spooled"
        files = sorted(spool_dir.glob("*.spool"))
        assert len(files) == 1
        await other.start()
        assert await other.replay_spool() == 0
        assert files[0].exists()
        assert await count_hits(database_url) == (0, 0)
        web.kill()  # the owner is gone: now its spool is anybody's to replay
        web.wait()
        assert await other.replay_spool() == 50
        assert not files[0].exists()
        assert await count_hits(database_url) == (50, 50)
    finally:
        if web.poll() is None:
            web.kill()
            web.wait()
        await other.stop()
        await engine.dispose()


def test_spool_segment_locked_by_one_open_is_not_adopted_by_another(tmp_path: Path) -> None:
    owner = Segment.create(tmp_path)
    owner.append([b"{}"])
    assert Segment.adopt(owner.path) is None
    owner.close()
    adopted = Segment.adopt(owner.path)
    assert adopted is not None
    adopted.remove()
    assert not owner.path.exists()


# Defect 6: SQLite refusing a batch, or locked by another writer ---------------------


async def test_sqlite_batch_refused_midway_is_never_half_committed(
    sqlite_server_url: str,
) -> None:
    from tests.conftest import _empty

    await _empty(sqlite_server_url)
    path = sqlite_server_url.removeprefix("sqlite+aiosqlite:///")
    writer = SqliteHitWriter(path)
    try:
        good, poison, later = a_hit(1), a_hit(2, message_id=2**63), a_hit(3)
        with pytest.raises(OverflowError):
            await writer.write([good, poison, later])
        assert await count_hits(sqlite_server_url) == (0, 0)
        # The write lock was let go: another connection can write at once.
        other = sqlite3.connect(path, timeout=0.1, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        other.close()
        await writer.write([good, later])
        assert await stored_ids(sqlite_server_url) == {good.hit_id, later.hit_id}
    finally:
        await writer.close()


async def test_sqlite_locked_longer_than_busy_timeout_spools_without_stalling(
    sqlite_server_url: str, tmp_path: Path
) -> None:
    """Another writer (a long send transaction) holds SQLite's lock: hits are spooled
    within the bound, the loop keeps running, and they are stored once it lets go."""
    from tests.conftest import _empty

    await _empty(sqlite_server_url)
    path = sqlite_server_url.removeprefix("sqlite+aiosqlite:///")
    engine = make_engine(sqlite_server_url)
    log = HitLog(engine, tmp_path / "spool", replay_interval=3600)  # busy timeout 1.2 s
    await log.start()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    try:
        hits = [a_hit(n) for n in range(50)]
        await asyncio.gather(*(log.record(hit) for hit in hits))
        # Answered from the spool (hedged while the commit waits on the lock, or
        # spooled once SQLite gave up), never by the reader's timer.
        assert log.spooled_total + log.hedged_total == 50
        assert log.unconfirmed_total == 0

        async def gave_up() -> bool:
            return not log.database_ok

        await eventually(gave_up, timeout=10)
        stop.set()
        await ticking
        assert max(gaps) < 1.0, max(gaps)  # under the busy timeout: SQLite never blocks it
        holder.execute("ROLLBACK")
        assert await log.replay_spool() == 50
        assert await stored_ids(sqlite_server_url) == {hit.hit_id for hit in hits}
        assert await count_hits(sqlite_server_url) == (50, 50)
    finally:
        stop.set()
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()
        await log.stop()
        await engine.dispose()


async def test_replay_sets_aside_a_record_the_database_refuses(
    hit_log: HitLog, database_url: str
) -> None:
    """One bad row never blocks the spool: it goes to rejected.jsonl, the rest is stored."""
    good, poison, later = a_hit(1), a_hit(2, message_id=2**63), a_hit(3)
    orphan_segment(hit_log.spool.directory, [good, poison, later])
    await hit_log.replay_spool()
    assert hit_log.replayed_total == 3
    assert await stored_ids(database_url) == {good.hit_id, later.hit_id}
    assert hit_log.rejected_total == 1
    rejected = (hit_log.spool.directory / "rejected.jsonl").read_text()
    assert "refused by the database" in rejected
    assert list(hit_log.spool.directory.glob("*.spool")) == []


async def test_live_batch_with_a_bad_row_is_spooled_and_the_database_stays_in_use(
    hit_log: HitLog, database_url: str
) -> None:
    poison = a_hit(2, message_id=2**63)
    await hit_log.record(poison)
    assert hit_log.spooled_total == 1
    assert hit_log.database_ok
    good = a_hit(3)
    await hit_log.record(good)
    assert hit_log.spooled_total == 1
    assert await stored_ids(database_url) == {good.hit_id}


async def test_slow_database_is_hedged_readers_answered_from_the_spool(
    sqlite_server_url: str, tmp_path: Path
) -> None:
    """Rule 1 under a slow database: another writer holds SQLite's lock (a big send's
    commit), so the batch's commit waits; its readers are answered once the batch is
    fsynced in the spool, while the lock is still held, and every hit is stored once."""
    from tests.conftest import _empty

    await _empty(sqlite_server_url)
    path = sqlite_server_url.removeprefix("sqlite+aiosqlite:///")
    engine = make_engine(sqlite_server_url)
    log = HitLog(engine, tmp_path / "spool", replay_interval=3600)  # busy timeout 1.2 s
    await log.start()
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        first = [a_hit(n) for n in range(20)]
        await asyncio.gather(*(log.record(hit) for hit in first))
        later = [a_hit(n) for n in range(20, 30)]
        await asyncio.gather(*(log.record(hit) for hit in later))  # behind the slow commit
        assert log.hedged_total == 30 and log.spooled_total == 0
        assert log.unconfirmed_total == 0 and log.database_ok
        holder.execute("ROLLBACK")  # the writer lets go within SQLite's busy timeout

        async def all_stored() -> bool:
            await log.replay_spool()  # spooled copies of committed hits are ignored by id
            return await count_hits(sqlite_server_url) == (30, 30)

        await eventually(all_stored, timeout=10)
        assert await stored_ids(sqlite_server_url) == {hit.hit_id for hit in first + later}
        assert log.database_ok
    finally:
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()
        await log.stop()
        await engine.dispose()
