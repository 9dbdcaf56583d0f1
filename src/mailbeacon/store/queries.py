"""Read queries for the mail list, the message page and contacts.

Every query here is scoped by `user_id` (S7, DESIGN rule 4): a message,
recipient or event of another user is simply never selected, so pages can
answer 404 and lists and tooltips can never leak. Each page costs a fixed
number of queries, whatever its size (no N+1): one for the page of rows, one
for their recipients, one for their counted events (capped per row and kind
with a window function, so a message opened ten thousand times still loads
ten lines for its tooltip).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from mailbeacon.store.tables import Event, Link, Message, Recipient

PER_PAGE = 25
CONTACTS_PER_PAGE = 50
TIP_LINES = 10  # counted events loaded per row and kind, for tooltips
TIMELINE_LIMIT = 500  # newest events shown on a message page
MAX_SEARCH = 200
# How a list is ordered: by when it was sent (the default) or by its latest
# counted open, click or reply, newest first, so the hottest mail is on top.
SORT_SENT = "sent"
SORT_ACTIVITY = "activity"
SORTS = frozenset({SORT_SENT, SORT_ACTIVITY})


@dataclass(frozen=True, slots=True)
class Activity:
    """One counted open or click, with who and which link: one tooltip line."""

    kind: str
    occurred_at: datetime
    message_id: int
    recipient_id: int
    address: str
    name: str
    url: str | None


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """Any event of a message, counted or not, for the timeline."""

    kind: str
    verdict: str
    counted: bool
    occurred_at: datetime
    recipient_id: int
    address: str
    name: str
    url: str | None
    user_agent: str
    reason: str = ""  # core.signals.Reason value; verdict holds the class
    duplicate: bool = False  # a repeat of the same client within the dedupe window
    forwarded: bool = False  # possibly forwarded: not the recipient's own
    inferred_open: bool = False  # a counted click that also stands for the open


@dataclass(slots=True)
class MailRow:
    """A message in the list, with its recipients and its newest counted events."""

    message: Message
    recipients: list[Recipient] = field(default_factory=list)
    activity: list[Activity] = field(default_factory=list)


@dataclass(slots=True)
class MailPage:
    """One page of the mail list; `has_any` tells "no mail yet" from "no results"."""

    rows: list[MailRow]
    page: int
    per_page: int
    total: int
    has_any: bool


@dataclass(slots=True)
class MessageView:
    """Everything the message page shows about one of the user's messages."""

    message: Message
    timeline: list[TimelineEntry]
    event_total: int
    activity: list[Activity]
    clicked: dict[int, list[tuple[str, int]]]  # recipient id -> (url, counted clicks)


@dataclass(frozen=True, slots=True)
class ContactRow:
    """An address the user has mailed, with totals over every copy sent to it."""

    address: str
    name: str
    emails: int
    last_sent: datetime | None
    opens: int
    clicks: int
    last_open_at: datetime | None = None
    last_click_at: datetime | None = None
    replies: int = 0
    last_reply_at: datetime | None = None
    last_click_url: str | None = None  # the newest counted click's link (contact list only)


@dataclass(slots=True)
class ContactPage:
    rows: list[ContactRow]
    page: int
    per_page: int
    total: int
    has_any: bool


@dataclass(frozen=True, slots=True)
class ContactMail:
    """One copy sent to the contact: the message and that recipient's own row."""

    message: Message
    recipient: Recipient


@dataclass(slots=True)
class ContactView:
    contact: ContactRow
    mails: list[ContactMail]
    activity: list[Activity]
    page: int
    per_page: int


def like_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, with its own wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _contains(column: Any, text: str) -> ColumnElement[bool]:
    """Case-insensitive substring match with a bound, escaped parameter."""
    condition: ColumnElement[bool] = column.ilike(like_pattern(text), escape="\\")
    return condition


def _tracked() -> ColumnElement[bool]:
    return or_(Message.track_opens, Message.track_links)


def latest(*moments: Any) -> ColumnElement[Any]:
    """The latest of some nullable moments, NULL when all are: one portable CASE.

    PostgreSQL's GREATEST skips NULLs but SQLite's max() returns NULL for any,
    so neither is used; the CASE reads the same on both.
    """
    result: ColumnElement[Any] = moments[0]
    for moment in moments[1:]:
        result = case(
            (result.is_(None), moment),
            (moment.is_(None), result),
            (moment > result, moment),
            else_=result,
        )
    return result


def message_activity() -> ColumnElement[Any]:
    """A message's last counted open, click or reply (the "Last activity" column)."""
    return latest(Message.last_open_at, Message.last_click_at, Message.last_reply_at)


def _mail_order(sort: str) -> tuple[Any, ...]:
    newest_sent = (Message.created_at.desc(), Message.id.desc())
    if sort == SORT_ACTIVITY:
        # Mail with no activity yet goes last, newest sent first among it.
        return (message_activity().desc().nulls_last(), *newest_sent)
    return newest_sent


def _mail_filters(user_id: int, *, tracked: bool, q: str) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [Message.user_id == user_id]
    if tracked:
        where.append(_tracked())
    text = q.strip()[:MAX_SEARCH]
    if text:
        recipient_matches = exists().where(
            Recipient.message_id == Message.id,
            or_(_contains(Recipient.address, text), _contains(Recipient.name, text)),
        )
        where.append(or_(_contains(Message.subject, text), recipient_matches))
    return where


async def mail_page(
    db: AsyncSession,
    user_id: int,
    *,
    page: int = 1,
    tracked: bool = False,
    q: str = "",
    sort: str = SORT_SENT,
    per_page: int = PER_PAGE,
) -> MailPage:
    """A page of the user's sent mail, newest first (sent or last activity), filtered."""
    where = _mail_filters(user_id, tracked=tracked, q=q)
    total = int(await db.scalar(select(func.count(Message.id)).where(*where)) or 0)
    has_any = total > 0 or bool(
        await db.scalar(select(Message.id).where(Message.user_id == user_id).limit(1))
    )
    messages = list(
        await db.scalars(
            select(Message)
            .where(*where)
            .order_by(*_mail_order(sort))
            .offset((page - 1) * per_page)
            .limit(per_page)
        )
    )
    rows = {m.id: MailRow(m) for m in messages}
    if rows:
        for recipient in await _recipients_of(db, user_id, list(rows)):
            rows[recipient.message_id].recipients.append(recipient)
        for line in await counted_activity(
            db, user_id, Event.message_id.in_(list(rows)), per=Event.message_id
        ):
            rows[line.message_id].activity.append(line)
    return MailPage(list(rows.values()), page, per_page, total, has_any)


async def _recipients_of(db: AsyncSession, user_id: int, ids: list[int]) -> Sequence[Recipient]:
    return (
        await db.scalars(
            select(Recipient)
            .join(Message, Message.id == Recipient.message_id)
            .where(Message.user_id == user_id, Recipient.message_id.in_(ids))
            .order_by(Recipient.id)
        )
    ).all()


async def counted_activity(
    db: AsyncSession,
    user_id: int,
    condition: ColumnElement[bool],
    *,
    per: Any,
    limit: int = TIP_LINES,
) -> list[Activity]:
    """Counted events matching `condition`, newest first, at most `limit` per `per` and kind.

    One query: a window function ranks each group's events so only the lines a
    tooltip shows are read; the aggregates on the rows give the full counts.
    """
    rank = (
        func.row_number()
        .over(partition_by=(per, Event.kind), order_by=(Event.occurred_at.desc(), Event.id.desc()))
        .label("rank")
    )
    ranked = (
        select(
            Event.id.label("id"),
            Event.kind.label("kind"),
            Event.occurred_at.label("occurred_at"),
            Event.message_id.label("message_id"),
            Event.recipient_id.label("recipient_id"),
            Event.link_id.label("link_id"),
            rank,
        )
        .join(Message, Message.id == Event.message_id)
        .where(Message.user_id == user_id, Event.counted.is_(True), condition)
        .subquery()
    )
    occurred_at = ranked.c.occurred_at
    result = await db.execute(
        select(
            ranked.c.kind,
            occurred_at,
            ranked.c.message_id,
            ranked.c.recipient_id,
            Recipient.address,
            Recipient.name,
            Link.url,
        )
        .join(Recipient, Recipient.id == ranked.c.recipient_id)
        .outerjoin(Link, Link.id == ranked.c.link_id)
        # A honeypot click is never counted; should one ever be, it still never shows.
        .where(ranked.c.rank <= limit, or_(Link.id.is_(None), Link.honeypot.is_(False)))
        .order_by(occurred_at.desc(), ranked.c.id.desc())
    )
    return [
        Activity(
            kind=kind,
            occurred_at=moment,
            message_id=message_id,
            recipient_id=recipient_id,
            address=address,
            name=name,
            url=url,
        )
        for kind, moment, message_id, recipient_id, address, name, url in result
    ]


async def message_view(db: AsyncSession, user_id: int, message_id: int) -> MessageView | None:
    """One of the user's messages with recipients, links, timeline and tooltips; else None."""
    message = (
        await db.scalars(
            select(Message)
            .where(Message.id == message_id, Message.user_id == user_id)
            .options(selectinload(Message.recipients), selectinload(Message.links))
        )
    ).one_or_none()
    if message is None:
        return None
    recipients = {r.id: r for r in message.recipients}
    # Honeypot links are never shown: only software follows them (B3).
    urls = {link.id: link.url for link in message.links if not link.honeypot}
    events = (
        await db.scalars(
            select(Event)
            .where(Event.message_id == message.id)
            .order_by(Event.occurred_at.desc(), Event.id.desc())
            .limit(TIMELINE_LIMIT)
        )
    ).all()
    timeline = [
        TimelineEntry(
            kind=e.kind,
            verdict=e.verdict,
            counted=e.counted,
            occurred_at=e.occurred_at,
            recipient_id=e.recipient_id,
            address=recipients[e.recipient_id].address if e.recipient_id in recipients else "",
            name=recipients[e.recipient_id].name if e.recipient_id in recipients else "",
            url=urls.get(e.link_id) if e.link_id else None,
            user_agent=e.user_agent,
            reason=e.reason,
            duplicate=e.duplicate,
            forwarded=e.forwarded,
            inferred_open=e.inferred_open,
        )
        for e in events
    ]
    event_total = len(timeline)
    if event_total == TIMELINE_LIMIT:
        event_total = int(
            await db.scalar(select(func.count(Event.id)).where(Event.message_id == message.id)) or 0
        )
    activity = await counted_activity(
        db, user_id, Event.message_id == message.id, per=Event.recipient_id
    )
    return MessageView(
        message, timeline, event_total, activity, await _clicked_links(db, message.id, urls)
    )


async def _clicked_links(
    db: AsyncSession, message_id: int, urls: dict[int, str]
) -> dict[int, list[tuple[str, int]]]:
    """Per recipient, which links they clicked and how often (counted clicks only).

    Called only for a message already checked to belong to the user.
    """
    result = await db.execute(
        select(Event.recipient_id, Event.link_id, func.count(Event.id))
        .where(
            Event.message_id == message_id,
            Event.kind == "click",
            Event.counted.is_(True),
            Event.link_id.is_not(None),
        )
        .group_by(Event.recipient_id, Event.link_id)
        .order_by(Event.recipient_id, Event.link_id)
    )
    clicked: dict[int, list[tuple[str, int]]] = {}
    for recipient_id, link_id, count in result:
        if link_id in urls:
            clicked.setdefault(recipient_id, []).append((urls[link_id], int(count)))
    return clicked


def _contact_key() -> Any:
    return func.lower(Recipient.address)


def _contact_columns() -> tuple[Any, ...]:
    """Totals over every copy sent to one address (case-insensitive)."""
    return (
        func.max(Recipient.address),
        func.max(Recipient.name),
        func.count(func.distinct(Recipient.message_id)),
        func.max(Message.created_at),
        func.coalesce(func.sum(Recipient.open_count), 0),
        func.coalesce(func.sum(Recipient.click_count), 0),
        func.max(Recipient.last_open_at),
        func.max(Recipient.last_click_at),
        func.coalesce(func.sum(Recipient.reply_count), 0),
        func.max(Recipient.replied_at),
    )


def contact_activity() -> ColumnElement[Any]:
    """A contact's last counted open, click or (first) reply over every copy."""
    return func.max(latest(Recipient.last_open_at, Recipient.last_click_at, Recipient.replied_at))


def _contact_row(values: Sequence[Any]) -> ContactRow:
    address, name, emails, last_sent, opens, clicks, last_open, last_click, replies, replied = (
        values
    )
    return ContactRow(
        address=address,
        name=name or "",
        emails=int(emails),
        last_sent=last_sent,
        opens=int(opens),
        clicks=int(clicks),
        last_open_at=last_open,
        last_click_at=last_click,
        replies=int(replies),
        last_reply_at=replied,
    )


async def _newest_clicks(db: AsyncSession, user_id: int, keys: list[str]) -> dict[str, str]:
    """Per contact (lower-cased address), the link of their newest counted click: one query."""
    rank = (
        func.row_number()
        .over(partition_by=_contact_key(), order_by=(Event.occurred_at.desc(), Event.id.desc()))
        .label("rank")
    )
    ranked = (
        select(_contact_key().label("key"), Link.url.label("url"), rank)
        .select_from(Event)
        .join(Message, Message.id == Event.message_id)
        .join(Recipient, Recipient.id == Event.recipient_id)
        .join(Link, Link.id == Event.link_id)
        .where(
            Message.user_id == user_id,
            Event.kind == "click",
            Event.counted.is_(True),
            Link.honeypot.is_(False),
            _contact_key().in_(keys),
        )
        .subquery()
    )
    result = await db.execute(select(ranked.c.key, ranked.c.url).where(ranked.c.rank == 1))
    return {key: url for key, url in result}


async def contact_page(
    db: AsyncSession,
    user_id: int,
    *,
    page: int = 1,
    q: str = "",
    sort: str = SORT_SENT,
    per_page: int = CONTACTS_PER_PAGE,
) -> ContactPage:
    """Every address the user has mailed, most recently mailed (or active) first, searched."""
    mine = and_(Message.id == Recipient.message_id, Message.user_id == user_id)
    where: list[ColumnElement[bool]] = []
    text = q.strip()[:MAX_SEARCH]
    if text:
        matching = (
            select(_contact_key())
            .join(Message, mine)
            .where(or_(_contains(Recipient.address, text), _contains(Recipient.name, text)))
        )
        where.append(_contact_key().in_(matching))
    grouped = select(_contact_key().label("key")).join(Message, mine).where(*where)
    total = int(
        await db.scalar(
            select(func.count()).select_from(grouped.group_by(_contact_key()).subquery())
        )
        or 0
    )
    has_any = total > 0 or bool(await db.scalar(select(Recipient.id).join(Message, mine).limit(1)))
    result = await db.execute(
        select(*_contact_columns(), _contact_key())
        .join(Message, mine)
        .where(*where)
        .group_by(_contact_key())
        .order_by(*_contact_order(sort))
        .offset((page - 1) * per_page)
        .limit(per_page)
    )
    keyed = [(values[-1], _contact_row(values[:-1])) for values in result]
    clicked = await _newest_clicks(db, user_id, [key for key, row in keyed if row.clicks])
    rows = [replace(row, last_click_url=clicked.get(key)) for key, row in keyed]
    return ContactPage(rows, page, per_page, total, has_any)


def _contact_order(sort: str) -> tuple[Any, ...]:
    newest_sent = (func.max(Message.created_at).desc(), _contact_key())
    if sort == SORT_ACTIVITY:
        return (contact_activity().desc().nulls_last(), *newest_sent)
    return newest_sent


async def contact_view(
    db: AsyncSession, user_id: int, address: str, *, page: int = 1, per_page: int = PER_PAGE
) -> ContactView | None:
    """The mail the user sent to one address, each with that copy's own activity; else None."""
    mine = and_(Message.id == Recipient.message_id, Message.user_id == user_id)
    this_address = _contact_key() == address.strip().lower()
    totals = (
        await db.execute(select(*_contact_columns()).join(Message, mine).where(this_address))
    ).one()
    if not totals[2]:
        return None
    result = await db.execute(
        select(Message, Recipient)
        .join(Message, mine)
        .where(this_address)
        .order_by(Message.created_at.desc(), Message.id.desc(), Recipient.id)
        .offset((page - 1) * per_page)
        .limit(per_page)
    )
    mails = [ContactMail(message, recipient) for message, recipient in result]
    recipient_ids = [mail.recipient.id for mail in mails]
    activity = (
        await counted_activity(
            db, user_id, Event.recipient_id.in_(recipient_ids), per=Event.recipient_id
        )
        if recipient_ids
        else []
    )
    return ContactView(_contact_row(totals), mails, activity, page, per_page)
