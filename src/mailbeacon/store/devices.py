"""The sender's own browsers (B2): what the processor recognises as "you".

A device is (user agent, network): the agent as the browser sends it and its
address truncated to the /24 or /48 (core.hits.truncate_ip), the same shape
the collector stores for hits, so the processor can match a hit against them.
Recording is an upsert keyed by that triple: the first visit inserts, later
ones only move `last_seen_at`. Every function is scoped to one user.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from mailbeacon.store.tables import UserDevice

MAX_AGENT = 512  # the column's size: longer agents are cut, as the collector does
MAX_NETWORK = 64


def _insert(dialect: str) -> Any:
    return (postgresql if dialect == "postgresql" else sqlite).insert(UserDevice)


async def remember_device(
    db: AsyncSession, user_id: int, user_agent: str, network: str, now: datetime
) -> None:
    """Insert the device, or move its `last_seen_at` to `now` (never backwards)."""
    values = {
        "user_id": user_id,
        "user_agent": user_agent[:MAX_AGENT],
        "network": network[:MAX_NETWORK],
        "first_seen_at": now,
        "last_seen_at": now,
    }
    statement = _insert(db.get_bind().dialect.name).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=["user_id", "user_agent", "network"],
        set_={"last_seen_at": now},
        where=UserDevice.last_seen_at < now,
    )
    await db.execute(statement)


async def devices_of(db: AsyncSession, user_id: int) -> Sequence[UserDevice]:
    """The user's devices, most recently seen first."""
    return (
        await db.scalars(
            select(UserDevice)
            .where(UserDevice.user_id == user_id)
            .order_by(UserDevice.last_seen_at.desc(), UserDevice.id.desc())
        )
    ).all()


async def forget_device(db: AsyncSession, user_id: int, device_id: int) -> bool:
    """Forget one of the user's devices; False when the user has no such device."""
    result = await db.execute(
        delete(UserDevice).where(UserDevice.id == device_id, UserDevice.user_id == user_id)
    )
    return bool(getattr(result, "rowcount", 0))
