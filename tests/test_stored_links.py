"""Issue 6: the collector's long-link lookup (store/links.py) on SQLite and PostgreSQL.

A long link's URL is read by (message, link) id, once: the bounded cache then answers
repeat clicks without a query, and keeps answering while the database is down.
"""

from __future__ import annotations

import pytest
from sqlalchemy import delete

from mailbeacon.store.accounts import add_user
from mailbeacon.store.db import make_engine, sessions
from mailbeacon.store.links import StoredLinks
from mailbeacon.store.tables import Link, Message


async def test_stored_link_lookup_caches_and_survives_an_outage(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        async with sessions(engine)() as db, db.begin():
            user = await add_user(db, "links@example.com", "a long password")
            message = Message(
                user_id=user.id,
                message_id_header="<m@example.com>",
                from_address="links@example.com",
                requested_opens=True,
                requested_links=True,
                track_opens=True,
                track_links=True,
                links=[Link(url=f"https://example.com/{i}?" + "x" * 3000) for i in range(3)],
            )
            db.add(message)
            await db.flush()
            message_id = message.id
            link_ids = [link.id for link in message.links]
        links = StoredLinks(engine, max_links=2)
        first, second, third = link_ids
        assert await links.url(message_id, first) == "https://example.com/0?" + "x" * 3000
        assert await links.url(message_id + 1, first) is None  # another message's link id
        assert await links.url(message_id, second) is not None
        # The database loses the rows; cached links still answer (no query is made).
        async with sessions(engine)() as db, db.begin():
            await db.execute(delete(Link))
        assert await links.url(message_id, second) == "https://example.com/1?" + "x" * 3000
        assert await links.url(message_id, third) is None  # never seen: not cached
        # An unreachable database: cached links answer, others raise for the caller.
        links._engine = make_engine("postgresql+asyncpg://nobody@127.0.0.1:9/none")
        try:
            assert await links.url(message_id, first) is not None
            with pytest.raises(OSError):
                await links.url(message_id, 999_999)
        finally:
            await links._engine.dispose()
    finally:
        await engine.dispose()


async def test_stored_link_cache_is_bounded_by_characters(database_url: str) -> None:
    engine = make_engine(database_url)
    links = StoredLinks(engine, max_links=100, max_chars=10_000)
    for i in range(10):
        links._remember((1, i), "u" * 3000)
    assert len(links._cache) == 3 and links._chars == 9000
    assert list(links._cache) == [(1, 7), (1, 8), (1, 9)]  # least recently used dropped
    await engine.dispose()
