"""The processor never passes a hit that commits after it read further (issue 6).

PostgreSQL allocates `seq` at insert while the writing transactions commit in
any order, so these tests hold transactions open by hand: the hit with the
lower seq commits last, with processor rounds in between.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from mailbeacon.core.hits import Hit, HitKind, new_hit_id
from mailbeacon.processor.derive import process_all, process_batch
from mailbeacon.store.db import alembic_config, make_engine, migrate_async, sessions
from mailbeacon.store.hitlog import insert_ignoring_duplicates
from mailbeacon.store.tables import Event
from tests.helpers import eventually
from tests.test_processor import T0, hit, read_at_least, seed


def unknown_open() -> Hit:
    """A validly shaped hit naming no message we hold: read, but derives nothing."""
    return Hit(new_hit_id(), T0, HitKind.OPEN, 1, 1, None, "GET", False, "", "")


async def event_seqs(engine: Any) -> list[int]:
    async with sessions(engine)() as db:
        return list(await db.scalars(select(Event.hit_seq).order_by(Event.hit_seq)))


async def drained(engine: Any, seqs: list[int]) -> None:
    """Process until every hit in `seqs` has its one event.

    Not at once: the server's other databases share transaction ids, and a hit
    waits until every older writing transaction on the server has ended.
    """

    async def done() -> bool:
        await process_all(engine)
        return await event_seqs(engine) == seqs

    await eventually(done, timeout=30)


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_processor_cursor_skips_no_hit_committed_out_of_seq_order(database_url: str) -> None:
    """Two hit writers: the lower seq commits last, a processor round runs in between."""
    engine = make_engine(database_url)
    try:
        message, (a, b), _ = await seed(engine)
        insert = insert_ignoring_duplicates(engine)
        async with engine.connect() as slow, engine.connect() as fast:
            await slow.begin()
            await slow.execute(insert, [hit(HitKind.OPEN, message, a, 1).to_row()])  # lower seq
            await fast.begin()
            await fast.execute(insert, [hit(HitKind.OPEN, message, b, 2).to_row()])
            await fast.commit()
            await process_all(engine)  # seq 2 is committed, seq 1 not yet
            await slow.commit()
        async with sessions(engine)() as db:
            hits = list(await db.scalars(text("SELECT seq FROM hits ORDER BY seq")))
        assert len(hits) == 2
        await drained(engine, hits)
    finally:
        await engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_processor_waits_for_open_writers_then_reads_in_commit_safe_order(
    database_url: str,
) -> None:
    """Five writers commit in reverse order of their inserts, with a round after
    every commit: every hit is derived exactly once, none while its writer is open."""
    engine = make_engine(database_url)
    try:
        message, (a, _), _ = await seed(engine)
        insert = insert_ignoring_duplicates(engine)
        writers = [await engine.connect() for _ in range(5)]
        try:
            for minute, writer in enumerate(writers):
                await writer.begin()
                await writer.execute(insert, [hit(HitKind.OPEN, message, a, minute).to_row()])
            for writer in reversed(writers):
                assert await process_batch(engine) == 0  # an older writer is still open
                await writer.commit()
        finally:
            for writer in writers:
                await writer.close()
        async with sessions(engine)() as db:
            hits = list(await db.scalars(text("SELECT seq FROM hits ORDER BY seq")))
        await drained(engine, hits)
    finally:
        await engine.dispose()


async def test_processor_resumes_exactly_where_it_stopped_across_the_xid_migration(
    database_url: str, tmp_path: Any
) -> None:
    """A database processed up to seq 3 of 5 before migration 0005 reads exactly
    hits 4 and 5 after it, then new hits."""
    before = ScriptDirectory.from_config(alembic_config(database_url)).get_revision("0005")
    assert before is not None and isinstance(before.down_revision, str)
    url, drop = await _fresh_database(database_url, tmp_path)
    try:
        await migrate_async(url, before.down_revision)
        engine = make_engine(url)
        try:
            async with engine.begin() as conn:
                for number in range(5):
                    await conn.execute(
                        text(
                            "INSERT INTO hits (hit_id, received_at, kind, message_id,"
                            " recipient_id, method, prefetch, ip, user_agent) VALUES (:hit_id,"
                            " CURRENT_TIMESTAMP, 'open', 1, 1, 'GET', false, '', '')"
                        ),
                        {"hit_id": f"old{number}"},
                    )
                seqs = list(await conn.scalars(text("SELECT seq FROM hits ORDER BY seq")))
                await conn.execute(
                    text("INSERT INTO processor_cursor (name, last_seq) VALUES ('events', :seq)"),
                    {"seq": seqs[2]},
                )
        finally:
            await engine.dispose()
        await migrate_async(url)
        engine = make_engine(url)
        try:
            assert await read_at_least(engine, 2) == 2
            async with engine.begin() as conn:
                await conn.execute(
                    insert_ignoring_duplicates(engine),
                    [unknown_open().to_row()],
                )
            assert await read_at_least(engine, 1) == 1
            assert await process_all(engine) == 0
            async with sessions(engine)() as db:
                assert await db.scalar(select(func.count()).select_from(Event)) == 0
        finally:
            await engine.dispose()
    finally:
        await drop()


async def _fresh_database(server_url: str, tmp_path: Any) -> tuple[str, Any]:
    """An empty database on the same server as `server_url`, and how to drop it."""
    if server_url.startswith("sqlite"):

        async def nothing() -> None:
            return None

        return f"sqlite+aiosqlite:///{tmp_path / 'migrating.db'}", nothing
    parts = make_url(server_url)
    name = f"mailbeacon_migrating_{uuid.uuid4().hex[:10]}"
    admin = {"host": parts.host, "port": parts.port, "user": parts.username, "database": "test"}

    async def execute(sql: str) -> None:
        conn = await asyncpg.connect(**admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    await execute(f'CREATE DATABASE "{name}"')

    async def drop() -> None:
        await execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return parts.set(database=name).render_as_string(hide_password=False), drop
