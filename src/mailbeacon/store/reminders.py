"""Follow-up reminders in the database (B5): create, find due ones, claim them.

Every change of state is a conditional UPDATE (`WHERE state = 'pending'`), so
a reminder fires at most once however many workers run and however often they
restart: the one whose UPDATE changed the row raises the notification, in the
same transaction, and nobody else does. The notification's unique
`reminder_id` backs that up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Exists

from mailbeacon.core.reminders import Condition, Progress, Rule, State, due_at, trackable
from mailbeacon.store.db import sessions
from mailbeacon.store.tables import Message, Notification, Recipient, Reminder, User


@dataclass(frozen=True, slots=True)
class PendingReminder:
    """A pending reminder with what decides its fate (core.reminders.decide)."""

    id: int
    user_id: int
    message_id: int
    recipient_id: int
    condition: Condition
    due_at: datetime
    progress: Progress


@dataclass(frozen=True, slots=True)
class FiredReminder:
    """A reminder this worker fired, with what the email to the user needs."""

    id: int
    user_id: int
    message_id: int
    condition: Condition
    days: int
    email_me: bool
    user_email: str
    user_name: str
    locale: str
    timezone: str
    recipient_name: str
    recipient_address: str
    subject: str


async def create(db: AsyncSession, user_id: int, message_id: int, rule: Rule) -> list[int]:
    """One pending reminder per recipient of the user's message; their ids.

    Due `rule.days` days after the message was written, at the same local
    time in the user's zone. Nothing is created when the message cannot tell
    whether the condition was met (opens not tracked for "not opened"), nor
    for a message that is not the user's (S7).
    """
    message = await db.scalar(
        select(Message).where(Message.id == message_id, Message.user_id == user_id)
    )
    user = await db.get(User, user_id)
    if message is None or user is None:
        return []
    if not trackable(rule.condition, message.track_opens, message.track_links):
        return []
    due = due_at(message.created_at, rule.days, user.timezone)
    recipient_ids = (
        await db.scalars(select(Recipient.id).where(Recipient.message_id == message_id))
    ).all()
    rows = [
        Reminder(
            user_id=user_id,
            message_id=message_id,
            recipient_id=recipient_id,
            condition=rule.condition.value,
            days=rule.days,
            email_me=rule.email_me,
            created_at=message.created_at,
            due_at=due,
            state=State.PENDING.value,
        )
        for recipient_id in recipient_ids
    ]
    db.add_all(rows)
    await db.flush()
    return [row.id for row in rows]


def _met_clause(condition: Condition) -> ColumnElement[bool]:
    """SQL twin of core.reminders.condition_met, for the sweep that closes met reminders."""
    replied = Recipient.replied_at.is_not(None)
    if condition is Condition.NOT_OPENED:
        return or_(replied, Recipient.open_count > 0, Recipient.click_count > 0)
    if condition is Condition.NOT_CLICKED:
        return or_(replied, Recipient.click_count > 0)
    return replied


async def close_met(engine: AsyncEngine, now: datetime) -> int:
    """Mark every pending reminder whose condition is met "met", due or not; how many.

    Three set-based UPDATEs on the (state, due_at) index: a reminder stops as
    soon as its reader opens, clicks or replies, without a row-by-row scan.
    """
    closed = 0
    async with sessions(engine)() as db, db.begin():
        for condition in Condition:
            met = _met(condition)
            result = await db.execute(
                update(Reminder)
                .where(
                    Reminder.state == State.PENDING.value,
                    Reminder.condition == condition.value,
                    met,
                )
                .values(state=State.MET.value, closed_at=now)
                .execution_options(synchronize_session=False)
            )
            closed += int(getattr(result, "rowcount", 0) or 0)
    return closed


async def due(
    engine: AsyncEngine,
    now: datetime,
    limit: int = 100,
    *,
    after: tuple[datetime, int] | None = None,
) -> list[PendingReminder]:
    """Pending reminders due by `now`, oldest first, with their copy's progress.

    `after` is the (due_at, id) of the last one of the previous batch, so one
    step walks every due reminder once, even those left waiting.
    """
    query = (
        select(Reminder, Recipient)
        .join(Recipient, Recipient.id == Reminder.recipient_id)
        .where(Reminder.state == State.PENDING.value, Reminder.due_at <= now)
    )
    if after is not None:
        query = query.where(
            or_(
                Reminder.due_at > after[0],
                and_(Reminder.due_at == after[0], Reminder.id > after[1]),
            )
        )
    async with sessions(engine)() as db:
        rows = await db.execute(query.order_by(Reminder.due_at, Reminder.id).limit(limit))
        return [
            PendingReminder(
                id=reminder.id,
                user_id=reminder.user_id,
                message_id=reminder.message_id,
                recipient_id=reminder.recipient_id,
                condition=Condition(reminder.condition),
                due_at=reminder.due_at,
                progress=Progress(
                    open_count=recipient.open_count,
                    click_count=recipient.click_count,
                    replied=recipient.replied_at is not None,
                    status=recipient.status,
                ),
            )
            for reminder, recipient in rows
        ]


async def close(engine: AsyncEngine, reminder_id: int, state: State, now: datetime) -> bool:
    """Move a pending reminder to met or cancelled; False when it was no longer pending."""
    async with sessions(engine)() as db, db.begin():
        result = await db.execute(
            update(Reminder)
            .where(Reminder.id == reminder_id, Reminder.state == State.PENDING.value)
            .values(state=state.value, closed_at=now)
            .execution_options(synchronize_session=False)
        )
    return bool(getattr(result, "rowcount", 0))


def _met(condition: Condition) -> Exists:
    """Whether a reminder's copy has met `condition` (a correlated EXISTS)."""
    return exists().where(
        Recipient.id == Reminder.recipient_id,
        _met_clause(condition),
    )


async def fire(
    engine: AsyncEngine, reminder_id: int, condition: Condition, now: datetime
) -> FiredReminder | None:
    """Claim a pending reminder and raise its notification, in one transaction.

    None when another worker (or an earlier run of this one) claimed it first,
    or when its reader did what it waits for since it was read: the conditional
    UPDATE changes the row for exactly one caller, and only while unmet.
    """
    async with sessions(engine)() as db, db.begin():
        result = await db.execute(
            update(Reminder)
            .where(
                Reminder.id == reminder_id,
                Reminder.state == State.PENDING.value,
                Reminder.condition == condition.value,
                ~_met(condition),
            )
            .values(state=State.FIRED.value, fired_at=now)
            .execution_options(synchronize_session=False)
        )
        if not getattr(result, "rowcount", 0):
            return None
        reminder = await db.get_one(Reminder, reminder_id)
        if reminder.email_me:
            # Under the claim: at most one email, even if the worker dies before sending.
            reminder.email_status = "sending"
        db.add(
            Notification(
                user_id=reminder.user_id,
                message_id=reminder.message_id,
                recipient_id=reminder.recipient_id,
                kind="reminder",
                occurred_at=now,
                reminder_id=reminder.id,
            )
        )
        row = (
            await db.execute(
                select(User, Recipient, Message)
                .join(Message, Message.user_id == User.id)
                .join(Recipient, Recipient.message_id == Message.id)
                .where(
                    User.id == reminder.user_id,
                    Message.id == reminder.message_id,
                    Recipient.id == reminder.recipient_id,
                )
            )
        ).one()
        user, recipient, message = row
        return FiredReminder(
            id=reminder.id,
            user_id=user.id,
            message_id=message.id,
            condition=Condition(reminder.condition),
            days=reminder.days,
            email_me=reminder.email_me,
            user_email=user.email,
            user_name=user.display_name,
            locale=user.locale,
            timezone=user.timezone,
            recipient_name=recipient.name,
            recipient_address=recipient.address,
            subject=message.subject,
        )


async def record_email(engine: AsyncEngine, reminder_id: int, error: str) -> None:
    """The outcome of the email to the user themselves: sent, or failed with the server's words."""
    async with sessions(engine)() as db, db.begin():
        await db.execute(
            update(Reminder)
            .where(Reminder.id == reminder_id)
            .values(email_status="failed" if error else "sent", email_error=error)
        )


async def reminders_of(db: AsyncSession, user_id: int, message_id: int) -> list[Reminder]:
    """A message's reminders (its owner's only, S7), by recipient."""
    rows = await db.scalars(
        select(Reminder)
        .where(Reminder.user_id == user_id, Reminder.message_id == message_id)
        .order_by(Reminder.recipient_id)
    )
    return list(rows)
