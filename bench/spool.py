"""The hit spool: append cost against a plain write+fsync, and replay speed and memory.

    .venv/bin/python bench/spool.py [--batches 500] [--batch 20]

Figures printed:
* append: the spool's framed, whole-or-nothing append (looped pwrite, fsync)
  against the reference measured in the same run, the earlier JSON-lines
  append (one os.write and an fsync per batch, file opened per batch);
* replay: hits per second moving an orphaned spool into a fresh SQLite
  database in 2,000-hit chunks, and the traced memory peak for a small and a
  five times larger spool (bounded replay: the two peaks stay close).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

from mailbeacon.core.hits import Hit, HitKind, new_hit_id
from mailbeacon.store.db import make_engine, migrate_async
from mailbeacon.store.hitlog import HitLog, encode_hit
from mailbeacon.store.spool import Segment


def hits(count: int) -> list[Hit]:
    agent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0"
    return [
        Hit(
            new_hit_id(),
            datetime.now(UTC),
            HitKind.OPEN,
            1,
            n,
            None,
            "GET",
            False,
            "10.0.0.0",
            agent,
        )
        for n in range(count)
    ]


def reference_append(path: Path, batch: list[Hit]) -> None:
    """The JSON-lines append of earlier versions (one unchecked write)."""
    data = "".join(json.dumps(hit.to_record()) + "\n" for hit in batch).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def bench_append(directory: Path, batches: int, size: int) -> tuple[float, float]:
    """Median microseconds per batch: (spool, reference)."""
    work = [hits(size) for _ in range(batches)]
    segment = Segment.create(directory)
    ours, reference = [], []
    try:
        for batch in work:  # interleaved, so both see the same disk weather
            start = time.perf_counter()
            segment.append([encode_hit(hit) for hit in batch])
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            reference_append(directory / "reference.jsonl", batch)
            reference.append(time.perf_counter() - start)
    finally:
        segment.close()
    return statistics.median(ours) * 1e6, statistics.median(reference) * 1e6


async def replay(directory: Path, count: int, *, trace: bool) -> tuple[float, int]:
    """(seconds, traced peak bytes) to replay `count` orphaned hits into a fresh SQLite."""
    spool_dir = directory / f"spool-{count}-{trace}"
    spool_dir.mkdir()
    segment = Segment.create(spool_dir)
    spooled = hits(count)
    for start in range(0, count, 2000):
        segment.append([encode_hit(hit) for hit in spooled[start : start + 2000]])
    segment.close()
    del spooled
    url = f"sqlite+aiosqlite:///{directory / f'replay-{count}-{trace}.db'}"
    await migrate_async(url)
    engine = make_engine(url)
    log = HitLog(engine, spool_dir, replay_interval=3600)
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    await log.start()
    await log.replay_spool()
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if trace else 0
    if trace:
        tracemalloc.stop()
    assert log.replayed_total == count, log.replayed_total
    await log.stop()
    await engine.dispose()
    return elapsed, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=500)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--replay", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        ours, reference = bench_append(directory, args.batches, args.batch)
        print(f"append {args.batch} hits + fsync, median of {args.batches}:")
        print(f"  spool segment  {ours:8.0f} us")
        print(f"  reference      {reference:8.0f} us   ratio {ours / reference:.2f}")
        elapsed, _ = asyncio.run(replay(directory, args.replay, trace=False))
        print(
            f"replay {args.replay} hits into SQLite: {elapsed:.2f} s, "
            f"{args.replay / elapsed:,.0f} hits/s"
        )
        small = args.replay // 5
        _, small_peak = asyncio.run(replay(directory, small, trace=True))
        _, large_peak = asyncio.run(replay(directory, args.replay, trace=True))
        print(
            f"replay traced peak: {small} hits {small_peak / 1e6:.1f} MB, "
            f"{args.replay} hits {large_peak / 1e6:.1f} MB   ratio {large_peak / small_peak:.2f}"
        )


if __name__ == "__main__":
    main()
