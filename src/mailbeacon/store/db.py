"""Engines and migrations: one place that knows SQLite from PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

MIGRATIONS = Path(__file__).parent / "migrations"


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
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
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
