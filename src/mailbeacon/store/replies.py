"""Recording what the sender's inbox says about their mail (B11), and reading it back.

`record` takes one analysed inbox message (core.replies) and, in the caller's
transaction, stores the fact: which of *this user's* messages it refers to
(matched by Message-ID, never across users: S7), which recipient it came
from (or none: "not a recipient"), and what follows:

- a reply: the recipient is "replied" (first time, count); a recipient with no
  counted open gets one (open_count 0 -> 1, the inferred-open counter + 1):
  someone who answered has read the mail; the user is notified;
- an auto-reply: labelled on the recipient, neither counted nor notified;
- a bounce: the failed recipients are "bounced" with the status code and the
  server's words; the user is notified. `recipients.status` stays the send
  queue's (it decides when a job is finished); "bounced" is read from
  `bounced_at` (see `delivery_status`), so a bounce that arrives while other
  copies are still being sent can never keep the job waiting.

Each row carries a `source_key` unique per user, so reading the same inbox
message again (after a restart, or a UIDVALIDITY change) records nothing twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mailbeacon.core.replies import InboxMessage, Kind
from mailbeacon.store.tables import Mailbox, Message, Notification, Recipient, Reply, User

MAX_DETAIL = 500
# A Date header this far in the past of the message it answers is a wrong clock.
SKEW = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Recorded:
    """One reply row stored by `record`."""

    reply_id: int
    kind: str
    message_id: int
    recipient_id: int | None


@dataclass(frozen=True, slots=True)
class InboxState:
    """How the inbox watch is doing, for Settings: when it last read, its last error."""

    synced_at: datetime | None
    error: str  # words from mail.imap (an N_ message id), "" when the last attempt worked


async def inbox_state(db: AsyncSession, user_id: int) -> InboxState | None:
    """None when IMAP is not set up: nothing is watched."""
    mailbox = await db.get(Mailbox, user_id)
    if mailbox is None or not mailbox.imap_host:
        return None
    return InboxState(mailbox.inbox_synced_at, mailbox.inbox_error)


@dataclass(frozen=True, slots=True)
class ReplyLine:
    """A reply as a tooltip or the API shows it."""

    id: int
    kind: str
    recipient_id: int | None
    from_address: str
    from_name: str
    received_at: datetime
    status_code: str
    detail: str


async def _our_message(
    db: AsyncSession, user_id: int, message_ids: Sequence[str]
) -> Message | None:
    """The user's message named first in `message_ids` (In-Reply-To before References)."""
    wanted = [m for m in message_ids if m][:60]
    if not wanted:
        return None
    rows = (
        await db.scalars(
            select(Message).where(Message.user_id == user_id, Message.message_id_header.in_(wanted))
        )
    ).all()
    by_id = {row.message_id_header: row for row in rows}
    for candidate in wanted:
        if candidate in by_id:
            return by_id[candidate]
    return None


async def _recipient(db: AsyncSession, message_id: int, address: str) -> Recipient | None:
    if not address:
        return None
    return await db.scalar(
        select(Recipient)
        .where(Recipient.message_id == message_id, func.lower(Recipient.address) == address)
        .order_by(Recipient.id)
        .limit(1)
    )


async def _exists(db: AsyncSession, user_id: int, source_key: str) -> bool:
    found = await db.scalar(
        select(Reply.id).where(Reply.user_id == user_id, Reply.source_key == source_key)
    )
    return found is not None


def _moment(found: InboxMessage, message: Message, fallback: datetime) -> datetime:
    """The reply's Date, unless it is missing, in the future or before our message."""
    if found.date is None or found.date > fallback:
        return fallback
    if found.date < message.created_at - SKEW:
        return fallback
    return found.date


async def record(
    db: AsyncSession, user_id: int, found: InboxMessage, source_key: str, now: datetime
) -> list[Recorded]:
    """Store what `found` says about the user's mail; [] when it concerns none of it.

    `source_key` names the inbox message (its Message-ID, else UIDVALIDITY:UID);
    `now` stands in for a missing or unbelievable Date.
    """
    if found.kind is Kind.BOUNCE and found.bounce is not None:
        return await _record_bounce(db, user_id, found, source_key, now)
    if found.kind not in (Kind.REPLY, Kind.AUTO_REPLY):
        return []
    message = await _our_message(db, user_id, found.references)
    if message is None:
        return []
    if found.from_address and found.from_address == _address_of(message.from_address):
        return []  # the user's own follow-up, seen in their inbox
    key = source_key[:400]
    if await _exists(db, user_id, key):
        return []
    recipient = await _recipient(db, message.id, found.from_address)
    at = _moment(found, message, now)
    counted_open = False
    if found.kind is Kind.REPLY:
        counted_open = await _count_reply(db, message, recipient, at)
    elif recipient is not None:
        await db.execute(
            update(Recipient)
            .where(Recipient.id == recipient.id, Recipient.auto_replied_at.is_(None))
            .values(auto_replied_at=at)
        )
    row = Reply(
        user_id=user_id,
        message_id=message.id,
        recipient_id=recipient.id if recipient else None,
        kind=found.kind.value,
        from_address=found.from_address,
        from_name=found.from_name,
        received_at=at,
        status_code="",
        detail=found.auto_reason[:MAX_DETAIL],
        counted_open=counted_open,
        source_key=key,
        created_at=now,
    )
    db.add(row)
    await db.flush()
    if found.kind is Kind.REPLY:
        await _notify(db, user_id, row)
    return [Recorded(row.id, row.kind, message.id, row.recipient_id)]


def _address_of(value: str) -> str:
    """The addr-spec of a stored From ("Name <a@b>" or "a@b"), lower-cased."""
    start, end = value.rfind("<"), value.rfind(">")
    if 0 <= start < end:
        value = value[start + 1 : end]
    return value.strip().lower()


async def _count_reply(
    db: AsyncSession, message: Message, recipient: Recipient | None, at: datetime
) -> bool:
    """Mark the recipient replied; count an open where none was. True when one was counted."""
    await db.execute(
        update(Message)
        .where(Message.id == message.id)
        .values(
            reply_count=Message.reply_count + 1,
            last_reply_at=case(
                (or_(Message.last_reply_at.is_(None), Message.last_reply_at < at), at),
                else_=Message.last_reply_at,
            ),
        )
    )
    if recipient is None:
        return False
    await db.execute(
        update(Recipient)
        .where(Recipient.id == recipient.id)
        .values(
            reply_count=Recipient.reply_count + 1,
            replied_at=case(
                (or_(Recipient.replied_at.is_(None), Recipient.replied_at > at), at),
                else_=Recipient.replied_at,
            ),
        )
    )
    # Whoever answered has read it: an open, if none was counted (one statement,
    # so a processor round counting a real open meanwhile cannot make it two).
    counted = await db.execute(
        update(Recipient)
        .where(Recipient.id == recipient.id, Recipient.open_count == 0)
        .values(
            open_count=1,
            first_open_at=at,
            last_open_at=at,
            inferred_open_count=Recipient.inferred_open_count + 1,
        )
    )
    if not getattr(counted, "rowcount", 0):
        return False
    await db.execute(
        update(Message)
        .where(Message.id == message.id)
        .values(
            open_count=Message.open_count + 1,
            first_open_at=case(
                (or_(Message.first_open_at.is_(None), Message.first_open_at > at), at),
                else_=Message.first_open_at,
            ),
            last_open_at=case(
                (or_(Message.last_open_at.is_(None), Message.last_open_at < at), at),
                else_=Message.last_open_at,
            ),
        )
    )
    return True


async def _record_bounce(
    db: AsyncSession, user_id: int, found: InboxMessage, source_key: str, now: datetime
) -> list[Recorded]:
    assert found.bounce is not None
    message = await _our_message(db, user_id, [found.bounce.original_message_id, *found.references])
    if message is None:
        return []
    recipients = (
        await db.scalars(
            select(Recipient).where(Recipient.message_id == message.id).order_by(Recipient.id)
        )
    ).all()
    by_address = {r.address.lower(): r for r in recipients}
    recorded: list[Recorded] = []
    for failed in found.bounce.failed:
        recipient = by_address.get(failed.address)
        if recipient is None and len(recipients) == 1 and len(found.bounce.failed) == 1:
            recipient = recipients[0]  # an alias rewritten on the way: the only copy
        if recipient is None:
            continue
        key = f"{source_key}#{failed.address}"[:400]
        if await _exists(db, user_id, key):
            continue
        at = _moment(found, message, now)
        detail = failed.diagnostic[:MAX_DETAIL]
        first = recipient.bounced_at is None
        await db.execute(
            update(Recipient)
            .where(Recipient.id == recipient.id)
            .values(
                bounced_at=func.coalesce(Recipient.bounced_at, at),
                bounce_status=failed.status[:16],
                bounce_detail=detail,
            )
        )
        if first:
            await db.execute(
                update(Message)
                .where(Message.id == message.id)
                .values(bounce_count=Message.bounce_count + 1)
            )
        row = Reply(
            user_id=user_id,
            message_id=message.id,
            recipient_id=recipient.id,
            kind=Kind.BOUNCE.value,
            from_address=found.from_address,
            from_name=found.from_name,
            received_at=at,
            status_code=failed.status[:16],
            detail=detail,
            counted_open=False,
            source_key=key,
            created_at=now,
        )
        db.add(row)
        await db.flush()
        await _notify(db, user_id, row)
        recorded.append(Recorded(row.id, row.kind, message.id, recipient.id))
    return recorded


async def _notify(db: AsyncSession, user_id: int, row: Reply) -> None:
    """A bell entry for a reply or bounce, when the user wants tracking notifications."""
    wanted = await db.scalar(select(User.notify_tracking).where(User.id == user_id))
    if not wanted:
        return
    db.add(
        Notification(
            user_id=user_id,
            hit_seq=None,
            reply_id=row.id,
            message_id=row.message_id,
            recipient_id=row.recipient_id,
            link_id=None,
            kind="reply" if row.kind == Kind.REPLY.value else "bounce",
            occurred_at=row.received_at,
        )
    )
    await db.flush()


async def reapply_reply_opens(db: AsyncSession) -> int:
    """After the processor rebuilt the aggregates from hits: count again, as an open,
    the reply of every recipient who replied but has no counted open (a rebuild
    knows only hits, and would otherwise forget that whoever answered has read).

    Returns how many recipients got their open back. `inferred_open_count` is not
    touched: a rebuild does not reset it.
    """
    rows = (
        await db.execute(
            select(Recipient.id, Recipient.message_id, Recipient.replied_at).where(
                Recipient.replied_at.is_not(None), Recipient.open_count == 0
            )
        )
    ).all()
    for recipient_id, message_id, at in rows:
        await db.execute(
            update(Recipient)
            .where(Recipient.id == recipient_id, Recipient.open_count == 0)
            .values(open_count=1, first_open_at=at, last_open_at=at)
        )
        await db.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(
                open_count=Message.open_count + 1,
                first_open_at=case(
                    (or_(Message.first_open_at.is_(None), Message.first_open_at > at), at),
                    else_=Message.first_open_at,
                ),
                last_open_at=case(
                    (or_(Message.last_open_at.is_(None), Message.last_open_at < at), at),
                    else_=Message.last_open_at,
                ),
            )
        )
    return len(rows)


def delivery_status(recipient: Recipient) -> str:
    """The copy's delivery status as pages and the API show it: the send queue's, or "bounced"."""
    return "bounced" if recipient.bounced_at is not None else recipient.status


async def replies_for_messages(
    db: AsyncSession, user_id: int, message_ids: Sequence[int], *, per_message: int = 50
) -> dict[int, list[ReplyLine]]:
    """The replies of some of the user's messages, oldest first, by message id."""
    if not message_ids:
        return {}
    rows = (
        await db.scalars(
            select(Reply)
            .where(Reply.user_id == user_id, Reply.message_id.in_(list(message_ids)))
            .order_by(Reply.message_id, Reply.received_at, Reply.id)
        )
    ).all()
    found: dict[int, list[ReplyLine]] = {}
    for row in rows:
        lines = found.setdefault(row.message_id, [])
        if len(lines) < per_message:
            lines.append(
                ReplyLine(
                    id=row.id,
                    kind=row.kind,
                    recipient_id=row.recipient_id,
                    from_address=row.from_address,
                    from_name=row.from_name,
                    received_at=row.received_at,
                    status_code=row.status_code,
                    detail=row.detail,
                )
            )
    return found
