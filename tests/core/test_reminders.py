"""B5: when a follow-up reminder is due (the user's zone, across DST) and whether it is
still needed (counted opens and clicks, replies)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbeacon.core.reminders import (
    Action,
    Condition,
    InvalidRule,
    Progress,
    Rule,
    condition_met,
    decide,
    due_at,
    parse_rule,
    trackable,
)

ZONES = [
    "UTC",
    "Europe/Stockholm",
    "Europe/Berlin",
    "America/New_York",
    "America/Sao_Paulo",
    "Australia/Sydney",
    "Australia/Lord_Howe",  # a 30-minute shift
    "Asia/Kolkata",
    "Pacific/Chatham",
    "Europe/Tallinn",
]
moments = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
)


def exists(local: datetime, tz: ZoneInfo) -> bool:
    """Whether a naive local time is a real wall-clock time in `tz` (not in a DST gap)."""
    aware = local.replace(tzinfo=tz)
    return aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == local


@given(sent=moments, days=st.integers(1, 60), zone=st.sampled_from(ZONES))
def test_due_is_the_same_local_time_n_days_later_in_every_zone(
    sent: datetime, days: int, zone: str
) -> None:
    tz = ZoneInfo(zone)
    due = due_at(sent, days, zone)
    wanted = sent.astimezone(tz).replace(tzinfo=None) + timedelta(days=days)
    got = due.astimezone(tz).replace(tzinfo=None)
    assert due.tzinfo is UTC
    if exists(wanted, tz):
        assert got == wanted
    else:  # a spring-forward gap: moved forward by the gap, never backwards
        assert wanted < got <= wanted + timedelta(hours=1)
    # Never more than one DST shift away from n x 24 hours, and always later.
    assert abs(due - (sent + timedelta(days=days))) <= timedelta(hours=1)
    assert due > sent


def test_three_days_across_the_spring_change_in_stockholm_is_71_hours() -> None:
    sent = datetime(2027, 3, 26, 10, 0, tzinfo=ZoneInfo("Europe/Stockholm")).astimezone(UTC)
    due = due_at(sent, 3, "Europe/Stockholm")
    assert due.astimezone(ZoneInfo("Europe/Stockholm")).hour == 10
    assert due - sent == timedelta(hours=71)


def test_three_days_across_the_autumn_change_in_new_york_is_73_hours() -> None:
    sent = datetime(2027, 11, 6, 9, 30, tzinfo=ZoneInfo("America/New_York")).astimezone(UTC)
    due = due_at(sent, 3, "America/New_York")
    assert due - sent == timedelta(hours=73)


def test_a_local_time_the_spring_change_skips_moves_forward() -> None:
    sent = datetime(2027, 3, 27, 2, 30, tzinfo=ZoneInfo("Europe/Berlin")).astimezone(UTC)
    due = due_at(sent, 1, "Europe/Berlin")  # 2027-03-28 02:30 does not exist there
    assert due.astimezone(ZoneInfo("Europe/Berlin")).replace(tzinfo=None) == datetime(
        2027, 3, 28, 3, 30
    )


def test_an_unknown_zone_counts_in_utc() -> None:
    sent = datetime(2027, 1, 1, 12, tzinfo=UTC)
    assert due_at(sent, 2, "Mars/Olympus") == sent + timedelta(days=2)


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError):
        due_at(datetime(2027, 1, 1), 1, "UTC")


progress = st.builds(
    Progress,
    open_count=st.integers(0, 3),
    click_count=st.integers(0, 3),
    replied=st.booleans(),
    status=st.sampled_from(["queued", "sending", "sent", "failed", "unknown", "bounced"]),
)


@given(condition=st.sampled_from(Condition), state=progress)
def test_a_reply_meets_every_condition_and_nothing_else_meets_not_replied(
    condition: Condition, state: Progress
) -> None:
    if state.replied:
        assert condition_met(condition, state)
    if condition is Condition.NOT_REPLIED:
        assert condition_met(condition, state) == state.replied


@given(state=progress)
def test_a_click_is_an_open_but_an_open_is_not_a_click(state: Progress) -> None:
    assert condition_met(Condition.NOT_OPENED, state) == (
        state.replied or state.open_count > 0 or state.click_count > 0
    )
    assert condition_met(Condition.NOT_CLICKED, state) == (state.replied or state.click_count > 0)


@given(condition=st.sampled_from(Condition), state=progress, before=st.booleans())
def test_decide_fires_only_when_due_delivered_and_unmet(
    condition: Condition, state: Progress, before: bool
) -> None:
    due = datetime(2027, 5, 1, tzinfo=UTC)
    now = due - timedelta(seconds=1) if before else due
    action = decide(condition, due, state, now)
    if condition_met(condition, state):
        assert action is Action.MET  # met stops it even before it is due
    elif state.status in {"failed", "unknown", "bounced"}:
        assert action is Action.CANCEL
    elif before or state.status in {"queued", "sending"}:
        assert action is Action.WAIT
    else:
        assert action is Action.FIRE


def test_user_input_becomes_a_rule_or_a_named_problem() -> None:
    assert parse_rule("", "3") is None
    assert parse_rule("not_clicked", " 5 ", True) == Rule(Condition.NOT_CLICKED, 5, True)
    for condition, days, code in [
        ("maybe", "3", "condition"),
        ("not_opened", "0", "days"),
        ("not_opened", "61", "days"),
        ("not_opened", "2.5", "days"),
        ("not_opened", "٣", "days"),  # an Arabic-Indic three is not ASCII
        ("not_opened", "", "days"),
    ]:
        with pytest.raises(InvalidRule) as caught:
            parse_rule(condition, days)
        assert caught.value.code == code


def test_an_untracked_signal_cannot_be_waited_for() -> None:
    assert not trackable(Condition.NOT_OPENED, False, False)
    assert trackable(Condition.NOT_OPENED, False, True)
    assert not trackable(Condition.NOT_CLICKED, True, False)
    assert trackable(Condition.NOT_REPLIED, False, False)
