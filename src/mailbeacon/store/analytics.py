"""The numbers of the analytics page (B6): a few GROUP BY queries, scoped to one user (S7).

What is counted, and why:

- A *copy* is one recipient's own copy of a message (B1). It belongs to the day
  (or week) it was sent, in the user's time zone, and its later opens, clicks
  and replies count for that day: "of what I sent on Tuesday, how much was read".
- Rates are per *delivered* copy: sent and not bounced or failed. A copy that
  never arrived cannot be read, and would only dilute the rate.
- Only counted events feed a number (B3): the recipients' counters (counted
  human and proxy opens and clicks, the processor's aggregates), events with
  `counted` true, and replies of kind "reply" (`recipients.reply_count`);
  prefetches, scanners, the sender's own hits and auto-replies never do.

Cost: each query groups one user's copies of the period in the database and
returns at most a few thousand small rows, whatever the user's history. The
time series is grouped by 15-minute UTC slot (every time zone's offset is a
multiple of 15 minutes), so the day or week in the user's zone is found in
Python from those slots without any zone arithmetic in SQL.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, and_, case, cast, distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailbeacon.core.charts import median
from mailbeacon.core.hits import HitKind
from mailbeacon.store.tables import Event, Link, Message, Recipient

SLOT_SECONDS = 900
TOP = 10
MAX_DAYS = 366
Grouping = Literal["day", "week"]
# Time to first open, in minutes: the upper bound of each bar of the histogram.
FIRST_OPEN_BOUNDS: tuple[int, ...] = (10, 60, 240, 1440, 4320, 10080)


@dataclass(frozen=True, slots=True)
class Period:
    """Whole days in the user's zone, first to last inclusive, and how to group them."""

    first_day: date
    last_day: date
    tz: ZoneInfo
    by: Grouping = "day"

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first_day, time(), self.tz).astimezone(UTC)

    @property
    def end(self) -> datetime:
        """The first moment after the period (exclusive)."""
        return datetime.combine(self.last_day + timedelta(days=1), time(), self.tz).astimezone(UTC)

    def bucket_of(self, day: date) -> date:
        """The first day of the bucket a local day falls in (weeks start on Monday)."""
        return day if self.by == "day" else day - timedelta(days=day.weekday())

    def buckets(self) -> list[date]:
        """Every bucket of the period, empty ones included, so gaps show as gaps."""
        found: list[date] = []
        day = self.first_day
        while day <= self.last_day:
            bucket = self.bucket_of(day)
            if not found or found[-1] != bucket:
                found.append(bucket)
            day += timedelta(days=1)
        return found


def last_days(days: int, today: date, tz: ZoneInfo, by: Grouping = "day") -> Period:
    """The last `days` days up to and including today."""
    return Period(today - timedelta(days=days - 1), today, tz, by)


@dataclass(slots=True)
class Tally:
    """Copies of one bucket (or of the whole period) and what became of them."""

    sent: int = 0
    delivered: int = 0
    opened: int = 0
    clicked: int = 0
    replied: int = 0

    def add(self, other: Tally) -> None:
        self.sent += other.sent
        self.delivered += other.delivered
        self.opened += other.opened
        self.clicked += other.clicked
        self.replied += other.replied

    def rate(self, part: int) -> float | None:
        """A percentage of delivered copies, one decimal; None with nothing delivered."""
        if not self.delivered:
            return None
        return round(100.0 * part / self.delivered, 1)

    @property
    def open_rate(self) -> float | None:
        return self.rate(self.opened)

    @property
    def click_rate(self) -> float | None:
        return self.rate(self.clicked)

    @property
    def reply_rate(self) -> float | None:
        return self.rate(self.replied)


@dataclass(frozen=True, slots=True)
class Bucket:
    start: date
    tally: Tally


@dataclass(frozen=True, slots=True)
class FirstOpens:
    """How long delivered copies waited for their first counted open."""

    median_minutes: float | None
    # (upper bound in minutes or None for "longer", copies), in FIRST_OPEN_BOUNDS order.
    histogram: list[tuple[int | None, int]]

    @property
    def total(self) -> int:
        return sum(n for _, n in self.histogram)


@dataclass(frozen=True, slots=True)
class LinkRow:
    url: str
    clicks: int  # counted clicks
    people: int  # copies with a counted click on it


@dataclass(frozen=True, slots=True)
class ContactRow:
    address: str
    name: str
    copies: int  # delivered copies in the period
    opened: int
    clicked: int
    replied: int
    opens: int
    clicks: int


@dataclass(frozen=True, slots=True)
class Report:
    period: Period
    buckets: list[Bucket]
    totals: Tally
    messages: int
    first_opens: FirstOpens
    links: list[LinkRow]
    contacts: list[ContactRow]


def _slot(db: AsyncSession, column: Any) -> Any:
    """The 15-minute UTC slot of a timestamp column, as an integer, on either backend."""
    if db.get_bind().dialect.name == "postgresql":
        return cast(func.floor(func.extract("epoch", column) / SLOT_SECONDS), Integer)
    return cast(func.strftime("%s", column), Integer) / SLOT_SECONDS


def _minutes_between(db: AsyncSession, later: Any, earlier: Any) -> Any:
    """Whole minutes from `earlier` to `later`, on either backend."""
    if db.get_bind().dialect.name == "postgresql":
        return cast(func.floor(func.extract("epoch", later - earlier) / 60), Integer)
    return cast((func.julianday(later) - func.julianday(earlier)) * 1440, Integer)


def _copies(user_id: int, period: Period) -> list[Any]:
    """The user's copies sent within the period (the join and where clauses of every query)."""
    return [
        Message.id == Recipient.message_id,
        Message.user_id == user_id,
        Message.created_at < period.end,  # a copy is sent after its message was made
        Recipient.sent_at >= period.start,
        Recipient.sent_at < period.end,
    ]


DELIVERED = Recipient.status == "sent"


def _flag(condition: Any) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


async def _series(db: AsyncSession, user_id: int, period: Period) -> dict[date, Tally]:
    slot = _slot(db, Recipient.sent_at).label("slot")
    rows = await db.execute(
        select(
            slot,
            func.count(Recipient.id),
            _flag(DELIVERED),
            _flag(and_(DELIVERED, Recipient.open_count > 0)),
            _flag(and_(DELIVERED, Recipient.click_count > 0)),
            _flag(and_(DELIVERED, Recipient.reply_count > 0)),
        )
        .select_from(Recipient)
        .join(Message, Message.id == Recipient.message_id)
        .where(*_copies(user_id, period))
        .group_by(slot)
    )
    tallies: dict[date, Tally] = defaultdict(Tally)
    for number, sent, delivered, opened, clicked, replied in rows:
        moment = datetime.fromtimestamp(int(number) * SLOT_SECONDS, UTC).astimezone(period.tz)
        bucket = period.bucket_of(moment.date())
        tallies[bucket].add(
            Tally(int(sent), int(delivered), int(opened), int(clicked), int(replied))
        )
    return tallies


def first_open_histogram(minutes: list[tuple[int, int]]) -> FirstOpens:
    """Median and bars from (whole minutes to first open, copies) pairs (pure)."""
    bars: list[int] = [0] * (len(FIRST_OPEN_BOUNDS) + 1)
    for value, n in minutes:
        index = next(
            (i for i, bound in enumerate(FIRST_OPEN_BOUNDS) if value < bound),
            len(FIRST_OPEN_BOUNDS),
        )
        bars[index] += n
    bounds: list[int | None] = [*FIRST_OPEN_BOUNDS, None]
    return FirstOpens(
        median([(float(value), n) for value, n in minutes]), list(zip(bounds, bars, strict=True))
    )


async def _first_opens(db: AsyncSession, user_id: int, period: Period) -> FirstOpens:
    waited = _minutes_between(db, Recipient.first_open_at, Recipient.sent_at).label("waited")
    rows = await db.execute(
        select(waited, func.count(Recipient.id))
        .select_from(Recipient)
        .join(Message, Message.id == Recipient.message_id)
        .where(
            *_copies(user_id, period),
            DELIVERED,
            Recipient.open_count > 0,
            Recipient.first_open_at.is_not(None),
        )
        .group_by(waited)
    )
    return first_open_histogram([(max(0, int(value)), int(n)) for value, n in rows])


async def _links(db: AsyncSession, user_id: int, period: Period) -> list[LinkRow]:
    clicks = func.count(Event.id).label("clicks")
    people = func.count(distinct(Event.recipient_id)).label("people")
    rows = await db.execute(
        select(Link.url, clicks, people)
        .select_from(Event)
        .join(Recipient, Recipient.id == Event.recipient_id)
        .join(Message, Message.id == Recipient.message_id)
        .join(Link, Link.id == Event.link_id)
        .where(
            *_copies(user_id, period),
            DELIVERED,
            Event.kind == HitKind.CLICK.value,
            Event.counted.is_(True),
            Link.honeypot.is_(False),
        )
        .group_by(Link.url)
        .order_by(clicks.desc(), people.desc(), Link.url)
        .limit(TOP)
    )
    return [LinkRow(url, int(c), int(p)) for url, c, p in rows]


async def _contacts(db: AsyncSession, user_id: int, period: Period) -> list[ContactRow]:
    key = func.lower(Recipient.address).label("address")
    opened = _flag(Recipient.open_count > 0).label("opened")
    clicked = _flag(Recipient.click_count > 0).label("clicked")
    replied = _flag(Recipient.reply_count > 0).label("replied")
    opens = func.coalesce(func.sum(Recipient.open_count), 0).label("opens")
    clicks = func.coalesce(func.sum(Recipient.click_count), 0).label("clicks")
    rows = await db.execute(
        select(key, func.max(Recipient.name), func.count(Recipient.id), opened, clicked)
        .add_columns(replied, opens, clicks)
        .select_from(Recipient)
        .join(Message, Message.id == Recipient.message_id)
        .where(*_copies(user_id, period), DELIVERED)
        .group_by(key)
        .having(opens + clicks + func.sum(Recipient.reply_count) > 0)
        .order_by(replied.desc(), clicked.desc(), opened.desc(), (opens + clicks).desc(), key)
        .limit(TOP)
    )
    return [
        ContactRow(address, name or "", *(int(v) for v in values))
        for address, name, *values in rows
    ]


async def report(db: AsyncSession, user_id: int, period: Period) -> Report:
    """Everything the analytics page shows, for one user and period."""
    tallies = await _series(db, user_id, period)
    buckets = [Bucket(start, tallies.get(start, Tally())) for start in period.buckets()]
    totals = Tally()
    for bucket in buckets:
        totals.add(bucket.tally)
    messages = int(
        await db.scalar(
            select(func.count(distinct(Message.id)))
            .select_from(Recipient)
            .join(Message, Message.id == Recipient.message_id)
            .where(*_copies(user_id, period))
        )
        or 0
    )
    return Report(
        period=period,
        buckets=buckets,
        totals=totals,
        messages=messages,
        first_opens=await _first_opens(db, user_id, period),
        links=await _links(db, user_id, period),
        contacts=await _contacts(db, user_id, period),
    )


__all__ = [
    "FIRST_OPEN_BOUNDS",
    "MAX_DAYS",
    "Bucket",
    "ContactRow",
    "FirstOpens",
    "LinkRow",
    "Period",
    "Report",
    "Tally",
    "first_open_histogram",
    "last_days",
    "report",
]
