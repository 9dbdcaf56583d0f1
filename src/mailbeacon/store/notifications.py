"""Queries behind the bell, the feed and the live stream (S9, B5).

Every function takes the user id and filters by it, and joins the message on
its owner too, so a notification can only ever describe the user's own mail
(S7). The live stream polls `unread_state` once a second per open browser
tab, so that query is a single aggregate over the (user_id, read_at) index.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Select, and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mailbeacon.store.tables import (
    Link,
    Message,
    Notification,
    Recipient,
    Reminder,
    Reply,
    WebSession,
)


@dataclass(frozen=True, slots=True)
class NotificationItem:
    """One notification with what a person needs to read it (texts are built by the web layer)."""

    id: int
    kind: str
    message_id: int
    occurred_at: datetime
    read: bool
    recipient_name: str
    recipient_address: str
    subject: str
    link_url: str | None
    event_count: int = 1  # hits this notification stands for (a burst is one)
    link_count: int = 1  # distinct links clicked in that burst
    reopen: bool = False  # an open after an earlier notified open of the same copy
    recipient_id: int = 0
    # Replies and bounces (B11): whether the sender was a recipient, a bounce's code.
    from_recipient: bool = True
    status_code: str = ""
    # A follow-up reminder (B5, kind "reminder"): its condition and days.
    reminder_condition: str = ""
    reminder_days: int = 0


@dataclass(frozen=True, slots=True)
class UnreadState:
    """What the bell shows, and the newest notification id (the stream's cursor)."""

    unread: int
    latest_id: int


def _items(user_id: int) -> Select[Notification, Recipient, Message, str, Reply, Reminder]:
    # Link.url is NULL for opens (outer join): `_item` takes `str | None`. A reply
    # (B11) from someone who was not a recipient has no recipient: its sender is
    # named from the reply row instead.
    return (
        select(Notification, Recipient, Message, Link.url, Reply, Reminder)
        .join(Message, Message.id == Notification.message_id)
        .outerjoin(Recipient, Recipient.id == Notification.recipient_id)
        # The honeypot link's address is never shown to a user (B3): "a link" at most.
        .outerjoin(Link, and_(Link.id == Notification.link_id, Link.honeypot.is_(False)))
        .outerjoin(Reply, Reply.id == Notification.reply_id)
        .outerjoin(Reminder, Reminder.id == Notification.reminder_id)
        .where(Notification.user_id == user_id, Message.user_id == user_id)
    )


async def _first_opens(db: AsyncSession, user_id: int, recipient_ids: set[int]) -> dict[int, int]:
    """Per copy, the id of its first open notification: any later one is a re-open.

    One grouped query per page (on the user's index), rather than a probe per row:
    the processor raises a re-open only after the user's quiet gap, so the page
    only has to tell the first from the rest.
    """
    if not recipient_ids:
        return {}
    rows = await db.execute(
        select(Notification.recipient_id, func.min(Notification.id))
        .where(
            Notification.user_id == user_id,
            Notification.kind == "open",
            Notification.recipient_id.in_(recipient_ids),
        )
        .group_by(Notification.recipient_id)
    )
    return {recipient_id: int(first) for recipient_id, first in rows}


async def _with_reopens(
    db: AsyncSession, user_id: int, items: list[NotificationItem]
) -> list[NotificationItem]:
    first = await _first_opens(db, user_id, {i.recipient_id for i in items if i.kind == "open"})
    later = {i.id for i in items if i.kind == "open" and first.get(i.recipient_id, i.id) < i.id}
    return [replace(i, reopen=True) if i.id in later else i for i in items]


def _item(
    notification: Notification,
    recipient: Recipient | None,
    message: Message,
    url: str | None,
    reply: Reply | None = None,
    reminder: Reminder | None = None,
) -> NotificationItem:
    if recipient is not None:
        name, address = recipient.name, recipient.address
    elif reply is not None:
        name, address = reply.from_name, reply.from_address
    else:
        name, address = "", ""
    return NotificationItem(
        id=notification.id,
        kind=notification.kind,
        message_id=message.id,
        occurred_at=notification.occurred_at,
        read=notification.read_at is not None,
        recipient_name=name,
        recipient_address=address,
        subject=message.subject,
        link_url=url,
        event_count=notification.event_count,
        link_count=notification.link_count,
        recipient_id=recipient.id if recipient is not None else 0,
        from_recipient=recipient is not None,
        status_code=reply.status_code if reply is not None else "",
        reminder_condition=reminder.condition if reminder is not None else "",
        reminder_days=reminder.days if reminder is not None else 0,
    )


async def unread_state(db: AsyncSession, user_id: int) -> UnreadState:
    """Unread count and newest id in one indexed aggregate (polled by the stream)."""
    row = (
        await db.execute(
            select(
                func.count(Notification.id).filter(Notification.read_at.is_(None)),
                func.max(Notification.id),
            ).where(Notification.user_id == user_id)
        )
    ).one()
    return UnreadState(unread=int(row[0] or 0), latest_id=int(row[1] or 0))


async def notifications_page(
    db: AsyncSession, user_id: int, page: int, per_page: int
) -> tuple[list[NotificationItem], int]:
    """One page of the feed, newest first, and the total number of notifications."""
    total = await db.scalar(
        select(func.count(Notification.id)).where(Notification.user_id == user_id)
    )
    rows = await db.execute(
        _items(user_id)
        .order_by(Notification.occurred_at.desc(), Notification.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    )
    return await _with_reopens(db, user_id, [_item(*row) for row in rows]), int(total or 0)


async def notifications_after(
    db: AsyncSession, user_id: int, after_id: int, limit: int
) -> list[NotificationItem]:
    """The newest `limit` notifications with an id above `after_id`, oldest of them first.

    Ids only grow, and the processor derives under one lock, so "id above the
    last one seen" is exactly "arrived since", across processes.
    """
    rows = await db.execute(
        _items(user_id)
        .where(Notification.id > after_id)
        .order_by(Notification.id.desc())
        .limit(limit)
    )
    return list(reversed(await _with_reopens(db, user_id, [_item(*row) for row in rows])))


async def mark_read(db: AsyncSession, user_id: int, notification_id: int, now: datetime) -> bool:
    """Mark one of the user's notifications read; False when the user has no such notification."""
    owned = await db.scalar(
        select(Notification.id).where(
            Notification.id == notification_id, Notification.user_id == user_id
        )
    )
    if owned is None:
        return False
    await db.execute(
        update(Notification)
        .where(Notification.id == notification_id, Notification.read_at.is_(None))
        .values(read_at=now)
    )
    return True


async def mark_all_read(db: AsyncSession, user_id: int, now: datetime) -> None:
    """Mark every unread notification of the user read."""
    await db.execute(
        update(Notification)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
        .values(read_at=now)
    )


async def session_alive(db: AsyncSession, session_hash: str, now: datetime) -> bool:
    """Whether a web session still exists: a long-lived stream ends once its user signs out."""
    expires_at = await db.scalar(
        select(WebSession.expires_at).where(WebSession.id_hash == session_hash)
    )
    return expires_at is not None and expires_at > now
