"""The database goes away mid-burst: every reader still gets an answer, and every hit
lands in the database exactly once after recovery (B10; DESIGN rules 1 and 3)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from sqlalchemy import func, select

from mailbeacon.core.tokens import KeyRing
from mailbeacon.store.db import make_engine, sessions
from mailbeacon.store.hitlog import HitLog
from mailbeacon.store.tables import HitRow
from tests.conftest import TEST_SECRET, LiveApp
from tests.helpers import eventually

keys = KeyRing.from_secrets([TEST_SECRET])


class TcpProxy:
    """Our own TCP proxy in front of PostgreSQL, so the test can cut the line without
    touching the shared server."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update({writer, up_writer})

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.difference_update({writer, up_writer})

    async def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        await self._server.wait_closed()

    async def restore(self) -> None:
        await self.start()


async def count_hits(url: str) -> tuple[int, int]:
    """(rows, distinct hit ids)."""
    engine = make_engine(url)
    try:
        async with sessions(engine)() as db:
            rows = await db.scalar(select(func.count(HitRow.seq)))
            distinct = await db.scalar(select(func.count(func.distinct(HitRow.hit_id))))
            return int(rows or 0), int(distinct or 0)
    finally:
        await engine.dispose()


async def burst(live: LiveApp, start: int, opens: int, clicks: int) -> None:
    """Concurrent pixel and click requests; every one must get its GIF or redirect."""
    async with httpx.AsyncClient(
        base_url=live.base_url, timeout=30, limits=httpx.Limits(max_connections=40)
    ) as client:
        pixel = [client.get(f"/o/{keys.sign_open(1, start + n)}.gif") for n in range(opens)]
        click = [
            client.get(
                f"/c/{keys.sign_click(1, start + n, 1, 'https://example.com/')}",
                follow_redirects=False,
            )
            for n in range(clicks)
        ]
        responses = await asyncio.gather(*pixel, *click)
    assert [r.status_code for r in responses] == [200] * opens + [302] * clicks
    assert all(r.content.startswith(b"GIF89a") for r in responses[:opens])
    assert all(r.headers["location"] == "https://example.com/" for r in responses[opens:])


def spool_files(live: LiveApp) -> list[Path]:
    return sorted(live.settings.spool_dir.glob("*.spool"))


def hit_log(live: LiveApp) -> HitLog:
    hits: HitLog = live.app.hits  # type: ignore[attr-defined]
    return hits


async def survive_outage(
    live: LiveApp,
    url: str,
    cut: Callable[[], Awaitable[Any]],
    restore: Callable[[], Awaitable[Any]],
) -> None:
    async def stored(expected: int) -> bool:
        # On a loaded machine a batch slower than the database timeout is spooled
        # and replayed a moment later: stored, but not necessarily at once.
        return await count_hits(url) == (expected, expected)

    await burst(live, 0, 60, 20)
    await eventually(lambda: stored(80), timeout=20)
    log = hit_log(live)
    spooled_before = log.spooled_total + log.hedged_total
    await cut()
    await burst(live, 1000, 150, 50)

    async def outage_noticed() -> bool:
        # A commit that hangs on the cut database is hedged (its readers answered
        # from the spool) before it fails; the failure follows within its timeout.
        return not log.database_ok

    await eventually(outage_noticed, timeout=15)
    assert log.spooled_total + log.hedged_total - spooled_before == 200
    assert log.spool.owned_bytes > 0
    assert spool_files(live)
    await restore()

    async def replayed() -> bool:
        return await stored(280)

    await eventually(replayed, timeout=20)
    assert spool_files(live) == []
    assert log.database_ok
    await burst(live, 5000, 10, 0)  # and back to normal
    await eventually(lambda: stored(290), timeout=20)


async def test_postgres_cut_away_mid_burst(
    serve_app: Any, postgres_server_url: str, smtp_server: Any
) -> None:
    from tests.conftest import _empty

    await _empty(postgres_server_url)
    parts = urlsplit(postgres_server_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    netloc = f"{parts.username}@127.0.0.1:{proxy.port}"
    proxied = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    live = await serve_app(proxied, smtp_url=smtp_server.url)
    try:
        await survive_outage(live, postgres_server_url, proxy.cut, proxy.restore)
    finally:
        with contextlib.suppress(Exception):
            await proxy.cut()


def _chattr(flag: str, paths: list[Path]) -> None:
    subprocess.run(["chattr", flag, *map(str, paths)], check=True, capture_output=True)


async def test_sqlite_file_made_unwritable_mid_burst(
    serve_app: Any, tmp_path: Path, smtp_server: Any
) -> None:
    db_path = tmp_path / "outage.db"
    url = f"sqlite+aiosqlite:///{db_path}"
    from mailbeacon.store.db import migrate_async

    await migrate_async(url)
    live = await serve_app(url, smtp_url=smtp_server.url)
    # The -shm file stays writable: it is shared memory, and SQLite maps it.
    files = [db_path, Path(f"{db_path}-wal")]
    try:
        _chattr("+i", [db_path])
        _chattr("-i", [db_path])
    except (OSError, subprocess.CalledProcessError) as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"cannot make a file immutable here (chattr needs root): {exc}")

    async def cut() -> None:
        assert files[1].exists()  # the first burst wrote through the WAL
        _chattr("+i", files)

    async def restore() -> None:
        _chattr("-i", files)

    try:
        await survive_outage(live, url, cut, restore)
    finally:
        with contextlib.suppress(Exception):
            _chattr("-i", files)
