"""The durable send queue: which copies still have to go out, and who is sending them.

A message to send has one `send_jobs` row until every copy has a final
outcome. Workers claim a due job under a lease (PostgreSQL: `FOR UPDATE SKIP
LOCKED`; SQLite: a `BEGIN IMMEDIATE` transaction of a few statements), renew the
lease while they work, and give the job back when they are done or have to
wait for a retry. Every function here is one short transaction: nothing slow
(rendering, SMTP) ever runs while a write lock is held.

A copy's life (the `status` of its recipient row):

    queued --mark_sending--> sending --record--> sent | failed | unknown
       ^                        |
       +--- transient failure --+  (attempts + 1, next_attempt_at later)

A copy found "sending" by the next holder of the job was in the hands of a
worker that died: its DATA may have been accepted, so it is never sent again
(at most once) and is recorded "unknown" with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mailbeacon.core.mime import FileAttachment
from mailbeacon.store.tables import Attachment, Link, Message, Recipient, SendJob, User

FINAL = ("sent", "failed", "unknown")
INTERRUPTED = (
    "The sending worker stopped while handing this copy to the mail server. It may or may "
    "not have been delivered, so it was not sent again."
)


@dataclass(frozen=True, slots=True)
class CopyTarget:
    """One recipient whose copy is due."""

    id: int
    address: str
    attempts: int


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """What the worker needs to render every copy of a message."""

    id: int
    user_id: int
    message_id_header: str
    from_address: str
    subject: str
    html: str | None
    text: str | None
    track_opens: bool
    track_links: bool
    created_at: datetime
    to: tuple[tuple[str, str], ...]  # (address, name) in the To header
    cc: tuple[tuple[str, str], ...]
    links: tuple[tuple[int, str], ...]  # (link id, url), the honeypot left out
    honeypot: tuple[int, str] | None = None  # (link id, url) of the invisible link (B3)
    # A submitted message's bytes (B12): copies are made from these, not from the bodies.
    raw_source: bytes | None = None
    # Files the composer attached (B13): stored once, read once per claim, in every copy.
    attachments: tuple[FileAttachment, ...] = ()
    # Every recipient's (address, name), Bcc included: template placeholders (B13).
    names: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Progress:
    """A message's delivery state, as the pages show it."""

    id: int
    status: str
    done: int
    total: int


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A checked message, ready to queue (`mail.sending` builds it)."""

    user_id: int
    message_id_header: str
    from_address: str
    subject: str
    html: str | None
    text: str | None
    requested_opens: bool
    requested_links: bool
    track_opens: bool
    track_links: bool
    untracked_reasons: list[str]
    recipients: tuple[tuple[str, str, str], ...]  # (field, address, name)
    links: tuple[str, ...]
    honeypot_url: str | None = None  # where the invisible link leads (its own Link row)
    source: str = "composer"  # or "smtp": submitted by a mail client (B12)
    raw_source: bytes | None = None
    # The toggles used become the next defaults (S6); a mail client's header does not.
    remember_toggles: bool = True
    attachments: tuple[FileAttachment, ...] = ()
    # Send later (B13): the job waits until then; None sends at once.
    send_at: datetime | None = None


async def enqueue(engine: AsyncEngine, new: NewMessage, now: datetime) -> int:
    """Store the message, its recipients, links and job in one short transaction; its id.

    The toggles used become the user's defaults for the next email (S6).
    Plain inserts, not ORM objects: a thousand links cost a few milliseconds.
    """
    async with engine.begin() as conn:
        if new.remember_toggles:
            await conn.execute(
                update(User)
                .where(User.id == new.user_id)
                .values(last_track_opens=new.requested_opens, last_track_links=new.requested_links)
            )
        message_id = await conn.scalar(
            insert(Message)
            .values(
                user_id=new.user_id,
                message_id_header=new.message_id_header,
                from_address=new.from_address,
                subject=new.subject,
                html_body=new.html,
                text_body=new.text,
                requested_opens=new.requested_opens,
                requested_links=new.requested_links,
                track_opens=new.track_opens,
                track_links=new.track_links,
                untracked_reasons=new.untracked_reasons,
                source=new.source,
                raw_source=new.raw_source,
                status="queued",
                created_at=now,
                copies_done=0,
                copies_total=len(new.recipients),
                open_count=0,
                click_count=0,
            )
            .returning(Message.id)
        )
        assert message_id is not None
        await conn.execute(
            insert(Recipient),
            [
                {
                    "message_id": message_id,
                    "field": field,
                    "address": address,
                    "name": name,
                    "status": "queued",
                    "error": "",
                    "attempts": 0,
                    "open_count": 0,
                    "click_count": 0,
                }
                for field, address, name in new.recipients
            ],
        )
        if new.links:
            await conn.execute(
                insert(Link),
                [{"message_id": message_id, "url": url, "click_count": 0} for url in new.links],
            )
        if new.honeypot_url is not None:
            await conn.execute(
                insert(Link).values(
                    message_id=message_id, url=new.honeypot_url, honeypot=True, click_count=0
                )
            )
        if new.attachments:
            await conn.execute(
                insert(Attachment),
                [
                    {
                        "message_id": message_id,
                        "filename": item.filename,
                        "content_type": item.content_type,
                        "size": len(item.data),
                        "data": item.data,
                    }
                    for item in new.attachments
                ],
            )
        run_after = max(now, new.send_at) if new.send_at is not None else now
        await conn.execute(
            insert(SendJob).values(
                message_id=message_id, run_after=run_after, lease_owner="", created_at=now
            )
        )
        return int(message_id)


def _is_sqlite(conn: AsyncConnection) -> bool:
    return conn.dialect.name == "sqlite"


async def claim_next(engine: AsyncEngine, owner: str, now: datetime, lease: float) -> int | None:
    """Take the oldest due job whose lease is free or expired; None when nothing is due."""
    due = and_(
        SendJob.run_after <= now,
        or_(SendJob.lease_expires_at.is_(None), SendJob.lease_expires_at < now),
    )
    async with engine.connect() as conn:
        if _is_sqlite(conn):
            # Take the write lock now: a deferred transaction that reads first
            # and writes later can fail to upgrade instead of waiting.
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
        found = await conn.scalar(
            select(SendJob.message_id)
            .where(due)
            .order_by(SendJob.run_after, SendJob.message_id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if found is None:
            await conn.rollback()
            return None
        await conn.execute(
            update(SendJob)
            .where(SendJob.message_id == found)
            .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease))
        )
        await conn.execute(
            update(Message)
            .where(Message.id == found, Message.status == "queued")
            .values(status="sending")
        )
        await conn.commit()
        return int(found)


async def renew(
    engine: AsyncEngine, message_id: int, owner: str, now: datetime, lease: float
) -> bool:
    """Extend our lease; False when it is no longer ours (another worker took over)."""
    async with engine.begin() as conn:
        return await _renew(conn, message_id, owner, now, lease)


async def _renew(
    conn: AsyncConnection, message_id: int, owner: str, now: datetime, lease: float
) -> bool:
    result = await conn.execute(
        update(SendJob)
        .where(SendJob.message_id == message_id, SendJob.lease_owner == owner)
        .values(lease_expires_at=now + timedelta(seconds=lease))
    )
    return bool(result.rowcount)


async def settle_interrupted(engine: AsyncEngine, message_id: int, now: datetime) -> int:
    """Copies a dead worker left "sending" become "unknown" (never sent twice); how many."""
    async with engine.begin() as conn:
        result = await conn.execute(
            update(Recipient)
            .where(Recipient.message_id == message_id, Recipient.status == "sending")
            .values(status="unknown", error=INTERRUPTED, next_attempt_at=None)
        )
        await _count_done(conn, message_id)
        return int(result.rowcount or 0)


async def load_queued(engine: AsyncEngine, message_id: int) -> QueuedMessage | None:
    """The message as the worker renders it (bodies, headers, tracked links)."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(
                    Message.id,
                    Message.user_id,
                    Message.message_id_header,
                    Message.from_address,
                    Message.subject,
                    Message.html_body,
                    Message.text_body,
                    Message.track_opens,
                    Message.track_links,
                    Message.created_at,
                    Message.raw_source,
                ).where(Message.id == message_id)
            )
        ).one_or_none()
        if row is None:
            return None
        people = await recipients_of(conn, message_id)
        links = (
            await conn.execute(
                select(Link.id, Link.url, Link.honeypot)
                .where(Link.message_id == message_id)
                .order_by(Link.id)
            )
        ).all()
        files = (
            await conn.execute(
                select(Attachment.filename, Attachment.content_type, Attachment.data)
                .where(Attachment.message_id == message_id)
                .order_by(Attachment.id)
            )
        ).all()
    return QueuedMessage(
        id=row.id,
        user_id=row.user_id,
        message_id_header=row.message_id_header,
        from_address=row.from_address,
        subject=row.subject,
        html=row.html_body,
        text=row.text_body,
        track_opens=row.track_opens,
        track_links=row.track_links,
        created_at=row.created_at,
        to=in_field(people, "to"),
        cc=in_field(people, "cc"),
        links=tuple((link.id, link.url) for link in links if not link.honeypot),
        honeypot=next(((link.id, link.url) for link in links if link.honeypot), None),
        raw_source=row.raw_source,
        attachments=tuple(FileAttachment(f.filename, f.content_type, f.data) for f in files),
        names=tuple((p.address, p.name) for p in people),
    )


async def recipients_of(conn: AsyncConnection, message_id: int) -> Sequence[Any]:
    """The message's recipients as written (address, name, field), in recipient order."""
    result = await conn.execute(
        select(Recipient.address, Recipient.name, Recipient.field)
        .where(Recipient.message_id == message_id)
        .order_by(Recipient.id)
    )
    return result.all()


def in_field(people: Sequence[Any], field: str) -> tuple[tuple[str, str], ...]:
    """(address, name) of the recipients in one field: to, cc or bcc."""
    return tuple((p.address, p.name) for p in people if p.field == field)


async def due_copies(engine: AsyncEngine, message_id: int, now: datetime) -> list[CopyTarget]:
    """The message's queued copies whose next attempt is due, in recipient order."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(Recipient.id, Recipient.address, Recipient.attempts)
                .where(
                    Recipient.message_id == message_id,
                    Recipient.status == "queued",
                    or_(Recipient.next_attempt_at.is_(None), Recipient.next_attempt_at <= now),
                )
                .order_by(Recipient.id)
            )
        ).all()
    return [CopyTarget(r.id, r.address, r.attempts) for r in rows]


async def mark_sending(
    engine: AsyncEngine,
    message_id: int,
    recipient_id: int,
    owner: str,
    now: datetime,
    lease: float,
) -> bool:
    """Claim one copy for an SMTP transaction; False if the job or the copy is not ours."""
    async with engine.begin() as conn:
        if not await _renew(conn, message_id, owner, now, lease):
            return False
        result = await conn.execute(
            update(Recipient)
            .where(Recipient.id == recipient_id, Recipient.status == "queued")
            .values(status="sending", attempts=Recipient.attempts + 1)
        )
        return bool(result.rowcount)


async def record_outcome(
    engine: AsyncEngine,
    message_id: int,
    recipient_id: int,
    status: str,
    error: str,
    now: datetime,
    retry_at: datetime | None = None,
    *,
    outbox: bool = False,
) -> None:
    """What became of one copy: sent, failed, unknown, or queued again until `retry_at`.

    It overwrites "unknown" too: the worker that ran the transaction knows better
    than a successor who only saw it "sending". `outbox`: the copy went into the
    embedded outbox (the processor lets the sender's browser read it as the
    recipient, B2).
    """
    async with engine.begin() as conn:
        await conn.execute(
            update(Recipient)
            .where(Recipient.id == recipient_id, Recipient.status.in_(("sending", "unknown")))
            .values(
                status=status,
                error=error,
                sent_at=now if status == "sent" else None,
                next_attempt_at=retry_at,
                outbox=outbox and status == "sent",
            )
        )
        await _count_done(conn, message_id)


async def defer_queued(
    engine: AsyncEngine, message_id: int, error: str, retry_at: datetime
) -> None:
    """The mail server cannot be reached: every waiting copy waits until `retry_at`."""
    async with engine.begin() as conn:
        await conn.execute(
            update(Recipient)
            .where(Recipient.message_id == message_id, Recipient.status == "queued")
            .values(error=error, next_attempt_at=retry_at)
        )


async def release(engine: AsyncEngine, message_id: int, owner: str, now: datetime) -> str:
    """Give the job back: finished (final message status) or due again later; the status."""
    async with engine.begin() as conn:
        counts = dict(
            (
                await conn.execute(
                    select(Recipient.status, func.count())
                    .where(Recipient.message_id == message_id)
                    .group_by(Recipient.status)
                )
            ).all()
        )
        waiting = sum(n for status, n in counts.items() if status not in FINAL)
        if waiting:
            next_at = await conn.scalar(
                select(func.min(Recipient.next_attempt_at)).where(
                    Recipient.message_id == message_id, Recipient.status == "queued"
                )
            )
            await conn.execute(
                update(SendJob)
                .where(SendJob.message_id == message_id, SendJob.lease_owner == owner)
                .values(run_after=next_at or now, lease_owner="", lease_expires_at=None)
            )
            return "sending"
        total = sum(counts.values())
        sent = counts.get("sent", 0)
        failed = counts.get("failed", 0)
        final = "sent" if sent == total else "failed" if failed == total else "partial"
        await conn.execute(
            update(Message).where(Message.id == message_id).values(status=final, sent_at=now)
        )
        await conn.execute(delete(SendJob).where(SendJob.message_id == message_id))
        return final


async def _count_done(conn: AsyncConnection, message_id: int) -> None:
    done = (
        select(func.count())
        .where(Recipient.message_id == message_id, Recipient.status.in_(FINAL))
        .scalar_subquery()
    )
    await conn.execute(update(Message).where(Message.id == message_id).values(copies_done=done))


async def next_due(engine: AsyncEngine, now: datetime) -> datetime | None:
    """When the earliest job becomes due (now or later); None with an empty queue."""
    async with engine.connect() as conn:
        run_after = await conn.scalar(select(func.min(SendJob.run_after)))
        expiring = await conn.scalar(
            select(func.min(SendJob.lease_expires_at)).where(SendJob.lease_expires_at > now)
        )
    moments = [m for m in (run_after, expiring) if m is not None]
    return min(moments) if moments else None


async def progress(engine: AsyncEngine, user_id: int, message_ids: list[int]) -> list[Progress]:
    """Delivery state of the user's own messages among `message_ids` (others: absent, S7)."""
    if not message_ids:
        return []
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(Message.id, Message.status, Message.copies_done, Message.copies_total).where(
                    Message.user_id == user_id, Message.id.in_(message_ids)
                )
            )
        ).all()
    return [Progress(r.id, r.status, r.copies_done, r.copies_total) for r in rows]


async def send_again(engine: AsyncEngine, user_id: int, message_id: int, now: datetime) -> int:
    """Queue the failed copies of a user's failed or partial message again; how many.

    Only copies refused for good ("failed") go again: a delivered copy never does, nor an
    "unknown" one (it may have arrived), so nobody gets the email twice. The message leaves
    its final status in the same transaction, so a second click (or a second tab) finds
    nothing to do and queues nothing.
    """
    async with engine.begin() as conn:
        claimed = await conn.execute(
            update(Message)
            .where(
                Message.id == message_id,
                Message.user_id == user_id,
                Message.status.in_(("failed", "partial")),
                select(Recipient.id)
                .where(Recipient.message_id == message_id, Recipient.status == "failed")
                .exists(),
            )
            .values(status="queued", sent_at=None)
        )
        if claimed.rowcount != 1:
            return 0
        again = await conn.execute(
            update(Recipient)
            .where(Recipient.message_id == message_id, Recipient.status == "failed")
            .values(status="queued", error="", attempts=0, next_attempt_at=None)
        )
        await _count_done(conn, message_id)
        await conn.execute(
            insert(SendJob).values(
                message_id=message_id, run_after=now, lease_owner="", created_at=now
            )
        )
        return int(again.rowcount)
