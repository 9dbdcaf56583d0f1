"""The network table's files: the packaged lists, the operator's refreshed ones, reloading.

Where the ranges come from, in order (a later file's exact range overrides an earlier
one's; otherwise the more specific range wins, see core.networks):

1. the packaged `data/networks/known.csv` (`cidr,tag,source`);
2. Apple's relay list: the operator's `var/networks/apple-relay.csv` when present, else
   the packaged sample;
3. every other operator file `var/networks/<tag>.csv`.

Operator files are written by `mailbeacon networks refresh` already collapsed, one CIDR a
line after a few `#` lines saying where and when they came from, so a full Apple list
(about 290,000 lines, a few tens of thousands after collapsing) loads in well under a
second. `NetworkSource` keeps the table a running collector uses and re-reads the files
when their modification times change, checked at most once a minute and in a thread,
never on the hit's path.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import httpx

from mailbeacon.core.networks import (
    APPLE_RELAY,
    Network,
    NetworkTable,
    Parsed,
    Range,
    collapse,
    parse_known_csv,
    parse_ranges,
    range_cidrs,
    read_ranges,
    to_range,
    valid_tag,
)
from mailbeacon.settings import Settings
from mailbeacon.store.private_files import PRIVATE_DIR, make_private

log = logging.getLogger(__name__)

PACKAGE = "mailbeacon"
DATA_DIR = ("data", "networks")
KNOWN_FILE = "known.csv"
APPLE_SAMPLE = "apple-relay-sample.csv"
RELOAD_EVERY = 60.0  # seconds between checks of the files' modification times
MAX_DOWNLOAD = 64 * 1024 * 1024  # Apple's full list is about 12 MB
FETCH_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class ListInfo:
    """One list the table is built from, for `mailbeacon networks list`."""

    tag: str
    ranges: int
    origin: str  # a path, or "packaged"
    source: str  # where the ranges came from (URL or file), from the file's header
    updated: str  # when, from the file's header or its modification time


def networks_dir(settings: Settings) -> Path:
    return settings.var_dir / "networks"


def _packaged(name: str) -> str:
    return resources.files(PACKAGE).joinpath(*DATA_DIR, name).read_text(encoding="utf-8")


def operator_files(settings: Settings) -> dict[str, Path]:
    """The operator's lists by tag (file name without .csv); odd names are ignored."""
    folder = networks_dir(settings)
    if not folder.is_dir():
        return {}
    found = {}
    for path in sorted(folder.glob("*.csv")):
        if valid_tag(path.stem) and path.is_file():
            found[path.stem] = path
    return found


def _header(text: str) -> dict[str, str]:
    """The `# key: value` lines a refresh writes at the top of a file."""
    values = {}
    for line in text.splitlines()[:10]:
        if not line.startswith("#"):
            break
        key, sep, value = line[1:].partition(":")
        if sep:
            values[key.strip()] = value.strip()
    return values


def _mtime(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds")


def read_lists(settings: Settings) -> tuple[list[tuple[Range, str]], list[ListInfo]]:
    """Every (range, tag) pair the table is built from, and what each list holds."""
    known, parsed = parse_known_csv(_packaged(KNOWN_FILE))
    pairs = [(to_range(network), tag) for network, tag in known]
    if parsed.skipped:
        log.warning("known.csv: %d lines skipped: %s", parsed.skipped, parsed.examples)
    infos = []
    counts: dict[str, int] = {}
    for _, tag in pairs:
        counts[tag] = counts.get(tag, 0) + 1
    infos += [ListInfo(tag, n, "packaged", KNOWN_FILE, "") for tag, n in sorted(counts.items())]
    files = operator_files(settings)
    if APPLE_RELAY not in files:
        sample, _ = read_ranges(_packaged(APPLE_SAMPLE))
        pairs += [(found, APPLE_RELAY) for found in sample]
        infos.append(ListInfo(APPLE_RELAY, len(sample), "packaged", APPLE_SAMPLE + " (sample)", ""))
    for tag, path in files.items():
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            log.error("network list %s could not be read: %s", path, exc)
            continue
        ranges, found = read_ranges(text)
        if found.skipped:
            log.warning("%s: %d lines skipped: %s", path, found.skipped, found.examples)
        pairs += [(each, tag) for each in ranges]
        header = _header(text)
        infos.append(
            ListInfo(
                tag,
                len(ranges),
                str(path),
                header.get("source", ""),
                header.get("fetched", "") or _mtime(path),
            )
        )
    return pairs, infos


def load_network_table(settings: Settings) -> NetworkTable:
    """The table from the packaged and the operator's lists (see the module docstring)."""
    pairs, _ = read_lists(settings)
    return NetworkTable.from_ranges(pairs)


def write_list(
    settings: Settings, tag: str, networks: list[Network], source: str, fmt: str
) -> tuple[Path, int]:
    """Write `tag`'s list collapsed and atomically (a temporary file renamed over the old
    one), owner-only like everything in var/. Returns the path and the ranges written."""
    if not valid_tag(tag):
        raise ValueError(f"not a valid tag: {tag!r} (lowercase letters, digits, dashes)")
    folder = networks_dir(settings)
    folder.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    make_private(folder)
    collapsed = [cidr for merged in collapse(networks) for cidr in range_cidrs(merged)]
    fetched = datetime.now(UTC).isoformat(timespec="seconds")
    # A source URL or path is one line: no newline may break the header.
    source_line = source.replace("\r", " ").replace("\n", " ")
    lines = [
        f"# tag: {tag}",
        f"# source: {source_line}",
        f"# format: {fmt}",
        f"# fetched: {fetched}",
        f"# ranges: {len(collapsed)} (collapsed from {len(networks)})",
        *collapsed,
    ]
    target = folder / f"{tag}.csv"
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{tag}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target, len(collapsed)


class NetworkSource:
    """The table a running collector uses, re-read when the operator refreshes a list.

    `table` is a plain attribute read on every hit. `current()` also, at most once every
    RELOAD_EVERY seconds, starts a check of the files' modification times in a thread; a
    changed set of files builds a new table there and swaps it in. So `serve` picks up a
    refresh within about a minute, without a restart, and no hit waits for it.
    """

    def __init__(self, settings: Settings, table: NetworkTable | None = None) -> None:
        self.settings = settings
        self._stamp = self._file_stamp()
        self.table = table if table is not None else load_network_table(settings)
        self._next_check = time.monotonic() + RELOAD_EVERY
        self._checking = False

    def _file_stamp(self) -> tuple[tuple[str, int, int], ...]:
        stamp = []
        for path in operator_files(self.settings).values():
            try:
                info = path.stat()
            except OSError:
                continue
            stamp.append((path.name, info.st_mtime_ns, info.st_size))
        return tuple(stamp)

    def current(self) -> NetworkTable:
        """The table to use now (cheap: a clock read, and rarely a background check)."""
        now = time.monotonic()
        if now >= self._next_check and not self._checking:
            self._next_check = now + RELOAD_EVERY
            self._start_check()
        return self.table

    def _start_check(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._checking = True
        future = loop.run_in_executor(None, self.reload_if_changed)
        future.add_done_callback(self._check_done)

    def _check_done(self, future: asyncio.Future[bool]) -> None:
        self._checking = False
        if not future.cancelled() and future.exception() is not None:
            log.error("network lists could not be reloaded: %s", future.exception())

    def reload_if_changed(self) -> bool:
        """Rebuild the table if an operator file was added, changed or removed."""
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return False
        table = load_network_table(self.settings)
        self.table, self._stamp = table, stamp
        log.info("network lists reloaded: %d ranges", len(table))
        return True


class FetchError(ValueError):
    """A list could not be fetched or read; nothing was changed."""


@dataclass(frozen=True, slots=True)
class Refreshed:
    """What a refresh loaded and skipped, and where it wrote the list."""

    tag: str
    fmt: str
    path: Path
    parsed: Parsed
    written: int


def guess_format(tag: str, source: str, text: str) -> str:
    """apple for Apple's list, json for a JSON document, else a plain CIDR list."""
    if text.lstrip().startswith(("{", "[")) or source.lower().endswith(".json"):
        return "json"
    if tag == APPLE_RELAY:
        return "apple"
    return "cidr"


def read_source(
    source: str, *, max_bytes: int = MAX_DOWNLOAD, timeout: float = FETCH_TIMEOUT
) -> str:
    """The text of a local file or an http(s) URL, at most `max_bytes`, within `timeout`."""
    if source.startswith(("http://", "https://")):
        return _download(source, max_bytes, timeout)
    path = Path(source)
    try:
        if path.stat().st_size > max_bytes:
            raise FetchError(f"{source} is larger than {max_bytes} bytes")
        return path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise FetchError(f"{source} could not be read: {exc.strerror or exc}") from None


def _download(url: str, max_bytes: int, timeout: float) -> str:
    body = bytearray()
    try:
        with (
            httpx.Client(timeout=timeout, follow_redirects=True, max_redirects=5) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise FetchError(f"{url} answered HTTP {response.status_code}")
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise FetchError(f"{url} sent more than {max_bytes} bytes")
    except httpx.HTTPError as exc:
        raise FetchError(f"{url} could not be fetched: {exc}") from None
    return body.decode("utf-8", errors="replace")


def refresh(settings: Settings, tag: str, source: str, fmt: str | None = None) -> Refreshed:
    """Fetch, validate and write one list; the old list stays when anything is wrong.

    Raises FetchError (or core.networks.NoRanges, a ValueError) with a sentence to show.
    """
    if not valid_tag(tag):
        raise FetchError(f"not a valid tag: {tag!r} (lowercase letters, digits, dashes)")
    text = read_source(source)
    chosen = fmt or guess_format(tag, source, text)
    parsed = parse_ranges(text, chosen)
    path, written = write_list(settings, tag, parsed.networks, source, chosen)
    return Refreshed(tag, chosen, path, parsed, written)
