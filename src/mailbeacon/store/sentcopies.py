"""Each message's clean copy in the sender's Sent folder: whose turn it is, and how it went.

The progress lives on the message row (`sent_copy_*`), so the message page can
show it and a restarted worker picks up where the last one stopped:

    '' --(every copy has its outcome)--> pending --> done
                                           |   ^
                                           |   +-- a failure that may pass: retried later
                                           +--> failed (retries ran out, or a wrong setting)
    '' or pending --> skipped (no IMAP set up, or no copy was delivered)

A provider may save its tracked copies in Sent a little after accepting them,
so a "done" message keeps a `sent_copy_next_at`: one late sweep, which removes
tracked copies that arrived since and saves nothing (the status stays "done").

A worker claims a pending message by moving `sent_copy_next_at` forward by a
lease in one compare-and-set UPDATE (the same on SQLite and PostgreSQL), so two
workers never work on one message at once, and one that dies leaves it to the
next when the lease runs out. A message whose delivery ended while no worker
recorded it (a crash between the two) still has '' and is found as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from mailbeacon.store.sendqueue import in_field, recipients_of
from mailbeacon.store.tables import Message

DELIVERED = ("sent", "partial")
FINISHED = ("sent", "partial", "failed")
STATUSES = ("", "pending", "done", "failed", "skipped")


@dataclass(frozen=True, slots=True)
class SentCopyJob:
    """What the clean copy is built from: the message as the user wrote it."""

    message_id: int
    user_id: int
    attempts: int
    message_id_header: str
    from_address: str
    subject: str
    html: str | None
    text: str | None
    created_at: datetime
    to: tuple[tuple[str, str], ...]  # (address, name)
    cc: tuple[tuple[str, str], ...]
    bcc: tuple[tuple[str, str], ...]
    # The clean copy is saved already: only remove tracked copies that arrived since.
    late_sweep: bool = False
    # A message submitted by a mail client (B12): its own bytes, attachments and all.
    raw_source: bytes | None = None


@dataclass(frozen=True, slots=True)
class SentCopyState:
    """How the clean copy went, as the message page shows it."""

    status: str
    error: str
    removed: int
    attempts: int


async def mark_delivered(engine: AsyncEngine, message_id: int, status: str, now: datetime) -> None:
    """Every copy has its outcome: the clean copy is due now, or skipped if none arrived."""
    values: dict[str, object] = (
        {"sent_copy_status": "pending", "sent_copy_next_at": now}
        if status in DELIVERED
        else {"sent_copy_status": "skipped", "sent_copy_next_at": None}
    )
    async with engine.begin() as conn:
        await conn.execute(
            update(Message)
            .where(Message.id == message_id, Message.sent_copy_status == "")
            .values(**values)
        )


def _due(now: datetime) -> ColumnElement[bool]:
    pending = and_(
        Message.sent_copy_status == "pending",
        or_(Message.sent_copy_next_at.is_(None), Message.sent_copy_next_at <= now),
    )
    unrecorded = and_(Message.sent_copy_status == "", Message.status.in_(FINISHED))
    late_sweep = and_(Message.sent_copy_status == "done", Message.sent_copy_next_at <= now)
    return or_(pending, unrecorded, late_sweep)


async def claim_next(engine: AsyncEngine, now: datetime, lease: float) -> SentCopyJob | None:
    """The oldest due message, now held by us for `lease` seconds; None when none is due."""
    until = now + timedelta(seconds=lease)
    async with engine.connect() as conn:
        for _ in range(5):  # another worker may take the one we saw first
            row = (
                await conn.execute(
                    select(Message.id, Message.status, Message.sent_copy_status)
                    .where(_due(now))
                    .order_by(Message.id)
                    .limit(1)
                )
            ).one_or_none()
            if row is None:
                await conn.rollback()
                return None
            late = row.sent_copy_status == "done"
            delivered = late or row.status in DELIVERED
            claimed = await conn.execute(
                update(Message)
                .where(Message.id == row.id, _due(now))
                .values(
                    sent_copy_status=row.sent_copy_status
                    if late
                    else "pending"
                    if delivered
                    else "skipped",
                    sent_copy_next_at=until if delivered else None,
                )
            )
            await conn.commit()
            if claimed.rowcount and delivered:
                return await _load(engine, row.id, late_sweep=late)
    return None


async def _load(engine: AsyncEngine, message_id: int, *, late_sweep: bool) -> SentCopyJob | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(
                    Message.id,
                    Message.user_id,
                    Message.sent_copy_attempts,
                    Message.message_id_header,
                    Message.from_address,
                    Message.subject,
                    Message.html_body,
                    Message.text_body,
                    Message.created_at,
                    Message.raw_source,
                ).where(Message.id == message_id)
            )
        ).one_or_none()
        if row is None:
            return None
        people = await recipients_of(conn, message_id)

    return SentCopyJob(
        message_id=row.id,
        user_id=row.user_id,
        attempts=row.sent_copy_attempts,
        message_id_header=row.message_id_header,
        from_address=row.from_address,
        subject=row.subject,
        html=row.html_body,
        text=row.text_body,
        created_at=row.created_at,
        to=in_field(people, "to"),
        cc=in_field(people, "cc"),
        bcc=in_field(people, "bcc"),
        late_sweep=late_sweep,
        raw_source=row.raw_source,
    )


async def record(
    engine: AsyncEngine,
    message_id: int,
    status: str,
    *,
    error: str = "",
    removed: int = 0,
    retry_at: datetime | None = None,
    counts_attempt: bool = True,
) -> None:
    """The outcome of one try: done (with a late sweep at `retry_at`, or none), pending
    again at `retry_at`, failed or skipped."""
    if status not in STATUSES or (status == "pending" and retry_at is None):
        raise ValueError(f"bad sent-copy outcome {status!r} (retry_at={retry_at})")
    if status not in ("pending", "done"):
        retry_at = None
    values: dict[str, object] = {
        "sent_copy_status": status,
        "sent_copy_error": error[:500],
        "sent_copy_next_at": retry_at,
    }
    if counts_attempt:
        values["sent_copy_attempts"] = Message.sent_copy_attempts + 1
    if status == "done":
        values["sent_copy_removed"] = Message.sent_copy_removed + removed
    async with engine.begin() as conn:
        await conn.execute(update(Message).where(Message.id == message_id).values(**values))


async def state_of(engine: AsyncEngine, user_id: int, message_id: int) -> SentCopyState | None:
    """The clean copy's state for the message page; None unless it is the user's (S7)."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(
                    Message.sent_copy_status,
                    Message.sent_copy_error,
                    Message.sent_copy_removed,
                    Message.sent_copy_attempts,
                ).where(Message.id == message_id, Message.user_id == user_id)
            )
        ).one_or_none()
    if row is None:
        return None
    return SentCopyState(
        row.sent_copy_status, row.sent_copy_error, row.sent_copy_removed, row.sent_copy_attempts
    )


async def retry_failed(engine: AsyncEngine, user_id: int, since: datetime, now: datetime) -> int:
    """The user changed their IMAP settings: failed Sent copies of messages sent since
    `since` are tried again from the start; how many."""
    async with engine.begin() as conn:
        result = await conn.execute(
            update(Message)
            .where(
                Message.user_id == user_id,
                Message.sent_copy_status == "failed",
                Message.created_at >= since,
            )
            .values(
                sent_copy_status="pending",
                sent_copy_next_at=now,
                sent_copy_attempts=0,
                sent_copy_error="",
            )
        )
        return int(result.rowcount or 0)
