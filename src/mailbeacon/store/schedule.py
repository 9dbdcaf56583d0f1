"""Send later (B13): a message whose send job waits for its time, and taking it back;
the files a message was sent with.

A scheduled message is an ordinary queued one whose job's `run_after` lies ahead;
the worker's claim ignores it until then. Cancelling removes the message before
any worker has claimed it, so nothing is ever half sent. Scoped to one user (S7).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailbeacon.store.tables import Attachment, Message, SendJob


async def scheduled_at(
    db: AsyncSession, user_id: int, message_id: int, now: datetime
) -> datetime | None:
    """When the user's message is due to leave, if that is still ahead and no worker
    holds it; else None."""
    found: datetime | None = await db.scalar(
        select(SendJob.run_after)
        .join(Message, Message.id == SendJob.message_id)
        .where(
            SendJob.message_id == message_id,
            Message.user_id == user_id,
            Message.status == "queued",
            SendJob.lease_owner == "",
            SendJob.run_after > now,
        )
    )
    return found


async def cancel(db: AsyncSession, user_id: int, message_id: int, now: datetime) -> bool:
    """Take back a scheduled message (deleted with its recipients, links and files).

    Only while it is still waiting: the job row is deleted first, under the same
    conditions, so a worker that claims it meanwhile wins and the cancel says no.
    """
    gone = await db.execute(
        delete(SendJob).where(
            SendJob.message_id == message_id,
            SendJob.lease_owner == "",
            SendJob.run_after > now,
            SendJob.message_id.in_(
                select(Message.id).where(
                    Message.id == message_id,
                    Message.user_id == user_id,
                    Message.status == "queued",
                )
            ),
        )
    )
    if not getattr(gone, "rowcount", 0):
        return False
    await db.execute(delete(Message).where(Message.id == message_id, Message.user_id == user_id))
    return True


async def attachments_of(db: AsyncSession, user_id: int, message_id: int) -> list[tuple[str, int]]:
    """(file name, size) of the files sent with the user's message, in the order attached."""
    rows = await db.execute(
        select(Attachment.filename, Attachment.size)
        .join(Message, Message.id == Attachment.message_id)
        .where(Attachment.message_id == message_id, Message.user_id == user_id)
        .order_by(Attachment.id)
    )
    return [(row.filename, row.size) for row in rows]
