"""The hit spool: framed, checksummed records in files each owned by one process.

When the database cannot take a batch of hits, the batch goes here and is
fsynced before any of its readers is answered (DESIGN rule 3). Three things
make that promise hold whatever happens to the process or the disk:

* **Framing.** Every record is `MAGIC | length | crc32 | payload`. A reader
  that meets a torn or corrupt stretch (a crash mid-write, a write that failed
  half-way) skips to the next MAGIC whose length and checksum hold, so damage
  never swallows a later record. Payloads are JSON, which is ASCII, so MAGIC
  (it starts with 0xFF) can never occur inside one.
* **Whole or nothing appends.** A batch is written with a loop that survives
  short writes and then fsynced; any failure (ENOSPC, EIO, EFBIG, anything)
  truncates the file back to where the batch started and reports the batch
  as not durable. If even the truncation fails, the segment is retired and
  the next batch starts a fresh one; the framing still protects later records.
* **One owner per file.** Each process spools into segment files of its own
  under the spool directory and holds an exclusive `flock` on each for as
  long as it lives. Only a process holding that lock ever deletes a file, so a
  short-lived `mailbeacon send` can never unlink hits the web process just
  wrote. The kernel drops the lock when its owner dies, and any live process
  then adopts the orphan and replays it.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import logging
import os
import struct
import time
import zlib
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

MAGIC = b"\xffMB1"
HEADER = struct.Struct(">4sII")  # magic, payload length, crc32 of the payload
MAX_RECORD = 1 << 20  # a hit is well under 2 KiB; a larger length is corruption
SEGMENT_SUFFIX = ".spool"
CREATING_SUFFIX = ".creating"  # a segment before its owner holds the lock on it
READ_BLOCK = 1 << 16
STALE_CREATING = 60.0  # seconds after which an unrenamed new segment is debris
GAP_KEPT = 4096  # bytes of a skipped stretch kept for a human to look at


class NotDurable(Exception):
    """The spool could not make a batch durable; its hits must not count as stored."""


def frame(payload: bytes) -> bytes:
    """One record as it is stored."""
    if len(payload) > MAX_RECORD:
        raise ValueError(f"a spool record is limited to {MAX_RECORD} bytes")
    return HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


@dataclass(frozen=True, slots=True)
class Record:
    """A complete record and where it starts in its file."""

    offset: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Gap:
    """A stretch of a file that is not a complete record.

    `at_end` means nothing valid follows it: the torn tail of an append that
    never finished, whose hits were therefore never reported durable.
    """

    offset: int
    length: int
    head: bytes  # the first GAP_KEPT bytes
    at_end: bool


def scan(file: BinaryIO, start: int = 0, end: int | None = None) -> Iterator[Record | Gap]:
    """Every record and every gap of a spool file, in order, in bounded memory.

    Reads from `start` up to `end` (default: the end of the file); both must
    be record boundaries. The buffer never holds more than one read block
    plus one record.
    """
    file.seek(start)
    buf = bytearray()
    base = start  # the file offset of buf[0]
    unread = -1 if end is None else end - start
    eof = False
    gap_start = -1
    gap_head = bytearray()

    def fill(size: int) -> None:
        nonlocal eof, unread
        while len(buf) < size and not eof:
            block = file.read(READ_BLOCK if unread < 0 else min(READ_BLOCK, unread))
            if block:
                buf.extend(block)
                if unread >= 0:
                    unread -= len(block)
            else:
                eof = True

    def skip(count: int) -> None:
        nonlocal base, gap_start
        if gap_start < 0:
            gap_start = base
        room = GAP_KEPT - len(gap_head)
        if room > 0:
            gap_head.extend(buf[: min(count, room)])
        del buf[:count]
        base += count

    def close_gap(at_end: bool) -> Gap | None:
        nonlocal gap_start
        if gap_start < 0:
            return None
        gap = Gap(gap_start, base - gap_start, bytes(gap_head), at_end)
        gap_start = -1
        gap_head.clear()
        return gap

    while True:
        fill(HEADER.size)
        if not buf:
            break
        if len(buf) >= HEADER.size:
            magic, length, crc = HEADER.unpack_from(buf)
            if magic == MAGIC and length <= MAX_RECORD:
                end = HEADER.size + length
                fill(end)
                if len(buf) >= end:
                    payload = bytes(buf[HEADER.size : end])
                    if zlib.crc32(payload) == crc:
                        gap = close_gap(at_end=False)
                        if gap is not None:
                            yield gap
                        yield Record(base, payload)
                        del buf[:end]
                        base += end
                        continue
        # Not a record here: resynchronise at the next MAGIC.
        found = buf.find(MAGIC, 1)
        while found < 0 and not eof:
            keep = len(MAGIC) - 1
            if len(buf) > keep:
                skip(len(buf) - keep)
            fill(len(buf) + READ_BLOCK)
            found = buf.find(MAGIC, 1)
        skip(found if found >= 0 else len(buf))
    gap = close_gap(at_end=True)
    if gap is not None:
        yield gap


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class Segment:
    """One spool file, locked by this process for as long as the object is open."""

    def __init__(self, path: Path, fd: int, size: int, *, writable: bool, legacy: bool) -> None:
        self.path = path
        self._fd = fd
        self.size = size
        self.writable = writable
        self.legacy = legacy  # JSON lines, from before records were framed

    @classmethod
    def create(cls, directory: Path) -> Segment:
        """A new, empty segment of this process, already locked when others can see it."""
        name = f"hits-{os.getpid()}-{os.urandom(6).hex()}"
        creating = directory / (name + CREATING_SUFFIX)
        fd = os.open(creating, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            path = directory / (name + SEGMENT_SUFFIX)
            os.rename(creating, path)
            _fsync_directory(directory)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                creating.unlink()
            raise
        return cls(path, fd, 0, writable=True, legacy=False)

    @classmethod
    def adopt(cls, path: Path, *, legacy: bool = False) -> Segment | None:
        """Take over a file whose owner is gone; None while another process holds it."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            if not _try_lock(fd):
                os.close(fd)
                return None
            # The last owner may have replayed and unlinked it between our open and lock.
            if os.fstat(fd).st_ino != os.stat(path).st_ino:
                os.close(fd)
                return None
        except FileNotFoundError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, os.fstat(fd).st_size, writable=False, legacy=legacy)

    def append(self, payloads: Sequence[bytes]) -> None:
        """Write and fsync whole records, or raise NotDurable and leave the file as it was."""
        if not self.writable:
            raise NotDurable(f"{self.path.name} is retired")
        data = b"".join(frame(payload) for payload in payloads)
        start = self.size
        try:
            written = 0
            while written < len(data):
                count = os.pwrite(self._fd, memoryview(data)[written:], start + written)
                if count <= 0:
                    raise OSError(f"write returned {count}")
                written += count
            os.fsync(self._fd)
        except OSError as exc:
            self._undo(start)
            raise NotDurable(f"could not spool to {self.path.name}: {exc}") from exc
        self.size = start + len(data)

    def _undo(self, start: int) -> None:
        """Cut a failed append off; if that fails too, retire the segment."""
        try:
            os.ftruncate(self._fd, start)
            os.fsync(self._fd)
        except OSError as exc:
            log.error("could not cut a failed append off %s, retiring it: %s", self.path, exc)
            self.writable = False

    def records(
        self, start: int = 0, end: int | None = None
    ) -> Generator[Record | Gap, None, None]:
        """The file from `start` to `end` (record boundaries), through a handle of its own."""
        with self.path.open("rb") as file:
            if self.legacy:
                yield from _legacy_lines(file)
            else:
                yield from scan(file, start, end)

    def remove(self) -> None:
        """Delete the file (its content is committed elsewhere) and let the lock go."""
        try:
            self.path.unlink(missing_ok=True)
            _fsync_directory(self.path.parent)
        finally:
            self.close()

    def close(self) -> None:
        """Let the lock go and leave the file for whoever adopts it."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _legacy_lines(file: BinaryIO) -> Iterator[Record | Gap]:
    """Records of a pre-framing spool: one JSON object a line.

    A line torn by a crash had the next batch appended to it; the last
    `{"hit_id"` on such a line starts the record that followed, so it is kept.
    """
    offset = 0
    for line in file:
        body = line.rstrip(b"\r\n")
        start = body.rfind(b'{"hit_id"')
        if start > 0:
            yield Gap(offset, start, body[:start][:GAP_KEPT], at_end=False)
        if start >= 0:
            yield Record(offset + start, body[start:])
        elif body.strip():
            yield Gap(offset, len(body), body[:GAP_KEPT], at_end=False)
        offset += len(line)


class Spool:
    """The segments of this process, and the orphans it adopted, in one directory."""

    def __init__(self, directory: Path, *, legacy: Path | None = None) -> None:
        self.directory = directory
        self._legacy = legacy
        self._active: Segment | None = None
        self._owned: list[Segment] = []  # retired for writing, waiting to be replayed

    def open(self) -> None:
        """Make the directory (owner-only: hits name recipients' networks)."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def append(self, payloads: Sequence[bytes]) -> None:
        """Make `payloads` durable in this process's active segment (blocking: call in a thread)."""
        if self._active is not None and not self._active.writable:
            self._owned.append(self._active)
            self._active = None
        if self._active is None:
            try:
                self._active = Segment.create(self.directory)
            except OSError as exc:
                raise NotDurable(f"could not start a spool segment: {exc}") from exc
        self._active.append(payloads)

    def retire_active(self) -> None:
        """Stop appending to the active segment so it can be replayed; later hits start anew."""
        if self._active is not None:
            active, self._active = self._active, None
            if active.size:
                self._owned.append(active)
            else:
                active.remove()

    def waiting(self) -> list[Segment]:
        """Every segment to replay: retired ones of ours, then orphans we could lock.

        Blocking (lists the directory): call in a thread.
        """
        owned = {segment.path for segment in self._owned}
        if self._active is not None:
            owned.add(self._active.path)
        for path in sorted(self.directory.glob("*" + CREATING_SUFFIX)):
            # A creator that died between open and rename never held a record;
            # a live one takes microseconds there, hence the age check.
            with contextlib.suppress(FileNotFoundError):
                if time.time() - path.stat().st_mtime > STALE_CREATING:
                    stale = Segment.adopt(path)
                    if stale is not None:
                        stale.remove()
        candidates = [
            (path, False)
            for path in sorted(self.directory.glob("*" + SEGMENT_SUFFIX))
            if path not in owned
        ]
        if self._legacy is not None and self._legacy not in owned and self._legacy.exists():
            candidates.append((self._legacy, True))
        for path, legacy in candidates:
            segment = Segment.adopt(path, legacy=legacy)
            if segment is not None:
                log.info("adopted spool file %s from a process that is gone", path)
                self._owned.append(segment)
        return list(self._owned)

    def forget(self, segment: Segment) -> None:
        """`segment` is replayed: delete it."""
        self._owned.remove(segment)
        segment.remove()

    @property
    def active(self) -> Segment | None:
        """The segment hits are being spooled to now, if any."""
        return self._active

    @property
    def active_bytes(self) -> int:
        """Bytes in the segment hits are being spooled to now."""
        return self._active.size if self._active is not None else 0

    @property
    def owned_bytes(self) -> int:
        """Bytes spooled by or adopted into this process and not yet replayed."""
        return self.active_bytes + sum(segment.size for segment in self._owned)

    def close(self) -> None:
        """Let every lock go; files with content stay for the next process to replay."""
        segments = [*self._owned, *([self._active] if self._active is not None else [])]
        self._owned, self._active = [], None
        for segment in segments:
            if segment.size == 0 and not segment.legacy:
                segment.remove()
            else:
                segment.close()


def take(records: Iterator[Record | Gap], count: int) -> list[Record | Gap]:
    """The next `count` items (records and gaps) of a scan, or fewer at its end."""
    return list(itertools.islice(records, count))
