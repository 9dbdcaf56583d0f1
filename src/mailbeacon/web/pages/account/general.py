"""The General settings: tracking switches (S4), language (B8), time zone, display name.

These shape everything else the user sees and sends: what is tracked, the
language and zone every page is shown in, and the name in the From header.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from mailbeacon.core.addresses import InvalidAddress, has_control_characters, parse_mailbox
from mailbeacon.core.addresses import Mailbox as Address
from mailbeacon.core.policy import N_
from mailbeacon.core.reminders import InvalidRule
from mailbeacon.store.db import sessions
from mailbeacon.store.devices import devices_of, forget_device
from mailbeacon.store.tables import User
from mailbeacon.web import runtime_of, signals_text
from mailbeacon.web.auth import signed_in
from mailbeacon.web.devices import client_device
from mailbeacon.web.i18n import LANGUAGES, Localizer, time_zones
from mailbeacon.web.inputs import id_or_404
from mailbeacon.web.pages.account.common import (
    CheckedUser,
    CurrentUser,
    FormText,
    Problem,
    Problems,
    checked,
    notice_for,
    redirect_done,
)
from mailbeacon.web.pages.mail.reminder_form import CONDITIONS, ReminderForm, reminder_problem
from mailbeacon.web.render import localizer_for, render

router = APIRouter(include_in_schema=False)

MAX_DISPLAY_NAME = 200
# Notify a re-open only after this many hours of quiet (B3): 0 notifies every counted
# open, a week is the most that still makes "opened again" news.
MIN_QUIET_HOURS = 0
MAX_QUIET_HOURS = 168
# Control characters (U+0085 NEL among them), line and paragraph separators (U+2028,
# U+2029) and lone surrogates: header folding may turn any of them into a line break.
UNSAFE_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Cs"})


def has_unsafe_characters(value: str) -> bool:
    """True when `value` holds a character that may break a header line, in any script."""
    return has_control_characters(value) or any(
        unicodedata.category(char) in UNSAFE_CATEGORIES for char in value
    )


@cache
def time_zone_groups() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Zones grouped by region ('Europe', 'America', ...); single names such as UTC come last.

    The picker then shows one group per region instead of hundreds of names in one list.
    """
    groups: dict[str, list[str]] = {}
    for name in sorted(time_zones()):
        region = name.split("/", 1)[0] if "/" in name else ""
        groups.setdefault(region, []).append(name)
    other = groups.pop("", [])
    return (*((region, tuple(names)) for region, names in groups.items()), ("", tuple(other)))


@dataclass(frozen=True, slots=True)
class GeneralForm:
    """The general settings as shown in, and submitted from, the form.

    One shape for both, so a refused submission is shown again exactly as it was typed.
    """

    display_name: str
    language: str
    timezone: str
    open_tracking: bool
    link_tracking: bool
    notify_tracking: bool
    reopen_quiet_hours: str  # as typed, so a refused value is shown again

    @classmethod
    def of(cls, user: User) -> GeneralForm:
        return cls(
            display_name=user.display_name,
            language=user.locale,
            timezone=user.timezone,
            open_tracking=user.open_tracking,
            link_tracking=user.link_tracking,
            notify_tracking=user.notify_tracking,
            reopen_quiet_hours=str(user.reopen_quiet_hours),
        )


def display_name_problem(email: str, name: str) -> Problem | None:
    """The name goes into the From header of every email, so it must survive one intact."""
    if len(name) > MAX_DISPLAY_NAME:
        return Problem(N_("Use at most %(max)s characters."), {"max": str(MAX_DISPLAY_NAME)})
    if has_unsafe_characters(name):
        return Problem(N_("The name cannot contain line breaks or control characters."))
    try:
        parsed = parse_mailbox(str(Address(email, name)))
    except InvalidAddress:
        parsed = None
    if parsed is None or parsed.name != name:
        return Problem(N_("This name cannot be used as a sender name in email."))
    return None


def quiet_hours(value: str) -> int | None:
    """The re-open gap in whole hours, 0 to 168 (a week); None when it is anything else."""
    text = value.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 3):
        return None
    hours = int(text)
    return hours if MIN_QUIET_HOURS <= hours <= MAX_QUIET_HOURS else None


def check_general(form: GeneralForm, email: str) -> Problems:
    problems: Problems = {}
    if quiet_hours(form.reopen_quiet_hours) is None:
        problems["reopen_quiet_hours"] = Problem(
            N_("Enter a whole number of hours from %(min)s to %(max)s."),
            {"min": str(MIN_QUIET_HOURS), "max": str(MAX_QUIET_HOURS)},
        )
    name_problem = display_name_problem(email, form.display_name)
    if name_problem is not None:
        problems["display_name"] = name_problem
    if form.language not in LANGUAGES:
        problems["language"] = Problem(N_("Choose one of the languages in the list."))
    if form.timezone not in time_zones():
        problems["timezone"] = Problem(N_("Choose a time zone from the list."))
    return problems


@dataclass(frozen=True, slots=True)
class DeviceItem:
    """One of the user's browsers in words, for the Settings line about "you" (B2)."""

    id: int
    client: str
    network: str
    last_seen_at: datetime
    current: bool  # the browser looking at the page


async def device_items(request: Request, user_id: int) -> list[DeviceItem]:
    l10n = localizer_for(request, await signed_in(request))
    here = client_device(request)
    async with sessions(runtime_of(request).engine)() as db:
        devices = await devices_of(db, user_id)
    return [
        DeviceItem(
            d.id,
            signals_text.client_words(d.user_agent, l10n)
            or l10n.gettext(signals_text.UNKNOWN_CLIENT),
            d.network,
            d.last_seen_at,
            (d.user_agent, d.network) == here,
        )
        for d in devices
    ]


async def general_page(
    request: Request,
    form: GeneralForm,
    *,
    problems: Problems | None = None,
    notice: str | None = None,
    reminder: ReminderForm | None = None,
    reminder_error: str = "",
) -> HTMLResponse:
    current = await signed_in(request)
    if reminder is None:
        reminder = ReminderForm.of(current.user) if current else ReminderForm()
    devices = await device_items(request, current.user.id) if current else []
    return await render(
        request,
        "account/general.html",
        {
            "form": form,
            "notice": notice,
            "zone_groups": time_zone_groups(),
            "devices": devices,
            # The default follow-up reminder (B5; account/_reminder_default.html).
            "reminder": reminder,
            "reminder_conditions": CONDITIONS,
            "errors": {
                **(problems or {}),
                **({"reminder": reminder_error} if reminder_error else {}),
            },
        },
        status_code=400 if problems or reminder_error else 200,
    )


@router.get("/settings")
async def general(request: Request, current: CurrentUser, done: str = "") -> HTMLResponse:
    return await general_page(request, GeneralForm.of(current.user), notice=notice_for(done))


@router.post("/settings")
async def save_general(
    request: Request,
    current: CheckedUser,
    display_name: FormText = "",
    language: FormText = "",
    timezone: FormText = "",
    open_tracking: FormText = "",
    link_tracking: FormText = "",
    notify_tracking: FormText = "",
    reopen_quiet_hours: Annotated[str | None, Form()] = None,
) -> Response:
    form = GeneralForm(
        display_name=display_name.strip(),
        language=language,
        timezone=timezone,
        open_tracking=checked(open_tracking),
        link_tracking=checked(link_tracking),
        notify_tracking=checked(notify_tracking),
        # A form from before this setting existed leaves it as it was.
        reopen_quiet_hours=(
            str(current.user.reopen_quiet_hours)
            if reopen_quiet_hours is None
            else reopen_quiet_hours.strip()
        ),
    )
    problems = check_general(form, current.user.email)
    reminder, reminder_error = await default_reminder(request, current.user)
    if problems or reminder_error:
        return await general_page(
            request, form, problems=problems, reminder=reminder, reminder_error=reminder_error
        )
    async with sessions(runtime_of(request).engine)() as db, db.begin():
        user = await db.get_one(User, current.user.id)
        user.display_name = form.display_name
        user.locale = form.language
        user.locale_chosen = True  # from now on the browser's language no longer applies
        user.timezone = form.timezone
        user.timezone_chosen = True  # from now on the browser's zone no longer applies
        user.open_tracking = form.open_tracking
        user.link_tracking = form.link_tracking
        user.notify_tracking = form.notify_tracking
        user.reopen_quiet_hours = quiet_hours(form.reopen_quiet_hours) or 0
        rule = reminder.rule()
        user.reminder_condition = rule.condition.value if rule else ""
        if rule is not None:
            user.reminder_days = rule.days
        user.reminder_email = reminder.email_me
    return redirect_done("/settings", "saved")


async def default_reminder(request: Request, user: User) -> tuple[ReminderForm, str]:
    """The posted default reminder (B5) and its problem in the user's words ('' if none).

    A form from before this setting existed (no `reminder_days`) keeps it as it was.
    """
    posted = await request.form()
    if "reminder_days" not in posted:
        return ReminderForm.of(user), ""
    reminder = ReminderForm.from_form(posted)
    try:
        reminder.rule()
    except InvalidRule as exc:
        message, values = reminder_problem(exc)
        return reminder, Localizer(user.locale, user.timezone).gettext(message, **values)
    return reminder, ""


@router.post("/settings/devices/{device_id}/forget")
async def forget(request: Request, current: CheckedUser, device_id: str) -> Response:
    """Forget one of the user's browsers; another user's (or none) is a 404 (S7)."""
    row_id = id_or_404(device_id)
    async with sessions(runtime_of(request).engine)() as db, db.begin():
        found = await forget_device(db, current.user.id, row_id)
    if not found:
        raise HTTPException(404)
    return redirect_done("/settings", "device-forgotten")
