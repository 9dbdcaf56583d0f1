"""kill -9 `mailbeacon serve` in the middle of a burst of pixel and click requests,
restart it on the same var dir, and every hit that got an answer is in the database
exactly once: while writing to the database and while spooling, on SQLite and
PostgreSQL (DESIGN rule 3).

The kill point is random; set MAILBEACON_CRASH_SEED to replay a failing run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from sqlalchemy import func, select

from mailbeacon.core.tokens import KeyRing
from mailbeacon.store.db import make_engine, migrate_async, sessions
from mailbeacon.store.tables import HitRow
from tests.conftest import TEST_SECRET, _empty
from tests.helpers import eventually, free_port
from tests.test_outage import TcpProxy

keys = KeyRing.from_secrets([TEST_SECRET])
BURST = 300
WARM_UP = 40
CONCURRENCY = 20
MESSAGE = 7


@dataclass
class Server:
    """`mailbeacon serve` as a real process, without the worker (hits only)."""

    var_dir: Path
    database_url: str
    log_path: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    runs: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.port = free_port()
        self.runs += 1
        env = {
            **os.environ,
            "MAILBEACON_VAR_DIR": str(self.var_dir),
            "MAILBEACON_DATABASE_URL": self.database_url,
            "MAILBEACON_PUBLIC_URL": self.base_url,
            "MAILBEACON_SECRET_KEYS": TEST_SECRET,
            "MAILBEACON_SMTP_URL": "smtp://127.0.0.1:25",  # no embedded outbox
            "MAILBEACON_EMBEDDED_WORKER": "false",
        }
        with self.log_path.open("ab") as log:
            log.write(f"--- run {self.runs}\n".encode())
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mailbeacon.cli", "serve", "--port", str(self.port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

        async def answers() -> bool:
            assert self.process is not None
            assert self.process.poll() is None, self.log_path.read_text()
            try:
                async with httpx.AsyncClient(timeout=1) as client:
                    response = await client.get(f"{self.base_url}/o/warming-up.gif")
            except httpx.TransportError:
                return False
            return response.status_code == 200

        await eventually(answers, timeout=30, interval=0.1)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Burst:
    """Which requests got a full answer before (and while) the server died."""

    answered: set[int] = field(default_factory=set)
    failed: int = 0


async def burst_and_kill(server: Server, first: int, kill_after: int, count: int = BURST) -> Burst:
    """`count` concurrent pixels and clicks; kill -9 the server after `kill_after` answers."""
    result = Burst()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(first, first + count):
        queue.put_nowait(n)

    async def one(client: httpx.AsyncClient, n: int) -> None:
        try:
            if n % 2:
                url = keys.sign_click(MESSAGE, n, 1, "https://example.com/")
                response = await client.get(f"/c/{url}")
                complete = response.status_code == 302
                complete = complete and response.headers["location"] == "https://example.com/"
            else:
                response = await client.get(f"/o/{keys.sign_open(MESSAGE, n)}.gif")
                complete = response.status_code == 200 and response.content.startswith(b"GIF89a")
        except httpx.TransportError:
            result.failed += 1
            return
        assert complete, (n, response.status_code)
        result.answered.add(n)
        if len(result.answered) == kill_after:
            server.kill()  # at once, from inside the burst

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            await one(client, queue.get_nowait())

    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
    return result


async def hits_per_recipient(url: str) -> dict[int, int]:
    engine = make_engine(url)
    try:
        async with sessions(engine)() as db:
            rows = await db.execute(
                select(HitRow.recipient_id, func.count())
                .where(HitRow.message_id == MESSAGE)
                .group_by(HitRow.recipient_id)
            )
            return {int(recipient): int(count) for recipient, count in rows.all()}
    finally:
        await engine.dispose()


def spooled_bytes(var_dir: Path) -> int:
    return sum(path.stat().st_size for path in (var_dir / "spool").glob("*.spool"))


async def crash_and_check(
    server: Server,
    check_url: str,
    *,
    cut: Callable[[], Awaitable[None]] | None = None,
    restore: Callable[[], Awaitable[None]] | None = None,
    restart_before_restore: bool = False,
) -> None:
    seed = int(os.environ.get("MAILBEACON_CRASH_SEED") or random.SystemRandom().randrange(10**9))
    kill_after = random.Random(seed).randrange(BURST // 10, BURST * 8 // 10)
    context = f"seed {seed}, killed after {kill_after} answers; log: {server.log_path}"
    await server.start()
    warm = await burst_and_kill(server, 0, kill_after=-1, count=WARM_UP)  # the database works
    assert len(warm.answered) == WARM_UP, context
    if cut is not None:
        await cut()
    crashed = await burst_and_kill(server, 10_000, kill_after)
    assert server.process is not None and server.process.returncode == -signal.SIGKILL, context
    assert len(crashed.answered) >= kill_after, context
    if cut is not None:
        assert spooled_bytes(server.var_dir) > 0, f"nothing was spooled; {context}"
    after = Burst()
    if restart_before_restore:
        # Still no database: the new process spools next to the torn spool of the dead one.
        await server.start()
        after = await burst_and_kill(server, 20_000, kill_after=-1, count=WARM_UP)
        assert len(after.answered) == WARM_UP, context
    if restore is not None:
        await restore()
    if not restart_before_restore:
        await server.start()  # on the same var dir: replays what the dead process spooled
    try:
        must_have = warm.answered | crashed.answered | after.answered

        async def all_stored() -> bool:
            stored = await hits_per_recipient(check_url)
            return must_have <= stored.keys()

        await eventually(all_stored, timeout=30, interval=0.2)
        stored = await hits_per_recipient(check_url)
        missing = sorted(must_have - stored.keys())
        assert not missing, f"answered but lost: {missing[:20]}; {context}"
        twice = {n: count for n, count in stored.items() if count != 1}
        assert not twice, f"stored more than once: {twice}; {context}"
        sent = {*range(WARM_UP), *range(10_000, 10_000 + BURST), *range(20_000, 20_000 + WARM_UP)}
        assert stored.keys() <= sent, context
        if cut is not None:
            assert spooled_bytes(server.var_dir) == 0, context
    finally:
        server.stop()


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    path = tmp_path / "crash.db"
    url = f"sqlite+aiosqlite:///{path}"
    await migrate_async(url)
    yield url, path


@pytest.fixture
async def postgres_db(postgres_server_url: str) -> str:
    await _empty(postgres_server_url)
    return postgres_server_url


def make_server(tmp_path: Path, url: str) -> Server:
    return Server(tmp_path / "var", url, tmp_path / "server.log")


async def test_crash_while_writing_to_sqlite(sqlite_db: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = sqlite_db
    await crash_and_check(make_server(tmp_path, url), url)


async def test_crash_while_writing_to_postgres(postgres_db: str, tmp_path: Path) -> None:
    await crash_and_check(make_server(tmp_path, postgres_db), postgres_db)


def _chattr(flag: str, paths: list[Path]) -> None:
    subprocess.run(["chattr", flag, *map(str, paths)], check=True, capture_output=True)


@pytest.mark.parametrize("restart_before_restore", [False, True])
async def test_crash_while_spooling_sqlite_unwritable(
    sqlite_db: tuple[str, Path], tmp_path: Path, restart_before_restore: bool
) -> None:
    """Also restarted while the file is still unwritable: the new process spools beside
    the dead one's torn spool, and nothing of either is lost."""
    url, path = sqlite_db
    # The -shm file stays writable: it is shared memory, and SQLite maps it.
    files = [path, Path(f"{path}-wal")]
    try:
        _chattr("+i", [path])
        _chattr("-i", [path])
    except (OSError, subprocess.CalledProcessError) as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"cannot make a file immutable here (chattr needs root): {exc}")

    async def cut() -> None:
        assert files[1].exists()  # the warm-up burst wrote through the WAL
        _chattr("+i", files)

    async def restore() -> None:
        _chattr("-i", files)

    try:
        await crash_and_check(
            make_server(tmp_path, url),
            url,
            cut=cut,
            restore=restore,
            restart_before_restore=restart_before_restore,
        )
    finally:
        with contextlib.suppress(Exception):
            _chattr("-i", files)


async def test_crash_while_spooling_postgres_cut_away(postgres_db: str, tmp_path: Path) -> None:
    parts = urlsplit(postgres_db)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    proxied = urlunsplit(
        (parts.scheme, f"{parts.username}@127.0.0.1:{proxy.port}", parts.path, "", "")
    )
    try:
        await crash_and_check(
            make_server(tmp_path, proxied), postgres_db, cut=proxy.cut, restore=proxy.restore
        )
    finally:
        with contextlib.suppress(Exception):
            await proxy.cut()
