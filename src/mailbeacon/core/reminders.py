"""Follow-up reminders (B5): when one is due and whether it is still needed.

A reminder belongs to one recipient's copy ("No open from Anna after 3
days"): each copy is tracked on its own (B1), so with three recipients the
user is reminded only about the one who stayed silent.

Pure rules, no I/O: the store keeps the rows, the worker (mail/reminders.py)
asks these functions what to do with each one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MIN_DAYS = 1
MAX_DAYS = 60
DEFAULT_DAYS = 3


class Condition(StrEnum):
    """What must not have happened for the reminder to fire."""

    NOT_OPENED = "not_opened"
    NOT_CLICKED = "not_clicked"
    NOT_REPLIED = "not_replied"


class State(StrEnum):
    """pending -> fired | met | cancelled; only `pending` ever changes."""

    PENDING = "pending"
    FIRED = "fired"
    MET = "met"
    CANCELLED = "cancelled"


class Action(StrEnum):
    """What the worker does with a pending reminder now."""

    WAIT = "wait"
    FIRE = "fire"
    MET = "met"
    CANCEL = "cancel"


@dataclass(frozen=True, slots=True)
class Rule:
    """A reminder as the user asked for it."""

    condition: Condition
    days: int
    email_me: bool = False


@dataclass(frozen=True, slots=True)
class Progress:
    """What is known about one copy: counted opens and clicks only (B3), and replies (B11)."""

    open_count: int = 0
    click_count: int = 0
    replied: bool = False
    # queued, sending, sent, failed, unknown, bounced (the recipient's status).
    status: str = "sent"


class InvalidRule(ValueError):
    """A reminder that cannot be kept; `code` names the problem for the caller's words."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def parse_rule(condition: str, days: str | int, email_me: bool = False) -> Rule | None:
    """A rule from user input: '' as the condition means no reminder.

    Raises InvalidRule("condition") or InvalidRule("days") for anything else odd.
    """
    if condition in ("", "off", "none"):
        return None
    try:
        chosen = Condition(condition)
    except ValueError:
        raise InvalidRule("condition") from None
    if isinstance(days, str):
        text = days.strip()
        if not (text.isascii() and text.isdigit() and len(text) <= 3):
            raise InvalidRule("days")
        days = int(text)
    if isinstance(days, bool) or not MIN_DAYS <= days <= MAX_DAYS:
        raise InvalidRule("days")
    return Rule(chosen, days, email_me)


def zone(name: str) -> ZoneInfo:
    """The user's zone; an unknown name (a removed zone) falls back to UTC."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def due_at(sent: datetime, days: int, time_zone: str) -> datetime:
    """`days` days after `sent` at the same wall-clock time in the user's zone, in UTC.

    "In 3 days" means the same local time three days later, even across a
    daylight-saving change (so the UTC gap is 3 x 24 h plus or minus the
    shift). A local time the change skips (02:30 on a spring-forward night)
    moves forward by the gap; one it repeats takes the first of the two.
    """
    if sent.tzinfo is None:
        raise ValueError("naive datetime; use UTC-aware datetimes")
    tz = zone(time_zone)
    local = sent.astimezone(tz).replace(tzinfo=None) + timedelta(days=days)
    return local.replace(tzinfo=tz, fold=0).astimezone(UTC)


def trackable(condition: Condition, track_opens: bool, track_links: bool) -> bool:
    """Whether the message can ever tell the condition was met.

    An untracked open would make "not opened" fire for every reader; replies
    come from the inbox and need no tracking.
    """
    if condition is Condition.NOT_OPENED:
        return track_opens or track_links  # a click counts as an open
    if condition is Condition.NOT_CLICKED:
        return track_links
    return True


def condition_met(condition: Condition, progress: Progress) -> bool:
    """Whether the reader did what the reminder waits for.

    A reply answers every condition (nobody wants "not opened" after an answer),
    and a click means the email was opened even when its images were blocked.
    """
    if progress.replied:
        return True
    if condition is Condition.NOT_OPENED:
        return progress.open_count > 0 or progress.click_count > 0
    if condition is Condition.NOT_CLICKED:
        return progress.click_count > 0
    return False


UNDELIVERED = frozenset({"failed", "unknown", "bounced"})
IN_FLIGHT = frozenset({"queued", "sending"})


def decide(condition: Condition, due: datetime, progress: Progress, now: datetime) -> Action:
    """What to do with a pending reminder at `now`.

    Met wins over everything (even before it is due: stop at once); a copy that
    never arrived is nothing to follow up; a copy still on its way waits.
    """
    if condition_met(condition, progress):
        return Action.MET
    if progress.status in UNDELIVERED:
        return Action.CANCEL
    if now < due or progress.status in IN_FLIGHT:
        return Action.WAIT
    return Action.FIRE
