"""Engines and migrations: one place that knows SQLite from PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from mailbeacon.store.private_files import PRIVATE_DIR, PRIVATE_FILE, make_private

MIGRATIONS = Path(__file__).parent / "migrations"


def _private_sqlite_file(path: Path) -> None:
    """Create the database file owner-only before SQLite creates it with the umask's mode.

    SQLite gives its -wal and -shm files the database file's permissions.
    """
    path.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    # Only create: an existing file is never opened for writing here (it may be
    # immutable while the collector spools; start-up must not fail on it).
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    for existing in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        make_private(existing)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the writer; FULL makes each commit durable,
    # which group commit keeps affordable.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


# SQLite errors after which a connection must not be reused: its view of the
# file may be broken (an I/O error mid-WAL write, a file turned read-only).
_SQLITE_BROKEN = ("disk i/o error", "readonly database", "unable to open database")


def _sqlite_broken_connection(context: ExceptionContext) -> None:
    if any(text in str(context.original_exception).lower() for text in _SQLITE_BROKEN):
        context.is_disconnect = True


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine with the settings each backend needs."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1].split("?", 1)[0]
        if path and path != ":memory:":
            _private_sqlite_file(Path(path))
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "handle_error", _sqlite_broken_connection)
        return engine
    connect_args = {"timeout": 5, "command_timeout": 10, **kwargs.pop("connect_args", {})}
    return create_async_engine(
        url, pool_pre_ping=True, pool_size=10, connect_args=connect_args, **kwargs
    )


def sessions(engine: AsyncEngine) -> async_sessionmaker[Any]:
    """Session factory; objects stay usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    """An Alembic config built in code, so no alembic.ini has to be found on disk."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str, revision: str = "head") -> None:
    """Bring the database to `revision` (blocking; runs its own event loop)."""
    command.upgrade(alembic_config(url), revision)


async def migrate_async(url: str, revision: str = "head") -> None:
    """`migrate` from inside a running event loop."""
    await asyncio.to_thread(migrate, url, revision)
