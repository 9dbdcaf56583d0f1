"""Stored link URLs for the collector: the destination of a long link's click token.

A link too long to travel in its token (see :mod:`mailbeacon.core.tokens`) is named by
its id; the collector asks here for the URL and checks it against the digest the token
signs. Lookups go through a bounded in-memory LRU, so repeat clicks cost no query and a
link clicked once keeps redirecting while the database is down (DESIGN rule 1).
"""

from __future__ import annotations

from collections import OrderedDict

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from mailbeacon.store.tables import Link

CACHE_LINKS = 4096
CACHE_CHARS = 16_000_000


class StoredLinks:
    """Link URLs by (message id, link id), cached by count and by total characters."""

    def __init__(
        self, engine: AsyncEngine, *, max_links: int = CACHE_LINKS, max_chars: int = CACHE_CHARS
    ) -> None:
        self._engine = engine
        self._max_links = max_links
        self._max_chars = max_chars
        self._cache: OrderedDict[tuple[int, int], str] = OrderedDict()
        self._chars = 0

    async def url(self, message_id: int, link_id: int) -> str | None:
        """The link's URL, or None when no such link belongs to that message.

        Raises whatever the database raises when it cannot answer and the link is not
        cached; the caller decides what the reader sees then.
        """
        key = (message_id, link_id)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        async with self._engine.connect() as conn:
            found = await conn.scalar(
                select(Link.url).where(Link.id == link_id, Link.message_id == message_id)
            )
        if found is not None:
            self._remember(key, found)
        return found

    def _remember(self, key: tuple[int, int], url: str) -> None:
        if len(url) > self._max_chars or key in self._cache:
            return
        self._cache[key] = url
        self._chars += len(url)
        while len(self._cache) > self._max_links or self._chars > self._max_chars:
            _, dropped = self._cache.popitem(last=False)
            self._chars -= len(dropped)
