"""The composer's address book (B13): the people a user has mailed, with their names.

Contacts are not a table of their own: they are the recipients of the user's own
messages (as the contact pages read them), so a name typed once is offered again.
Every query is scoped to one user (S7).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailbeacon.store.tables import Message, Recipient

MAX_SUGGESTIONS = 8
MAX_QUERY = 100


@dataclass(frozen=True, slots=True)
class Contact:
    """An address the user has mailed and the last name it was given."""

    address: str
    name: str


async def name_of(db: AsyncSession, user_id: int, address: str) -> str:
    """The latest non-empty name the user gave `address`, or ""."""
    name = await db.scalar(
        select(Recipient.name)
        .join(Message, Message.id == Recipient.message_id)
        .where(
            Message.user_id == user_id,
            func.lower(Recipient.address) == address.lower(),
            Recipient.name != "",
        )
        .order_by(Recipient.id.desc())
        .limit(1)
    )
    return name or ""


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def suggestions(db: AsyncSession, user_id: int, query: str) -> list[Contact]:
    """Up to MAX_SUGGESTIONS contacts whose address or name contains `query`, most
    recently mailed first; each address once, with its latest name."""
    needle = f"%{_escaped(query.strip().lower()[:MAX_QUERY])}%"
    latest = (
        select(Recipient.address.label("address"), func.max(Recipient.id).label("last_id"))
        .join(Message, Message.id == Recipient.message_id)
        .where(
            Message.user_id == user_id,
            (func.lower(Recipient.address).like(needle, escape="\\"))
            | (func.lower(Recipient.name).like(needle, escape="\\")),
        )
        .group_by(Recipient.address)
        .order_by(func.max(Recipient.id).desc())
        .limit(MAX_SUGGESTIONS)
        .subquery()
    )
    rows = (
        await db.execute(
            select(latest.c.address, latest.c.last_id).order_by(latest.c.last_id.desc())
        )
    ).all()
    found: list[Contact] = []
    for row in rows:
        found.append(Contact(row.address, await name_of(db, user_id, row.address)))
    return found
